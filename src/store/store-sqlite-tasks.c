/*
 * store-sqlite-tasks.c -- the task board on SQLite.
 *
 * Tasks, their dependencies and their claims: create, show and list (the
 * list and show write JSON bytes straight from the rows, memoised within
 * the read snapshot, since they are the hottest reads), claim (the next
 * ready task or a given one), update, complete, release, and the lease
 * sweeps (expire, release or renew an agent's claims).  What a change may
 * do is decided by store-rules.c, the same rules as on PostgreSQL; this
 * file runs the SQL.  The daemon is the only writer, so a read followed by
 * a write in one transaction sees no one else's change in between.
 */
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-rules.h"
#include "store/store-sqlite.h"

/* ---- tasks ---- */

#define TASK_COLS                                                                                  \
	"t.id, t.title, t.body, t.status, t.priority, t.owner, t.lease_expires, t.result, "        \
	"t.progress, t.created, t.updated, t.claimed, t.completed, t.epoch, t.attempts, "          \
	"t.max_attempts, t.last_error, t.tags"

static json_t *
task_deps_of(struct sqlite_store *s, long long id)
{
	sqlite3_stmt *q = sq_st(s, "SELECT dep FROM task_deps WHERE task = ? ORDER BY dep");
	json_t *a = json_array();

	sqlite3_bind_int64(q, 1, id);
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(a, json_integer(sqlite3_column_int64(q, 0)));
	return a;
}

/* The tags column i as an array (a damaged value reads as none). */
static json_t *
task_tags_of(sqlite3_stmt *q, int i)
{
	json_t *v = sq_col_json_or_null(q, i);

	if (json_is_array(v))
		return v;
	json_decref(v);
	return json_array();
}

/* Build a task object from a row selected with TASK_COLS. */
static json_t *
task_from_row(struct sqlite_store *s, sqlite3_stmt *q)
{
	json_t *t = json_object();
	long long id = sqlite3_column_int64(q, 0);

	json_object_set_new(t, "id", json_integer(id));
	json_object_set_new(t, "title", sq_col_text_or_null(q, 1));
	json_object_set_new(t, "body", sq_col_text_or_null(q, 2));
	json_object_set_new(t, "status", sq_col_text_or_null(q, 3));
	json_object_set_new(t, "priority", json_integer(sqlite3_column_int64(q, 4)));
	json_object_set_new(t, "owner", sq_col_text_or_null(q, 5));
	json_object_set_new(t, "lease_expires_ms", sq_col_int_or_null(q, 6));
	json_object_set_new(t, "result", sq_col_json_or_null(q, 7));
	json_object_set_new(t, "progress", sq_col_text_or_null(q, 8));
	json_object_set_new(t, "created_ms", json_integer(sqlite3_column_int64(q, 9)));
	json_object_set_new(t, "updated_ms", json_integer(sqlite3_column_int64(q, 10)));
	json_object_set_new(t, "claimed_ms", sq_col_int_or_null(q, 11));
	json_object_set_new(t, "completed_ms", sq_col_int_or_null(q, 12));
	json_object_set_new(t, "epoch", json_integer(sqlite3_column_int64(q, 13)));
	json_object_set_new(t, "attempts", json_integer(sqlite3_column_int64(q, 14)));
	json_object_set_new(t, "max_attempts", sq_col_int_or_null(q, 15));
	json_object_set_new(t, "last_error", sq_col_text_or_null(q, 16));
	json_object_set_new(t, "depends_on", task_deps_of(s, id));
	json_object_set_new(t, "tags", task_tags_of(q, 17));
	return t;
}

json_t *
sqlite_store_task_get(struct sqlite_store *s, long long id, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "SELECT " TASK_COLS " FROM tasks t WHERE t.id = ?");
	json_t *t;

	if (q != NULL)
		sqlite3_bind_int64(q, 1, id);
	if (sq_one_row(s, q, "task-show", e, "no task %lld", id) == -1)
		return NULL;
	t = task_from_row(s, q);
	sqlite3_reset(q);
	return t;
}

