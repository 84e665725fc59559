/*
 * store-postgres-tasks.c -- the task board on PostgreSQL.
 *
 * The same operations as store-sqlite-tasks.c, for several daemons at
 * once: a change to a given task locks its row first (SELECT ... FOR
 * UPDATE), and claiming the next ready task is one UPDATE whose target
 * comes from FOR UPDATE SKIP LOCKED, so daemons claiming together neither
 * wait for each other nor take the same task.  What a change may do is
 * decided by store-rules.c, as on SQLite; this file runs the SQL.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-postgres.h"
#include "store/store-rules.h"

/* ---- tasks ---- */

/* Columns of a task row; the last (17) is its dependencies as "1,2,3". */
#define TASK_COLS                                                                                  \
	"t.id, t.title, t.body, t.status, t.priority, t.owner, t.lease_expires, t.result, "        \
	"t.progress, t.created, t.updated, t.claimed, t.completed, t.epoch, t.attempts, "          \
	"t.max_attempts, t.last_error, (SELECT "                                                   \
	"coalesce(string_agg(d.dep::text, ',' ORDER BY d.dep), '') FROM task_deps d WHERE d.task " \
	"= t.id)"

static json_t *
deps_from_text(const char *v)
{
	json_t *a = json_array();
	char *end;

	while (*v != '\0') {
		json_array_append_new(a, json_integer(strtoll(v, &end, 10)));
		v = *end == ',' ? end + 1 : end + strlen(end);
	}
	return a;
}

static json_t *
task_from_row(const PGresult *r, int i)
{
	json_t *t = json_object();

	json_object_set_new(t, "id", pg_col_int(r, i, 0));
	json_object_set_new(t, "title", pg_col_text(r, i, 1));
	json_object_set_new(t, "body", pg_col_text(r, i, 2));
	json_object_set_new(t, "status", pg_col_text(r, i, 3));
	json_object_set_new(t, "priority", pg_col_int(r, i, 4));
	json_object_set_new(t, "owner", pg_col_text(r, i, 5));
	json_object_set_new(t, "lease_expires_ms", pg_col_int(r, i, 6));
	json_object_set_new(t, "result", pg_col_json(r, i, 7));
	json_object_set_new(t, "progress", pg_col_text(r, i, 8));
	json_object_set_new(t, "created_ms", pg_col_int(r, i, 9));
	json_object_set_new(t, "updated_ms", pg_col_int(r, i, 10));
	json_object_set_new(t, "claimed_ms", pg_col_int(r, i, 11));
	json_object_set_new(t, "completed_ms", pg_col_int(r, i, 12));
	json_object_set_new(t, "epoch", pg_col_int(r, i, 13));
	json_object_set_new(t, "attempts", pg_col_int(r, i, 14));
	json_object_set_new(t, "max_attempts", pg_col_int(r, i, 15));
	json_object_set_new(t, "last_error", pg_col_text(r, i, 16));
	json_object_set_new(t, "depends_on", deps_from_text(PQgetvalue(r, i, 17)));
	return t;
}

/* One task from a query returning TASK_COLS; NULL with not_found when there is no row. */
static json_t *
task_one(struct pg_store *s, PGresult *r, long long id, const char *what, struct store_err *e)
{
	json_t *t = NULL;

	if (pg_one_row(s, r, what, e, "no task %lld", id) == 0)
		t = task_from_row(r, 0);
	PQclear(r);
	return t;
}

json_t *
pg_store_task_get(struct pg_store *s, long long id, struct store_err *e)
{
	struct pg_params p = {0};

	pp_int(&p, id);
	return task_one(s, pg_run(s, "SELECT " TASK_COLS " FROM tasks t WHERE t.id = $1", &p), id,
	                "task-show", e);
}

/* The task, its row locked until the transaction ends (changes to a task go through here). */
static json_t *
task_lock(struct pg_store *s, long long id, struct store_err *e)
{
	struct pg_params p = {0};

	pp_int(&p, id);
	return task_one(
	        s, pg_run(s, "SELECT " TASK_COLS " FROM tasks t WHERE t.id = $1 FOR UPDATE", &p),
	        id, "task", e);
}

static const char *
task_status(json_t *t)
{
	return json_string_value(json_object_get(t, "status"));
}

static int
task_exists(void *ctx, long long id)
{
	struct pg_store *s = ctx;
	struct pg_params p = {0};

	pp_int(&p, id);
	return pg_scalar(s, "SELECT 1 FROM tasks WHERE id = $1", &p, 0) == 1;
}

