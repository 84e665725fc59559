/*
 * cmd-task.c -- the task board: create, list, show, ready, claim, update,
 * complete, release.  Each write emits its event in the same transaction.
 *
 * Every claim bumps the task's epoch (the reply carries it); update,
 * complete and release take an optional epoch, and one older than the
 * task's is refused with conflict, so a holder whose claim was lost and
 * taken again cannot touch the new claim.  Completing a done task again
 * with the epoch it was completed at is the same completion: the task is
 * the reply and no second task.completed is emitted.
 */
#include <string.h>

#include "common/buf.h"
#include "common/proto.h"
#include "common/util.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "store/store.h"

#define DEFAULT_LEASE_MS 300000
#define MAX_LIST         100000
#define DEFAULT_LIST     1000

/* Reply with task t (stolen) and emit topic with it; or fail with e. */
static void
task_reply(struct cmd_req *r, json_t *t, const char *topic, struct store_err *e)
{
	if (t == NULL) {
		cmd_fail_error(r, e);
		return;
	}
	if (topic != NULL)
		events_emit(topic, json_incref(t));
	cmd_ok(r, t);
}

/*
 * task-create and task-show, the board's hot paths, carry the task as JSON
 * text from the store to the reply and the event (no jansson object): one
 * buffer, reused, and let go of when a large body grew it.
 */
static struct buf task_json;

static void
task_reply_raw(struct cmd_req *r, int rc, const char *topic, struct store_err *e)
{
	if (rc == -1)
		cmd_fail_error(r, e);
	else {
		buf_cstr(&task_json);
		if (topic != NULL)
			events_emit_raw(topic, buf_head(&task_json));
		cmd_ok_raw(r, buf_head(&task_json), buf_used(&task_json));
	}
	if (task_json.cap > 65536)
		buf_free(&task_json);
	else
		buf_reset(&task_json);
}

static void
cmd_task_create(struct cmd_req *r)
{
	struct store_err e;

	buf_reset(&task_json);
	task_reply_raw(
	        r,
	        store_task_create_json(D.store, cmd_arg_str(r, "title"), cmd_arg_str(r, "body"),
	                               cmd_arg_int_or(r, "priority", 0), cmd_arg(r, "depends_on"),
	                               cmd_arg(r, "tags"), now_ms(), &task_json, &e) == -1
	                ? -1
	                : 0,
	        EV_TASK_CREATED, &e);
}

static const char *
status_arg(struct cmd_req *r)
{
	const char *s = cmd_arg_str(r, "status");

	if (s != NULL && strcmp(s, "open") != 0 && strcmp(s, "claimed") != 0 &&
	    strcmp(s, "done") != 0 && strcmp(s, "cancelled") != 0 && strcmp(s, "failed") != 0) {
		cmd_fail(r, ERR_INVALID_ARGUMENT,
		         "status must be one of open, claimed, done, cancelled, failed");
		return "";
	}
	return s;
}

/*
 * task-list and task-ready build their reply as text, page by page from
 * the store, and stop at the reply cap (--max-reply): a list that does not
 * fit is refused naming the limit, and never built whole.
 */
static struct buf list_json;

static void
task_page_reply(struct cmd_req *r, struct store_task_page *pg, int paged)
{
	struct store_err e;

	buf_reset(&list_json);
	buf_add(&list_json, "{\"items\":[", 10);
	pg->max_bytes = D.cfg.max_reply;
	if (store_task_list_json(D.store, pg, &list_json, &e) == -1)
		cmd_fail_error(r, &e);
	else if (pg->over)
		cmd_fail_too_big(r, "tasks", "a smaller limit, or pages with after");
	else {
		buf_addc(&list_json, ']');
		if (paged)
			buf_printf(&list_json, ",\"next\":%lld,\"more\":%s", pg->last_id,
			           pg->more ? "true" : "false");
		buf_addc(&list_json, '}');
		cmd_ok_raw(r, buf_head(&list_json), buf_used(&list_json));
	}
	if (list_json.cap > 65536)
		buf_free(&list_json);
}

static void
cmd_task_list(struct cmd_req *r)
{
	struct store_task_page pg = {0};

	pg.status = status_arg(r);
	if (r->replied)
		return;
	pg.limit = cmd_arg_int_or(r, "limit", DEFAULT_LIST);
	pg.owner = cmd_arg_str(r, "owner");
	pg.tag = cmd_arg_str(r, "tag");
	pg.ready_only = cmd_arg_bool_or(r, "ready", 0);
	pg.after = cmd_arg_int_or(r, "after", 0);
	if (pg.ready_only && pg.after != 0) {
		cmd_fail(r, ERR_INVALID_ARGUMENT,
		         "after pages by id and cannot be used with ready (the queue's order)");
		return;
	}
	task_page_reply(r, &pg, 1);
}

static void
cmd_task_ready(struct cmd_req *r)
{
	struct store_task_page pg = {0};

	pg.limit = cmd_arg_int_or(r, "limit", DEFAULT_LIST);
	pg.ready_only = 1;
	task_page_reply(r, &pg, 0);
}

static void
cmd_task_show(struct cmd_req *r)
{
	struct store_err e;
	long long id = cmd_arg_int_or(r, "id", 0);

	buf_reset(&task_json);
	task_reply_raw(r, store_task_get_json(D.store, id, &task_json, &e), NULL, &e);
}

static void
cmd_task_claim(struct cmd_req *r)
{
	struct store_err e;
	long long id = cmd_arg_int_or(r, "id", 0),
	          lease = cmd_arg_int_or(r, "lease_ms", DEFAULT_LEASE_MS);

	/* Not a bound in the table: this message is pinned by the golden transcript. */
	if (lease < 100 || lease > 7LL * 24 * 3600 * 1000) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "lease_ms must be between 100 and a week");
		return;
	}
	task_reply(r,
	           store_task_claim(D.store, cmd_arg_str(r, "agent"), id, lease, 0, now_ms(), &e),
	           EV_TASK_CLAIMED, &e);
}