static void
put_text_or_null(struct buf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		buf_add(b, "null", 4);
	else
		jsonw_str(b, (const char *)sqlite3_column_text(q, i),
		          (size_t)sqlite3_column_bytes(q, i));
}

static void
put_int_or_null(struct buf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		buf_add(b, "null", 4);
	else
		jsonw_int(b, sqlite3_column_int64(q, i));
}

#define PUT_KEY(b, k) buf_add(b, k, sizeof k - 1)

/*
 * The task of a TASK_COLS row written as JSON straight from its columns:
 * the bytes jsonw_dump(task_from_row(...)) writes (a unit test holds the
 * two together), without building and freeing a jansson object per field.
 */
static void put_deps(struct buf *, sqlite3_stmt *, int);

/* The tags column i: its text is the compact array store_rule_tags wrote (no escape needed). */
static void
put_tags(struct buf *b, sqlite3_stmt *q, int i)
{
	json_t *v;

	if (sqlite3_column_type(q, i) == SQLITE_TEXT && sqlite3_column_bytes(q, i) == 2) {
		buf_add(b, "[]", 2); /* the common case, without a parse */
		return;
	}
	v = task_tags_of(q, i);
	if (jsonw_dump(b, v) == -1)
		buf_add(b, "[]", 2);
	json_decref(v);
}

/* TASK_COLS and, as column 18, the task's dependencies (comma-separated, in any order). */
#define TASK_JSON_SQL                                                                              \
	"SELECT " TASK_COLS ", (SELECT group_concat(dep) FROM task_deps d WHERE d.task = t.id) "   \
	"FROM tasks t WHERE t.id = ?"