/* Would task -> dep close a cycle (dep already reaches task)? */
static int
task_dep_cycles(void *ctx, long long task, long long dep)
{
	struct pg_store *s = ctx;
	struct pg_params p = {0};

	pp_int(&p, dep);
	pp_int(&p, task);
	return pg_scalar(s,
	                 "WITH RECURSIVE r(x) AS (SELECT $1::bigint UNION SELECT d.dep FROM "
	                 "task_deps d JOIN r ON d.task = r.x) SELECT 1 FROM r WHERE x = $2::bigint "
	                 "LIMIT 1",
	                 &p, 0) == 1;
}

static int
task_add_dep(struct pg_store *s, long long task, json_t *v, struct store_err *e)
{
	struct store_dep_probe probe = {task_exists, task_dep_cycles, s};
	struct pg_params p = {0};
	long long dep;

	if (store_rule_dep(task, v, &probe, &dep, e) == -1)
		return -1;
	pp_int(&p, task);
	pp_int(&p, dep);
	if (pg_do(s, "INSERT INTO task_deps (task, dep) VALUES ($1, $2) ON CONFLICT DO NOTHING",
	          &p) == -1) {
		pg_dberr(s, e, "task dependencies");
		return -1;
	}
	return 0;
}

/* Replace task's dependencies with deps (an array of integers). */
static int
task_set_deps(struct pg_store *s, long long task, json_t *deps, struct store_err *e)
{
	struct pg_params p = {0};
	size_t i;
	json_t *v;

	pp_int(&p, task);
	if (pg_do(s, "DELETE FROM task_deps WHERE task = $1", &p) == -1) {
		pg_dberr(s, e, "task dependencies");
		return -1;
	}
	json_array_foreach(deps, i, v)
	{
		if (task_add_dep(s, task, v, e) == -1)
			return -1;
	}
	return 0;
}

long long
pg_store_task_insert(struct pg_store *s, const char *title, const char *body, long long priority,
                     json_t *depends_on, int64_t now, struct buf *out, struct store_err *e)
{
	struct pg_params p = {0};
	long long id;

	pp_text(&p, title);
	pp_text(&p, body != NULL ? body : "");
	pp_int(&p, priority);
	pp_int(&p, now);
	id = pg_scalar(s,
	               "INSERT INTO tasks (title, body, priority, created, updated) VALUES ($1, "
	               "$2, $3, $4, $4) RETURNING id",
	               &p, 0);
	if (id == 0) {
		pg_dberr(s, e, "task-create");
		return -1;
	}
	if (depends_on != NULL && task_set_deps(s, id, depends_on, e) == -1)
		return -1;
	if (out != NULL && pg_store_task_get_json(s, id, out, e) == -1)
		return -1;
	return id;
}

/* PostgreSQL builds the object (its round trip dominates) and writes it with jsonw. */
int
pg_store_task_get_json(struct pg_store *s, long long id, struct buf *out, struct store_err *e)
{
	json_t *t = pg_store_task_get(s, id, e);
	int rc;

	if (t == NULL)
		return -1;
	rc = jsonw_dump(out, t);
	json_decref(t);
	if (rc == -1)
		store_err_set(e, ERR_INTERNAL, "task %lld could not be encoded", id);
	return rc;
}

/* No read snapshot to end: every statement is its own round trip. */
void
pg_store_idle(struct pg_store *s)
{
	(void)s;
}

int
pg_store_snapshot_open(struct pg_store *s)
{
	(void)s;
	return 0;
}

/*
 * A page of task-list, fetched in chunks of TASK_CHUNK rows (the next one
 * after the last row seen: by id, or by (priority desc, id) for the ready
 * queue), so neither libpq's result nor the text outgrows the cap.
 */
#define TASK_CHUNK 256

static PGresult *
task_chunk(struct pg_store *s, struct store_task_page *pg, long long prio, long long n)
{
	struct pg_params p = {0};

	if (pg->ready_only) {
		pp_int(&p, pg->count > 0);
		pp_int(&p, prio);
		pp_int(&p, pg->last_id);
		pp_int(&p, n);
		return pg_run(s,
		              "SELECT " TASK_COLS " FROM tasks t WHERE " READY_WHERE
		              " AND ($1 = 0 OR t.priority < $2 OR (t.priority = $2 AND t.id > $3))"
		              " ORDER BY t.priority DESC, t.id LIMIT $4",
		              &p);
	}
	pp_text(&p, pg->status);
	pp_text(&p, pg->owner);
	pp_int(&p, pg->last_id);
	pp_int(&p, n);
	return pg_run(s,
	              "SELECT " TASK_COLS " FROM tasks t WHERE ($1::text IS NULL OR "
	              "t.status = $1) AND ($2::text IS NULL OR t.owner = $2) AND t.id > $3 "
	              "ORDER BY t.id LIMIT $4",
	              &p);
}