static void
cmd_task_update(struct cmd_req *r)
{
	static const char *fields[] = {"title",      "body",   "priority", "progress",
	                               "depends_on", "status", "tags"};
	struct store_err e;
	json_t *ch;
	long long id = cmd_arg_int_or(r, "id", 0);
	size_t i;

	ch = json_object();
	for (i = 0; i < sizeof fields / sizeof *fields; i++)
		if (cmd_arg(r, fields[i]) != NULL)
			json_object_set(ch, fields[i], cmd_arg(r, fields[i]));
	task_reply(r,
	           store_task_update(D.store, id, ch, cmd_arg_str(r, "agent"),
	                             cmd_arg_int_or(r, "epoch", 0), now_ms(), &e),
	           EV_TASK_UPDATED, &e);
	json_decref(ch);
}

static void
cmd_task_complete(struct cmd_req *r)
{
	struct store_err e;
	long long id = cmd_arg_int_or(r, "id", 0);
	int repeated = 0;
	json_t *t;

	t = store_task_complete(D.store, id, cmd_arg_str(r, "agent"), cmd_arg_int_or(r, "epoch", 0),
	                        cmd_arg(r, "result"), now_ms(), &repeated, &e);
	/* The same completion again: the task as it is, and no second event. */
	task_reply(r, t, repeated ? NULL : EV_TASK_COMPLETED, &e);
}

static void
cmd_task_release(struct cmd_req *r)
{
	struct store_err e;
	long long id = cmd_arg_int_or(r, "id", 0);

	task_reply(r,
	           store_task_release(D.store, id, cmd_arg_str(r, "agent"),
	                              cmd_arg_int_or(r, "epoch", 0), now_ms(), &e),
	           EV_TASK_RELEASED, &e);
}

static const struct cmd_arg create_args[] = {
        {"title", ARG_STR, 1, 1, 4096}, {"body", ARG_STR, 0, 0, 262144},
        {"priority", ARG_INT, 0, 0, 0}, {"depends_on", ARG_ARR, 0, 0, 0},
        {"tags", ARG_ARR, 0, 0, 0},     {NULL, 0, 0, 0, 0}};
static const struct cmd_arg list_args[] = {{"status", ARG_STR, 0, 0, 0},
                                           {"owner", ARG_STR, 0, 0, 0},
                                           {"limit", ARG_INT, 0, 1, MAX_LIST},
                                           {"ready", ARG_BOOL, 0, 0, 0},
                                           {"after", ARG_INT, 0, 0, LLONG_MAX},
                                           {"tag", ARG_STR, 0, 1, 64},
                                           {NULL, 0, 0, 0, 0}};
static const struct cmd_arg ready_args[] = {{"limit", ARG_INT, 0, 1, MAX_LIST}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg id_args[] = {{"id", ARG_INT, 1, 1, LLONG_MAX}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg claim_args[] = {{"agent", ARG_STR, 1, 1, 256},
                                            {"id", ARG_INT, 0, 1, LLONG_MAX},
                                            {"lease_ms", ARG_INT, 0, 0, 0},
                                            {NULL, 0, 0, 0, 0}};
static const struct cmd_arg update_args[] = {{"id", ARG_INT, 1, 1, LLONG_MAX},
                                             {"title", ARG_STR, 0, 1, 4096},
                                             {"body", ARG_STR, 0, 0, 262144},
                                             {"priority", ARG_INT, 0, 0, 0},
                                             {"progress", ARG_STR, 0, 0, 65536},
                                             {"depends_on", ARG_ARR, 0, 0, 0},
                                             {"status", ARG_STR, 0, 0, 0},
                                             {"agent", ARG_STR, 0, 0, 0},
                                             {"epoch", ARG_INT, 0, 1, LLONG_MAX},
                                             {"tags", ARG_ARR, 0, 0, 0},
                                             {NULL, 0, 0, 0, 0}};
static const struct cmd_arg complete_args[] = {{"id", ARG_INT, 1, 1, LLONG_MAX},
                                               {"agent", ARG_STR, 0, 0, 0},
                                               {"epoch", ARG_INT, 0, 1, LLONG_MAX},
                                               {"result", ARG_ANY, 0, 0, 0},
                                               {NULL, 0, 0, 0, 0}};
static const struct cmd_arg release_args[] = {{"id", ARG_INT, 1, 1, LLONG_MAX},
                                              {"agent", ARG_STR, 0, 0, 0},
                                              {"epoch", ARG_INT, 0, 1, LLONG_MAX},
                                              {NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_task_entries[] = {
        {CMD_TASK_CREATE, CMD_WRITE, CMD_R_ALL, create_args, cmd_task_create},
        {CMD_TASK_LIST, CMD_READ, CMD_R_ALL, list_args, cmd_task_list},
        {CMD_TASK_SHOW, CMD_READ, CMD_R_ALL, id_args, cmd_task_show},
        {CMD_TASK_READY, CMD_READ, CMD_R_ALL, ready_args, cmd_task_ready},
        {CMD_TASK_CLAIM, CMD_WRITE, CMD_R_ALL, claim_args, cmd_task_claim},
        {CMD_TASK_UPDATE, CMD_WRITE, CMD_R_ALL, update_args, cmd_task_update},
        {CMD_TASK_COMPLETE, CMD_WRITE, CMD_R_ALL, complete_args, cmd_task_complete},
        {CMD_TASK_RELEASE, CMD_WRITE, CMD_R_ALL, release_args, cmd_task_release},
        {NULL, 0, 0, NULL, NULL},
};