static void
task_write_row(sqlite3_stmt *q, struct buf *b)
{
	long long id = sqlite3_column_int64(q, 0);

	PUT_KEY(b, "{\"id\":");
	jsonw_int(b, id);
	PUT_KEY(b, ",\"title\":");
	put_text_or_null(b, q, 1);
	PUT_KEY(b, ",\"body\":");
	put_text_or_null(b, q, 2);
	PUT_KEY(b, ",\"status\":");
	put_text_or_null(b, q, 3);
	PUT_KEY(b, ",\"priority\":");
	jsonw_int(b, sqlite3_column_int64(q, 4));
	PUT_KEY(b, ",\"owner\":");
	put_text_or_null(b, q, 5);
	PUT_KEY(b, ",\"lease_expires_ms\":");
	put_int_or_null(b, q, 6);
	PUT_KEY(b, ",\"result\":");
	if (sqlite3_column_type(q, 7) == SQLITE_NULL)
		buf_add(b, "null", 4);
	else {
		/* Stored as JSON text: through jansson, so a damaged value still reads as null. */
		json_t *v = sq_col_json_or_null(q, 7);
		if (jsonw_dump(b, v) == -1)
			buf_add(b, "null", 4);
		json_decref(v);
	}
	PUT_KEY(b, ",\"progress\":");
	put_text_or_null(b, q, 8);
	PUT_KEY(b, ",\"created_ms\":");
	jsonw_int(b, sqlite3_column_int64(q, 9));
	PUT_KEY(b, ",\"updated_ms\":");
	jsonw_int(b, sqlite3_column_int64(q, 10));
	PUT_KEY(b, ",\"claimed_ms\":");
	put_int_or_null(b, q, 11);
	PUT_KEY(b, ",\"completed_ms\":");
	put_int_or_null(b, q, 12);
	PUT_KEY(b, ",\"epoch\":");
	jsonw_int(b, sqlite3_column_int64(q, 13));
	PUT_KEY(b, ",\"attempts\":");
	jsonw_int(b, sqlite3_column_int64(q, 14));
	PUT_KEY(b, ",\"max_attempts\":");
	put_int_or_null(b, q, 15);
	PUT_KEY(b, ",\"last_error\":");
	put_text_or_null(b, q, 16);
	PUT_KEY(b, ",\"depends_on\":");
	put_deps(b, q, 18);
	PUT_KEY(b, ",\"tags\":");
	put_tags(b, q, 17);
	buf_addc(b, '}');
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* The dependencies as a sorted JSON array, from the group_concat column i of TASK_JSON_SQL. */
static void
put_deps(struct buf *b, sqlite3_stmt *q, int i)
{
	const char *p = (const char *)sqlite3_column_text(q, i);
	long long small[32], *v = small;
	size_t n = 0, cap = sizeof small / sizeof *small, k;
	char *end;

	buf_addc(b, '[');
	while (p != NULL && *p != '\0') {
		long long x = strtoll(p, &end, 10);
		if (end == p)
			break; /* not a number: cannot happen with an INTEGER column */
		if (n == cap) {
			cap *= 2;
			v = v == small ? memcpy(xreallocarray(NULL, cap, sizeof *v), small,
			                        sizeof small)
			               : xreallocarray(v, cap, sizeof *v);
		}
		v[n++] = x;
		p = *end == ',' ? end + 1 : end;
	}
	qsort(v, n, sizeof *v, cmp_ll);
	for (k = 0; k < n; k++) {
		if (k > 0)
			buf_addc(b, ',');
		jsonw_int(b, v[k]);
	}
	buf_addc(b, ']');
	if (v != small)
		free(v);
}

int
sqlite_store_task_get_json(struct sqlite_store *s, long long id, struct buf *out,
                           struct store_err *e)
{
	size_t start = out->len;
	sqlite3_stmt *q;

	if (sq_memo_get(s, id, out) == 0)
		return 0;
	if ((q = sq_st(s, TASK_JSON_SQL)) != NULL)
		sqlite3_bind_int64(q, 1, id);
	if (sq_one_row(s, q, "task-show", e, "no task %lld", id) == -1)
		return -1;
	task_write_row(q, out);
	sqlite3_reset(q);
	sq_memo_put(s, id, out->data + start, out->len - start);
	return 0;
}

static int
task_exists(void *ctx, long long id)
{
	struct sqlite_store *s = ctx;
	sqlite3_stmt *q = sq_st(s, "SELECT 1 FROM tasks WHERE id = ?");

	sqlite3_bind_int64(q, 1, id);
	return sq_row_exists(q);
}

/* Would task -> dep close a cycle (dep already reaches task)? */
static int
task_dep_cycles(void *ctx, long long task, long long dep)
{
	struct sqlite_store *s = ctx;
	sqlite3_stmt *q =
	        sq_st(s, "WITH RECURSIVE r(x) AS (SELECT ? UNION SELECT d.dep FROM "
	                 "task_deps d JOIN r ON d.task = r.x) SELECT 1 FROM r WHERE x = ?");

	sqlite3_bind_int64(q, 1, dep);
	sqlite3_bind_int64(q, 2, task);
	return sq_row_exists(q);
}

/* Replace task's dependencies with deps (an array of integers). */
static int
task_set_deps(struct sqlite_store *s, long long task, json_t *deps, struct store_err *e)
{
	struct store_dep_probe probe = {task_exists, task_dep_cycles, s};
	sqlite3_stmt *q;
	size_t i;
	json_t *v;

	q = sq_st(s, "DELETE FROM task_deps WHERE task = ?");
	sqlite3_bind_int64(q, 1, task);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	json_array_foreach(deps, i, v)
	{
		long long dep;

		if (store_rule_dep(task, v, &probe, &dep, e) == -1)
			return -1;
		q = sq_st(s, "INSERT OR IGNORE INTO task_deps (task, dep) VALUES (?, ?)");
		sqlite3_bind_int64(q, 1, task);
		sqlite3_bind_int64(q, 2, dep);
		if (sqlite3_step(q) != SQLITE_DONE)
			goto dberr;
	}
	return 0;
dberr:
	sq_dberr(s, e, "task dependencies");
	return -1;
}

/*
 * A task just inserted without dependencies, as JSON from what was
 * inserted (the columns' defaults for the rest): the bytes task_write_row
 * would write of its row, without reading it back (test_store holds the
 * two together).
 */
static void
task_write_new(struct buf *b, long long id, const char *title, const char *body, long long priority,
               const char *tags, int64_t now)
{
	PUT_KEY(b, "{\"id\":");
	jsonw_int(b, id);
	PUT_KEY(b, ",\"title\":");
	jsonw_str(b, title, strlen(title));
	PUT_KEY(b, ",\"body\":");
	jsonw_str(b, body != NULL ? body : "", body != NULL ? strlen(body) : 0);
	PUT_KEY(b, ",\"status\":\"open\",\"priority\":");
	jsonw_int(b, priority);
	PUT_KEY(b, ",\"owner\":null,\"lease_expires_ms\":null,\"result\":null,\"progress\":null,"
	           "\"created_ms\":");
	jsonw_int(b, now);
	PUT_KEY(b, ",\"updated_ms\":");
	jsonw_int(b, now);
	PUT_KEY(b, ",\"claimed_ms\":null,\"completed_ms\":null,\"epoch\":0,\"attempts\":0,"
	           "\"max_attempts\":null,\"last_error\":null,\"depends_on\":[],\"tags\":");
	buf_add(b, tags, strlen(tags));
	buf_addc(b, '}');
}

long long
sqlite_store_task_insert(struct sqlite_store *s, const char *title, const char *body,
                         long long priority, json_t *depends_on, json_t *tags, int64_t now,
                         struct buf *out, struct store_err *e)
{
	sqlite3_stmt *q = NULL;
	long long id;
	char *tagtext;

	if ((tagtext = store_rule_tags(tags, e)) == NULL)
		return -1;
	q = sq_st(s, "INSERT INTO tasks (title, body, priority, created, updated, tags) "
	             "VALUES (?, ?, ?, ?, ?, ?)");
	if (q == NULL)
		goto dberr;
	sqlite3_bind_text(q, 6, tagtext, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 1, title, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, body != NULL ? body : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, priority);
	sqlite3_bind_int64(q, 4, now);
	sqlite3_bind_int64(q, 5, now);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	sqlite3_reset(q); /* SQLITE_STATIC: the bindings must not outlive the call */
	id = sqlite3_last_insert_rowid(s->db);
	if (json_array_size(depends_on) > 0) {
		if (task_set_deps(s, id, depends_on, e) == -1 ||
		    (out != NULL && sqlite_store_task_get_json(s, id, out, e) == -1))
			id = -1;
	} else if (out != NULL)
		task_write_new(out, id, title, body, priority, tagtext, now);
	free(tagtext);
	return id;
dberr:
	sq_dberr(s, e, "task-create");
	if (q != NULL)
		sqlite3_reset(q);
	free(tagtext);
	return -1;
}

/* TASK_JSON_SQL's columns for a page of task-list: by id after ?3, or the ready queue. */
#define TASK_PAGE_COLS                                                                             \
	"SELECT " TASK_COLS ", (SELECT group_concat(dep) FROM task_deps d WHERE d.task = t.id) "   \
	"FROM tasks t WHERE "
/* The tag filter of a page (?5, NULL: any). */
#define TAG_WHERE "(?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?5))"

int
sqlite_store_task_list_json(struct sqlite_store *s, struct store_task_page *pg, struct buf *out,
                            struct store_err *e)
{
	size_t start = out->len;
	sqlite3_stmt *q;

	if (pg->ready_only)
		q = sq_st(s, TASK_PAGE_COLS READY_WHERE " AND " TAG_WHERE
		                                        " ORDER BY t.priority DESC, t.id LIMIT ?4");
	else
		q = sq_st(s, TASK_PAGE_COLS "(?1 IS NULL OR t.status = ?1) AND (?2 IS NULL OR "
		                            "t.owner = ?2) AND t.id > ?3 AND " TAG_WHERE
		                            " ORDER BY t.id LIMIT ?4");
	if (q == NULL) {
		sq_dberr(s, e, "task-list");
		return -1;
	}
	if (!pg->ready_only) {
		sq_bind_text_or_null(q, 1, pg->status);
		sq_bind_text_or_null(q, 2, pg->owner);
		sqlite3_bind_int64(q, 3, pg->after);
	}
	sq_bind_text_or_null(q, 5, pg->tag);
	sqlite3_bind_int64(q, 4, pg->limit + 1); /* one more: is there a next page? */
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (pg->count == pg->limit) {
			pg->more = 1;
			break;
		}
		if (pg->count > 0)
			buf_addc(out, ',');
		task_write_row(q, out);
		pg->count++;
		pg->last_id = sqlite3_column_int64(q, 0);
		if (pg->max_bytes > 0 && out->len - start > pg->max_bytes) {
			pg->over = 1;
			break;
		}
	}
	sqlite3_reset(q);
	return 0;
}