int
pg_store_task_list_json(struct pg_store *s, struct store_task_page *pg, struct buf *out,
                        struct store_err *e)
{
	size_t start = out->len;
	long long prio = 0, want;
	PGresult *r;
	int i, rows;
	json_t *t;

	do {
		want = pg->limit + 1 - pg->count; /* one more: is there a next page? */
		if ((r = task_chunk(s, pg, prio, want < TASK_CHUNK ? want : TASK_CHUNK)) == NULL) {
			pg_dberr(s, e, "task-list");
			return -1;
		}
		rows = PQntuples(r);
		for (i = 0; i < rows && !pg->more && !pg->over; i++) {
			if (pg->count == pg->limit) {
				pg->more = 1;
				break;
			}
			if (pg->count > 0)
				buf_addc(out, ',');
			t = task_from_row(r, i);
			if (jsonw_dump(out, t) == -1)
				buf_add(out, "null", 4);
			json_decref(t);
			pg->count++;
			pg->last_id = pg_int(r, i, 0, 0);
			prio = pg_int(r, i, 4, 0);
			if (pg->max_bytes > 0 && out->len - start > pg->max_bytes)
				pg->over = 1;
		}
		PQclear(r);
	} while (rows == TASK_CHUNK && !pg->more && !pg->over);
	return 0;
}

/* Claim the next ready task: one statement, the row picked with FOR UPDATE SKIP LOCKED. */
static json_t *
task_claim_next(struct pg_store *s, const char *agent, long long lease_ms, long long max_attempts,
                int64_t now, struct store_err *e)
{
	struct pg_params p = {0};
	PGresult *r;
	json_t *t = NULL;

	pp_text(&p, agent);
	pp_int(&p, lease_ms);
	pp_int(&p, now + lease_ms);
	pp_int(&p, now);
	pp_int(&p, max_attempts);
	r = pg_run(
	        s,
	        "UPDATE tasks t SET status = 'claimed', owner = $1, lease_ms = NULLIF($2::bigint, "
	        "0), "
	        "lease_expires = CASE WHEN $2::bigint > 0 THEN $3::bigint END, claimed = $4, "
	        "updated = $4, epoch = t.epoch + 1, "
	        "max_attempts = CASE WHEN $5::bigint > 0 THEN $5::bigint ELSE t.max_attempts END "
	        "WHERE t.id = (SELECT t.id FROM "
	        "tasks t WHERE " READY_WHERE " ORDER BY t.priority DESC, t.id LIMIT 1 "
	        "FOR UPDATE OF t SKIP LOCKED) RETURNING " TASK_COLS,
	        &p);
	if (r == NULL)
		pg_dberr(s, e, "task-claim");
	else if (PQntuples(r) == 0)
		store_err_set(e, ERR_NOT_FOUND, "no ready task");
	else
		t = task_from_row(r, 0);
	PQclear(r);
	return t;
}

static int
task_is_ready(struct pg_store *s, long long id)
{
	struct pg_params p = {0};

	pp_int(&p, id);
	return pg_scalar(s, "SELECT 1 FROM tasks t WHERE t.id = $1 AND " READY_WHERE, &p, 0) == 1;
}

json_t *
pg_store_task_claim(struct pg_store *s, const char *agent, long long id, long long lease_ms,
                    long long max_attempts, int64_t now, struct store_err *e)
{
	struct pg_params p = {0};
	json_t *t;

	if (id == 0)
		return task_claim_next(s, agent, lease_ms, max_attempts, now, e);
	if ((t = task_lock(s, id, e)) == NULL)
		return NULL;
	if (store_rule_claimable(t, id, e) == -1) {
		json_decref(t);
		return NULL;
	}
	json_decref(t);
	if (!task_is_ready(s, id)) {
		store_err_set(e, ERR_CONFLICT, "task %lld waits on its dependencies", id);
		return NULL;
	}
	pp_text(&p, agent);
	pp_int(&p, lease_ms);
	pp_int(&p, now + lease_ms);
	pp_int(&p, now);
	pp_int(&p, id);
	pp_int(&p, max_attempts);
	return task_one(s,
	                pg_run(s,
	                       "UPDATE tasks t SET status = 'claimed', owner = $1, "
	                       "lease_ms = NULLIF($2::bigint, 0), "
	                       "lease_expires = CASE WHEN $2::bigint > 0 THEN $3::bigint END, "
	                       "claimed = $4, "
	                       "updated = $4, epoch = t.epoch + 1, "
	                       "max_attempts = CASE WHEN $6::bigint > 0 THEN $6::bigint ELSE "
	                       "t.max_attempts END WHERE t.id = $5 AND t.status = 'open' "
	                       "RETURNING " TASK_COLS,
	                       &p),
	                id, "task-claim", e);
}

