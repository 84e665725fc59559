/*
 * store-rules.c -- the task board's rules and the helpers both backends
 * share (see store-rules.h for why they live below the backends).
 *
 * Every function here is pure: it reads the values it is given and, when a
 * rule refuses, fills the store_err with the protocol error code and the
 * message a client sees.  The messages are part of the behaviour the
 * integration tests check, the same on both backends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "store/store-rules.h"

void
store_err_set(struct store_err *e, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

static const char *
task_status(json_t *t)
{
	const char *st = json_string_value(json_object_get(t, "status"));

	return st != NULL ? st : "";
}

int
store_rule_owner(json_t *t, const char *agent, long long id, struct store_err *e)
{
	const char *owner = json_string_value(json_object_get(t, "owner"));

	if (agent != NULL && (owner == NULL || strcmp(owner, agent) != 0)) {
		store_err_set(e, ERR_CONFLICT, "task %lld is not claimed by %s", id, agent);
		return -1;
	}
	return 0;
}

int
store_rule_claimable(json_t *t, long long id, struct store_err *e)
{
	if (strcmp(task_status(t), "open") != 0) {
		store_err_set(e, ERR_CONFLICT, "task %lld is %s", id, task_status(t));
		return -1;
	}
	return 0;
}

int
store_rule_claimed(json_t *t, const char *agent, long long id, struct store_err *e)
{
	if (strcmp(task_status(t), "claimed") != 0) {
		store_err_set(e, ERR_CONFLICT, "task %lld is %s, not claimed", id, task_status(t));
		return -1;
	}
	return store_rule_owner(t, agent, id, e);
}

int
store_rule_status_change(const char *from, const char *to, long long id, struct store_err *e)
{
	if (to == NULL || (strcmp(to, "cancelled") != 0 && strcmp(to, "open") != 0)) {
		store_err_set(e, ERR_INVALID_ARGUMENT,
		              "status can be set to cancelled or open; use task-claim and "
		              "task-complete for the rest");
		return -1;
	}
	if (strcmp(from, "done") == 0) {
		store_err_set(e, ERR_CONFLICT, "task %lld is done", id);
		return -1;
	}
	if (strcmp(to, "open") == 0 && strcmp(from, "cancelled") != 0 &&
	    strcmp(from, "failed") != 0) {
		store_err_set(e, ERR_CONFLICT,
		              "task %lld is %s; only a cancelled or failed task reopens", id, from);
		return -1;
	}
	return 0;
}

long long
store_rule_attempts_after(const char *from, const char *to, long long attempts)
{
	return strcmp(from, "failed") == 0 && strcmp(to, "open") == 0 ? 0 : attempts;
}

static long long
task_int(json_t *t, const char *key)
{
	return json_integer_value(json_object_get(t, key));
}

static int
epoch_stale(json_t *t, long long epoch, long long id, struct store_err *e)
{
	store_err_set(e, ERR_CONFLICT, "task %lld: epoch %lld is stale (the task's epoch is %lld)",
	              id, epoch, task_int(t, "epoch"));
	return -1;
}

int
store_rule_epoch(json_t *t, long long epoch, long long id, struct store_err *e)
{
	return epoch != 0 && epoch != task_int(t, "epoch") ? epoch_stale(t, epoch, id, e) : 0;
}

int
store_rule_complete(json_t *t, const char *agent, long long epoch, long long id, int *repeated,
                    struct store_err *e)
{
	const char *owner = json_string_value(json_object_get(t, "owner"));

	*repeated = 0;
	if (store_rule_epoch(t, epoch, id, e) == -1)
		return -1;
	if (epoch != 0 && strcmp(task_status(t), "done") == 0 &&
	    (agent == NULL || (owner != NULL && strcmp(owner, agent) == 0))) {
		*repeated = 1;
		return 0;
	}
	return store_rule_claimed(t, agent, id, e);
}

int
store_rule_run_failed(json_t *t, const char *agent, long long epoch, long long id,
                      struct store_err *e)
{
	if (store_rule_claimed(t, agent, id, e) == -1)
		return -1;
	return epoch != task_int(t, "epoch") ? epoch_stale(t, epoch, id, e) : 0;
}

const char *
store_rule_failed_status(json_t *t)
{
	json_t *max = json_object_get(t, "max_attempts");

	long long m = json_is_integer(max) ? json_integer_value(max) : STORE_MAX_ATTEMPTS_DEFAULT;

	return task_int(t, "attempts") + 1 >= m ? "failed" : "open";
}

char *
store_rule_last_error(const char *reason)
{
	if (reason == NULL)
		reason = "";
	return xstrndup(reason, utf8_cut_len(reason, strlen(reason), STORE_LAST_ERROR_MAX));
}

int
store_rule_tag_ok(const char *tag)
{
	size_t n = strlen(tag);

	return n >= 1 && n <= STORE_TAG_LEN_MAX &&
	       strspn(tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") ==
	               n;
}

char *
store_rule_tags(json_t *tags, struct store_err *e)
{
	size_t i, j;
	json_t *v;

	if (tags == NULL)
		return xstrdup("[]");
	if (!json_is_array(tags) || json_array_size(tags) > STORE_TAGS_MAX) {
		store_err_set(e, ERR_INVALID_ARGUMENT, "tags must be an array of at most %d tags",
		              STORE_TAGS_MAX);
		return NULL;
	}
	json_array_foreach(tags, i, v)
	{
		if (!json_is_string(v) || !store_rule_tag_ok(json_string_value(v))) {
			store_err_set(e, ERR_INVALID_ARGUMENT,
			              "tags[%zu] must be 1 to %d characters of A-Z a-z 0-9 _ . : -",
			              i, STORE_TAG_LEN_MAX);
			return NULL;
		}
		for (j = 0; j < i; j++)
			if (json_equal(json_array_get(tags, j), v)) {
				store_err_set(e, ERR_INVALID_ARGUMENT, "tag %s is given twice",
				              json_string_value(v));
				return NULL;
			}
	}
	return json_dumps(tags, JSON_COMPACT);
}

int
store_rule_dep(long long task, json_t *v, const struct store_dep_probe *p, long long *dep,
               struct store_err *e)
{
	if (!json_is_integer(v)) {
		store_err_set(e, ERR_INVALID_ARGUMENT, "depends_on must hold task ids");
		return -1;
	}
	*dep = json_integer_value(v);
	if (!p->exists(p->ctx, *dep)) {
		store_err_set(e, ERR_NOT_FOUND, "no task %lld (in depends_on)", *dep);
		return -1;
	}
	if (task == *dep || p->cycles(p->ctx, task, *dep)) {
		store_err_set(e, ERR_CONFLICT, "task %lld depending on %lld makes a cycle", task,
		              *dep);
		return -1;
	}
	return 0;
}

char *
store_like_substring(const char *query)
{
	size_t i, o = 0, n = strlen(query);
	char *like = xmalloc(2 * n + 3);

	like[o++] = '%';
	for (i = 0; i < n; i++) {
		if (query[i] == '%' || query[i] == '_' || query[i] == '\\')
			like[o++] = '\\';
		like[o++] = query[i];
	}
	like[o++] = '%';
	like[o] = '\0';
	return like;
}

/*
 * What an agent_put key is, for both backends: 1 a text column, 2 an integer
 * column, 4 the detail (a JSON object); 0 none of the agent's columns.
 */
int
store_agent_field_kind(const char *key)
{
	static const char *text_cols[] = {"kind",   "name",       "provider",
	                                  "host",   "session_id", "state",
	                                  "reason", "tenant",     "last_message"};
	static const char *int_cols[] = {"pid",       "pid_start", "since", "lost", "lease_ms",
	                                 "heartbeat", "owner_uid", "task",  "epoch"};
	size_t i;

	for (i = 0; i < sizeof text_cols / sizeof *text_cols; i++)
		if (strcmp(key, text_cols[i]) == 0)
			return 1;
	for (i = 0; i < sizeof int_cols / sizeof *int_cols; i++)
		if (strcmp(key, int_cols[i]) == 0)
			return 2;
	return strcmp(key, "detail") == 0 ? 4 : 0;
}