static long long
task_next_ready(struct sqlite_store *s)
{
	sqlite3_stmt *q = sq_st(s, "SELECT t.id FROM tasks t WHERE " READY_WHERE
	                           " ORDER BY t.priority DESC, t.id LIMIT 1");

	return sq_row_int64(q, 0);
}

static int
task_is_ready(struct sqlite_store *s, long long id)
{
	sqlite3_stmt *q = sq_st(s, "SELECT 1 FROM tasks t WHERE t.id = ? AND " READY_WHERE);

	sqlite3_bind_int64(q, 1, id);
	return sq_row_exists(q);
}

json_t *
sqlite_store_task_claim(struct sqlite_store *s, const char *agent, long long id, long long lease_ms,
                        long long max_attempts, int64_t now, struct store_err *e)
{
	sqlite3_stmt *q;
	json_t *t;

	if (id == 0) {
		if ((id = task_next_ready(s)) == 0) {
			store_err_set(e, ERR_NOT_FOUND, "no ready task");
			return NULL;
		}
	} else {
		if ((t = sqlite_store_task_get(s, id, e)) == NULL)
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
	}
	/* lease_ms 0: no lease (a task-bound run's claim, released with the run's end). */
	q = sq_st(s, "UPDATE tasks SET status = 'claimed', owner = ?1, lease_ms = NULLIF(?2, 0), "
	             "lease_expires = CASE WHEN ?2 > 0 THEN ?3 END, claimed = ?4, updated = ?5, "
	             "epoch = epoch + 1, "
	             "max_attempts = CASE WHEN ?7 > 0 THEN ?7 ELSE max_attempts END "
	             "WHERE id = ?6 AND status = 'open'");
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, lease_ms);
	sqlite3_bind_int64(q, 3, now + lease_ms);
	sqlite3_bind_int64(q, 4, now);
	sqlite3_bind_int64(q, 5, now);
	sqlite3_bind_int64(q, 6, id);
	sqlite3_bind_int64(q, 7, max_attempts);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "task-claim");
		return NULL;
	}
	if (sqlite3_changes(s->db) != 1) {
		store_err_set(e, ERR_CONFLICT, "task %lld was claimed meanwhile", id);
		return NULL;
	}
	return sqlite_store_task_get(s, id, e);
}