static int
task_update_status(struct pg_store *s, json_t *t, long long id, const char *to, int64_t now,
                   struct store_err *e)
{
	struct pg_params p = {0};
	const char *from = task_status(t);

	if (store_rule_status_change(from, to, id, e) == -1)
		return -1;
	pp_text(&p, to);
	pp_int(&p, now);
	pp_int(&p, id);
	pp_int(&p, store_rule_attempts_after(from, to,
	                                     json_integer_value(json_object_get(t, "attempts"))));
	if (pg_do(s,
	          "UPDATE tasks SET status = $1, owner = NULL, lease_expires = NULL, updated = $2, "
	          "attempts = $4 WHERE id = $3",
	          &p) == -1) {
		pg_dberr(s, e, "task-update");
		return -1;
	}
	return 0;
}

/* Apply title, body, progress and priority from ch in one statement. */
static int
task_update_fields(struct pg_store *s, long long id, json_t *ch, int64_t now, struct store_err *e)
{
	struct pg_params p = {0};
	json_t *pr = json_object_get(ch, "priority");

	pp_int(&p, id);
	pp_int(&p, now);
	pp_text(&p, json_object_get(ch, "title") != NULL ? "1" : "0");
	pp_text(&p, json_string_value(json_object_get(ch, "title")));
	pp_text(&p, json_object_get(ch, "body") != NULL ? "1" : "0");
	pp_text(&p, json_string_value(json_object_get(ch, "body")));
	pp_text(&p, json_object_get(ch, "progress") != NULL ? "1" : "0");
	pp_text(&p, json_string_value(json_object_get(ch, "progress")));
	pp_text(&p, pr != NULL ? "1" : "0");
	pp_int(&p, json_integer_value(pr));
	if (json_object_get(ch, "title") == NULL && json_object_get(ch, "body") == NULL &&
	    json_object_get(ch, "progress") == NULL && pr == NULL)
		return 0;
	if (pg_do(s,
	          "UPDATE tasks SET updated = $2,"
	          " title = CASE WHEN $3::int = 1 THEN $4 ELSE title END,"
	          " body = CASE WHEN $5::int = 1 THEN $6 ELSE body END,"
	          " progress = CASE WHEN $7::int = 1 THEN $8 ELSE progress END,"
	          " priority = CASE WHEN $9::int = 1 THEN $10::bigint ELSE priority END"
	          " WHERE id = $1",
	          &p) == -1) {
		pg_dberr(s, e, "task-update");
		return -1;
	}
	return 0;
}

json_t *
pg_store_task_update(struct pg_store *s, long long id, json_t *ch, const char *agent,
                     long long epoch, int64_t now, struct store_err *e)
{
	json_t *t, *v;

	if ((t = task_lock(s, id, e)) == NULL)
		return NULL;
	if (store_rule_epoch(t, epoch, id, e) == -1 || store_rule_owner(t, agent, id, e) == -1 ||
	    task_update_fields(s, id, ch, now, e) == -1)
		goto fail;
	if ((v = json_object_get(ch, "depends_on")) != NULL && task_set_deps(s, id, v, e) == -1)
		goto fail;
	if ((v = json_object_get(ch, "status")) != NULL &&
	    task_update_status(s, t, id, json_string_value(v), now, e) == -1)
		goto fail;
	json_decref(t);
	return pg_store_task_get(s, id, e);
fail:
	json_decref(t);
	return NULL;
}

/* The task locked and claimed (by agent, if given) at epoch (0: any); -1 with conflict otherwise.
 */
static int
task_lock_claimed(struct pg_store *s, long long id, const char *agent, long long epoch,
                  struct store_err *e)
{
	json_t *t;
	int rc = 0;

	if ((t = task_lock(s, id, e)) == NULL)
		return -1;
	rc = store_rule_epoch(t, epoch, id, e) == 0 ? store_rule_claimed(t, agent, id, e) : -1;
	json_decref(t);
	return rc;
}