static int
task_set_text(struct sqlite_store *s, long long id, const char *sql, const char *v, int64_t now)
{
	sqlite3_stmt *q = sq_st(s, sql);

	sq_bind_text_or_null(q, 1, v);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, id);
	return sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
}

static int
task_set_tags(struct sqlite_store *s, long long id, json_t *tags, int64_t now, struct store_err *e)
{
	char *text = store_rule_tags(tags, e);
	int rc;

	if (text == NULL)
		return -1;
	rc = task_set_text(s, id, "UPDATE tasks SET tags = ?, updated = ? WHERE id = ?", text, now);
	free(text);
	if (rc == -1)
		sq_dberr(s, e, "task-update");
	return rc;
}

static int
task_update_status(struct sqlite_store *s, json_t *t, long long id, const char *to, int64_t now,
                   struct store_err *e)
{
	const char *from = json_string_value(json_object_get(t, "status"));
	sqlite3_stmt *q;

	if (store_rule_status_change(from, to, id, e) == -1)
		return -1;
	q = sq_st(s,
	          "UPDATE tasks SET status = ?, owner = NULL, lease_expires = NULL, updated = ?, "
	          "attempts = ? WHERE id = ?");
	sqlite3_bind_text(q, 1, to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3,
	                   store_rule_attempts_after(
	                           from, to, json_integer_value(json_object_get(t, "attempts"))));
	sqlite3_bind_int64(q, 4, id);
	return sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
}

json_t *
sqlite_store_task_update(struct sqlite_store *s, long long id, json_t *ch, const char *agent,
                         long long epoch, int64_t now, struct store_err *e)
{
	json_t *t, *v;
	int rc = 0;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
		return NULL;
	if (store_rule_epoch(t, epoch, id, e) == -1 || store_rule_owner(t, agent, id, e) == -1)
		goto fail;
	if ((v = json_object_get(ch, "title")) != NULL)
		rc |= task_set_text(s, id, "UPDATE tasks SET title = ?, updated = ? WHERE id = ?",
		                    json_string_value(v), now);
	if ((v = json_object_get(ch, "body")) != NULL)
		rc |= task_set_text(s, id, "UPDATE tasks SET body = ?, updated = ? WHERE id = ?",
		                    json_string_value(v), now);
	if ((v = json_object_get(ch, "progress")) != NULL)
		rc |= task_set_text(s, id,
		                    "UPDATE tasks SET progress = ?, updated = ? WHERE id = ?",
		                    json_string_value(v), now);
	if ((v = json_object_get(ch, "tags")) != NULL && task_set_tags(s, id, v, now, e) == -1)
		goto fail;
	if ((v = json_object_get(ch, "priority")) != NULL) {
		sqlite3_stmt *q =
		        sq_st(s, "UPDATE tasks SET priority = ?, updated = ? WHERE id = ?");
		sqlite3_bind_int64(q, 1, json_integer_value(v));
		sqlite3_bind_int64(q, 2, now);
		sqlite3_bind_int64(q, 3, id);
		rc |= sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
	}
	if (rc != 0) {
		sq_dberr(s, e, "task-update");
		goto fail;
	}
	if ((v = json_object_get(ch, "depends_on")) != NULL && task_set_deps(s, id, v, e) == -1)
		goto fail;
	if ((v = json_object_get(ch, "status")) != NULL &&
	    task_update_status(s, t, id, json_string_value(v), now, e) == -1)
		goto fail;
	json_decref(t);
	return sqlite_store_task_get(s, id, e);
fail:
	json_decref(t);
	return NULL;
}

json_t *
sqlite_store_task_complete(struct sqlite_store *s, long long id, const char *agent, long long epoch,
                           json_t *result, int64_t now, int *repeated, struct store_err *e)
{
	sqlite3_stmt *q;
	json_t *t;
	char *res = NULL;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
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
	q = sq_st(s, "UPDATE tasks SET status = 'done', result = ?, lease_expires = NULL, "
	             "completed = ?, updated = ? WHERE id = ?");
	sq_bind_text_or_null(q, 1, res);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_int64(q, 4, id);
	free(res);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "task-complete");
		return NULL;
	}
	return sqlite_store_task_get(s, id, e);
}

json_t *
sqlite_store_task_release(struct sqlite_store *s, long long id, const char *agent, long long epoch,
                          int64_t now, struct store_err *e)
{
	sqlite3_stmt *q;
	json_t *t;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
		return NULL;
	if (store_rule_epoch(t, epoch, id, e) == -1 || store_rule_claimed(t, agent, id, e) == -1) {
		json_decref(t);
		return NULL;
	}
	json_decref(t);
	q = sq_st(s, "UPDATE tasks SET status = 'open', owner = NULL, lease_expires = NULL, "
	             "updated = ? WHERE id = ?");
	sqlite3_bind_int64(q, 1, now);
	sqlite3_bind_int64(q, 2, id);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "task-release");
		return NULL;
	}
	return sqlite_store_task_get(s, id, e);
}