json_t *
pg_store_task_complete(struct pg_store *s, long long id, const char *agent, long long epoch,
                       json_t *result, int64_t now, int *repeated, struct store_err *e)
{
	struct pg_params p = {0};
	char *res = NULL;
	json_t *t;

	if ((t = task_lock(s, id, e)) == NULL)
		return NULL;
	if (store_rule_complete(t, agent, epoch, id, repeated, e) == -1) {
		json_decref(t);
		return NULL;
	}
	if (*repeated)
		return t;
	json_decref(t);
	if (result != NULL)
		res = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
	pp_text(&p, res);
	pp_int(&p, now);
	pp_int(&p, id);
	t = task_one(
	        s,
	        pg_run(s,
	               "UPDATE tasks t SET status = 'done', result = $1, lease_expires = "
	               "NULL, completed = $2, updated = $2 WHERE t.id = $3 RETURNING " TASK_COLS,
	               &p),
	        id, "task-complete", e);
	free(res);
	return t;
}

json_t *
pg_store_task_release(struct pg_store *s, long long id, const char *agent, long long epoch,
                      int64_t now, struct store_err *e)
{
	struct pg_params p = {0};

	if (task_lock_claimed(s, id, agent, epoch, e) == -1)
		return NULL;
	pp_int(&p, now);
	pp_int(&p, id);
	return task_one(s,
	                pg_run(s,
	                       "UPDATE tasks t SET status = 'open', owner = NULL, lease_expires = "
	                       "NULL, updated = $1 WHERE t.id = $2 RETURNING " TASK_COLS,
	                       &p),
	                id, "task-release", e);
}

json_t *
pg_store_task_run_failed(struct pg_store *s, long long id, const char *agent, long long epoch,
                         const char *reason, int64_t now, struct store_err *e)
{
	struct pg_params p = {0};
	const char *to;
	char *err;
	json_t *t;

	if ((t = task_lock(s, id, e)) == NULL)
		return NULL;
	if (store_rule_run_failed(t, agent, epoch, id, e) == -1) {
		json_decref(t);
		return NULL;
	}
	to = store_rule_failed_status(t);
	json_decref(t);
	err = store_rule_last_error(reason);
	pp_text(&p, to);
	pp_text(&p, err);
	pp_int(&p, now);
	pp_int(&p, id);
	t = task_one(s,
	             pg_run(s,
	                    "UPDATE tasks t SET status = $1, owner = NULL, lease_expires = NULL, "
	                    "attempts = t.attempts + 1, last_error = $2, updated = $3 "
	                    "WHERE t.id = $4 RETURNING " TASK_COLS,
	                    &p),
	             id, "task run failed", e);
	free(err);
	return t;
}

/* Release each task id of r (one column); cb per released task. */
static int
task_release_ids(struct pg_store *s, PGresult *r, int64_t now, void (*cb)(json_t *, void *),
                 void *arg)
{
	int i, n;
	json_t *t;

	if (r == NULL)
		return -1;
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		if ((t = pg_store_task_release(s, pg_int(r, i, 0, 0), NULL, 0, now, NULL)) == NULL)
			continue;
		if (cb != NULL)
			cb(t, arg);
		json_decref(t);
	}
	PQclear(r);
	return n;
}

int
pg_store_task_expire(struct pg_store *s, int64_t now, void (*cb)(json_t *, void *), void *arg)
{
	struct pg_params p = {0};

	pp_int(&p, now);
	return task_release_ids(s,
	                        pg_run(s,
	                               "SELECT id FROM tasks WHERE status = 'claimed' AND "
	                               "lease_expires <= $1 ORDER BY id",
	                               &p),
	                        now, cb, arg);
}

int
pg_store_task_release_agent(struct pg_store *s, const char *agent, int64_t now,
                            void (*cb)(json_t *, void *), void *arg)
{
	struct pg_params p = {0};

	pp_text(&p, agent);
	return task_release_ids(
	        s,
	        pg_run(s,
	               "SELECT id FROM tasks WHERE status = 'claimed' AND owner = $1 ORDER BY id",
	               &p),
	        now, cb, arg);
}

int
pg_store_task_renew_agent(struct pg_store *s, const char *agent, int64_t now)
{
	struct pg_params p = {0};
	PGresult *r;
	int n;

	pp_int(&p, now);
	pp_text(&p, agent);
	r = pg_run(s,
	           "UPDATE tasks SET lease_expires = $1 + lease_ms WHERE status = 'claimed' AND "
	           "owner = $2",
	           &p);
	if (r == NULL)
		return -1;
	n = (int)pg_changes(r);
	PQclear(r);
	return n;
}

int64_t
pg_store_task_next_expiry(struct pg_store *s)
{
	return pg_scalar(s, "SELECT min(lease_expires) FROM tasks WHERE status = 'claimed'", NULL,
	                 -1);
}