json_t *
sqlite_store_task_run_failed(struct sqlite_store *s, long long id, const char *agent,
                             long long epoch, const char *reason, int64_t now, struct store_err *e)
{
	sqlite3_stmt *q;
	const char *to;
	char *err;
	json_t *t;
	int rc;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
		return NULL;
	if (store_rule_run_failed(t, agent, epoch, id, e) == -1) {
		json_decref(t);
		return NULL;
	}
	to = store_rule_failed_status(t);
	json_decref(t);
	err = store_rule_last_error(reason);
	q = sq_st(s, "UPDATE tasks SET status = ?, owner = NULL, lease_expires = NULL, "
	             "attempts = attempts + 1, last_error = ?, updated = ? WHERE id = ?");
	sqlite3_bind_text(q, 1, to, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, err, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_int64(q, 4, id);
	rc = sqlite3_step(q);
	sqlite3_reset(q); /* SQLITE_STATIC: the bindings must not outlive err */
	free(err);
	if (rc != SQLITE_DONE) {
		sq_dberr(s, e, "task run failed");
		return NULL;
	}
	return sqlite_store_task_get(s, id, e);
}

/* Collect ids from a one-column query, then release each (the statement is reused). */
static int
task_release_ids(struct sqlite_store *s, sqlite3_stmt *q, int64_t now, void (*cb)(json_t *, void *),
                 void *arg)
{
	long long *ids = NULL;
	size_t n = 0, cap = 0, i;
	json_t *t;

	while (sqlite3_step(q) == SQLITE_ROW) {
		if (n == cap)
			ids = xreallocarray(ids, cap = cap ? cap * 2 : 16, sizeof *ids);
		ids[n++] = sqlite3_column_int64(q, 0);
	}
	sqlite3_reset(q);
	for (i = 0; i < n; i++) {
		if ((t = sqlite_store_task_release(s, ids[i], NULL, 0, now, NULL)) == NULL)
			continue;
		if (cb != NULL)
			cb(t, arg);
		json_decref(t);
	}
	free(ids);
	return (int)n;
}

int
sqlite_store_task_expire(struct sqlite_store *s, int64_t now, void (*cb)(json_t *, void *),
                         void *arg)
{
	/*
	 * The leases that lapsed, from tasks_lease: not every claim (the planner would take
	 * tasks_ready, whose prefix is the status).
	 */
	sqlite3_stmt *q = sq_st(s, "SELECT id FROM tasks INDEXED BY tasks_lease WHERE "
	                           "status = 'claimed' AND lease_expires <= ? ORDER BY id");

	sqlite3_bind_int64(q, 1, now);
	return task_release_ids(s, q, now, cb, arg);
}

int
sqlite_store_task_release_agent(struct sqlite_store *s, const char *agent, int64_t now,
                                void (*cb)(json_t *, void *), void *arg)
{
	sqlite3_stmt *q = sq_st(s, "SELECT id FROM tasks WHERE status = 'claimed' AND owner = ? "
	                           "ORDER BY id");

	sqlite3_bind_text(q, 1, agent, -1, SQLITE_TRANSIENT);
	return task_release_ids(s, q, now, cb, arg);
}

int
sqlite_store_task_renew_agent(struct sqlite_store *s, const char *agent, int64_t now)
{
	sqlite3_stmt *q = sq_st(s, "UPDATE tasks SET lease_expires = ? + lease_ms "
	                           "WHERE status = 'claimed' AND owner = ?");

	sqlite3_bind_int64(q, 1, now);
	sqlite3_bind_text(q, 2, agent, -1, SQLITE_TRANSIENT);
	return sqlite3_step(q) == SQLITE_DONE ? sqlite3_changes(s->db) : -1;
}

int64_t
sqlite_store_task_next_expiry(struct sqlite_store *s)
{
	return sq_row_int64(sq_st(s, "SELECT min(lease_expires) FROM tasks INDEXED BY tasks_lease "
	                             "WHERE status = 'claimed'"),
	                    -1);
}
