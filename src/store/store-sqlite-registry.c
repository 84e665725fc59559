/*
 * store-sqlite-registry.c -- the registries on SQLite: agents, tenants,
 * kv, the skills index and the prompt log.
 *
 * Agents are rows upserted field by field (agent_put), listed by kind and
 * state, and found lost when their lease runs out.  Tenants are provisioned
 * jails with a status; kv holds the daemon's small settings; the skills
 * index is replaced whole by the indexer and searched with LIKE; the
 * prompt log appends one row per prompt.  Single-row reads go through
 * sq_one_row, so a missing row is not_found with the same message as on
 * PostgreSQL.
 */
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-rules.h"
#include "store/store-sqlite.h"

/* ---- agents ---- */

#define AGENT_COLS                                                                                 \
	"id, kind, name, provider, host, pid, pid_start, session_id, state, reason, since, lost, " \
	"lease_ms, heartbeat, tenant, detail, created, updated, owner_uid, task, epoch, "          \
	"last_message"

static json_t *
agent_from_row(sqlite3_stmt *q)
{
	json_t *a = json_object(), *detail;

	json_object_set_new(a, "id", sq_col_text_or_null(q, 0));
	json_object_set_new(a, "kind", sq_col_text_or_null(q, 1));
	json_object_set_new(a, "name", sq_col_text_or_null(q, 2));
	json_object_set_new(a, "provider", sq_col_text_or_null(q, 3));
	json_object_set_new(a, "host", sq_col_text_or_null(q, 4));
	json_object_set_new(a, "pid", sq_col_int_or_null(q, 5));
	json_object_set_new(a, "pid_start", sq_col_int_or_null(q, 6));
	json_object_set_new(a, "session_id", sq_col_text_or_null(q, 7));
	json_object_set_new(a, "state", sq_col_text_or_null(q, 8));
	json_object_set_new(a, "reason", sq_col_text_or_null(q, 9));
	json_object_set_new(a, "since_ms", sq_col_int_or_null(q, 10));
	json_object_set_new(a, "lost", json_boolean(sqlite3_column_int(q, 11)));
	json_object_set_new(a, "lease_ms", sq_col_int_or_null(q, 12));
	json_object_set_new(a, "heartbeat_ms", sq_col_int_or_null(q, 13));
	json_object_set_new(a, "tenant", sq_col_text_or_null(q, 14));
	detail = sq_col_json_or_null(q, 15);
	if (json_is_object(detail))
		json_object_update_missing(a, detail);
	json_decref(detail);
	json_object_set_new(a, "created_ms", json_integer(sqlite3_column_int64(q, 16)));
	json_object_set_new(a, "updated_ms", json_integer(sqlite3_column_int64(q, 17)));
	json_object_set_new(a, "owner_uid", sq_col_int_or_null(q, 18));
	json_object_set_new(a, "task", sq_col_int_or_null(q, 19));
	json_object_set_new(a, "epoch", sq_col_int_or_null(q, 20));
	json_object_set_new(a, "last_message", sq_col_text_or_null(q, 21));
	return a;
}

json_t *
sqlite_store_agent_get(struct sqlite_store *s, const char *id, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "SELECT " AGENT_COLS " FROM agents WHERE id = ?");
	json_t *a;

	if (q != NULL)
		sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	if (sq_one_row(s, q, "agent", e, "no agent %s", id) == -1)
		return NULL;
	a = agent_from_row(q);
	sqlite3_reset(q);
	return a;
}

/*
 * Set columns of agent id from fields (creating the row if needed).  Known
 * keys map to columns; "detail" must be an object and replaces the detail.
 */
json_t *
sqlite_store_agent_put(struct sqlite_store *s, const char *id, json_t *f, int64_t now,
                       struct store_err *e)
{
	sqlite3_stmt *q;
	const char *key;
	json_t *v;
	char sql[160];

	q = sq_st(s, "INSERT INTO agents (id, created, updated) VALUES (?, ?, ?) "
	             "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated");
	sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, now);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	json_object_foreach(f, key, v)
	{
		sqlite3_stmt *u;
		int known = store_agent_field_kind(key);

		if (known == 0) {
			store_err_set(e, ERR_INTERNAL, "agent has no field %s", key);
			return NULL;
		}
		/* key is one of the fixed names above, so building the SQL is safe. */
		snprintf(sql, sizeof sql, "UPDATE agents SET %s = ? WHERE id = ?", key);
		if (!s->txn)
			sq_snapshot_end(s);
		if (sqlite3_prepare_v2(s->db, sql, -1, &u, NULL) != SQLITE_OK)
			goto dberr;
		if (json_is_null(v))
			sqlite3_bind_null(u, 1);
		else if (known == 1)
			sqlite3_bind_text(u, 1, json_string_value(v), -1, SQLITE_TRANSIENT);
		else if (known == 2)
			sqlite3_bind_int64(
			        u, 1, json_is_boolean(v) ? json_is_true(v) : json_integer_value(v));
		else {
			char *d = json_dumps(v, JSON_COMPACT);
			sqlite3_bind_text(u, 1, d, -1, free);
		}
		sqlite3_bind_text(u, 2, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(u) != SQLITE_DONE) {
			sqlite3_finalize(u);
			goto dberr;
		}
		sqlite3_finalize(u);
	}
	return sqlite_store_agent_get(s, id, e);
dberr:
	sq_dberr(s, e, "agent");
	return NULL;
}

json_t *
sqlite_store_agent_list(struct sqlite_store *s, const char *kind, const char *state,
                        struct store_err *e)
{
	sqlite3_stmt *q =
	        sq_st(s, "SELECT " AGENT_COLS " FROM agents WHERE (?1 IS NULL OR kind = ?1) "
	                 "AND (?2 IS NULL OR state = ?2) ORDER BY created, id");
	json_t *items = json_array();

	if (q == NULL) {
		json_decref(items);
		sq_dberr(s, e, "list-agents");
		return NULL;
	}
	sq_bind_text_or_null(q, 1, kind);
	sq_bind_text_or_null(q, 2, state);
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(items, agent_from_row(q));
	sqlite3_reset(q);
	return json_pack("{s:o}", "items", items);
}

int
sqlite_store_agent_delete(struct sqlite_store *s, const char *id)
{
	sqlite3_stmt *q = sq_st(s, "DELETE FROM agents WHERE id = ?");

	sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	return sqlite3_step(q) == SQLITE_DONE ? sqlite3_changes(s->db) : -1;
}

int
sqlite_store_agent_find_lost(struct sqlite_store *s, int64_t now, void (*cb)(const char *, void *),
                             void *arg)
{
	sqlite3_stmt *q = sq_st(s, "SELECT id FROM agents WHERE kind = 'registered' AND lost = 0 "
	                           "AND heartbeat + lease_ms <= ? ORDER BY id");
	char **ids = NULL;
	size_t n = 0, cap = 0, i;

	sqlite3_bind_int64(q, 1, now);
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (n == cap)
			ids = xreallocarray(ids, cap = cap ? cap * 2 : 8, sizeof *ids);
		ids[n++] = xstrdup((const char *)sqlite3_column_text(q, 0));
	}
	sqlite3_reset(q);
	for (i = 0; i < n; i++) {
		cb(ids[i], arg);
		free(ids[i]);
	}
	free(ids);
	return (int)n;
}

int64_t
sqlite_store_agent_next_loss(struct sqlite_store *s)
{
	sqlite3_stmt *q = sq_st(s, "SELECT min(heartbeat + lease_ms) FROM agents "
	                           "WHERE kind = 'registered' AND lost = 0");

	return sq_row_int64(q, -1);
}

/* ---- tenants ---- */

static json_t *
tenant_from_row(sqlite3_stmt *q)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "tenant_id",
	                 sq_col_text_or_null(q, 0), "jail_root_path", sq_col_text_or_null(q, 1),
	                 "collection_id", sq_col_text_or_null(q, 2), "status",
	                 sq_col_text_or_null(q, 3), "reason", sq_col_text_or_null(q, 4),
	                 "created_ms", (json_int_t)sqlite3_column_int64(q, 5), "updated_ms",
	                 (json_int_t)sqlite3_column_int64(q, 6));
}

#define TENANT_COLS "tenant_id, jail_root_path, collection_id, status, reason, created, updated"

json_t *
sqlite_store_tenant_get(struct sqlite_store *s, const char *tenant_id, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "SELECT " TENANT_COLS " FROM tenants WHERE tenant_id = ?");
	json_t *t;

	if (q != NULL)
		sqlite3_bind_text(q, 1, tenant_id, -1, SQLITE_TRANSIENT);
	if (sq_one_row(s, q, "tenant", e, "no tenant %s", tenant_id) == -1)
		return NULL;
	t = tenant_from_row(q);
	sqlite3_reset(q);
	return t;
}

json_t *
sqlite_store_tenant_put(struct sqlite_store *s, const char *tenant_id, const char *root,
                        const char *collection, int64_t now, struct store_err *e)
{
	sqlite3_stmt *q =
	        sq_st(s, "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, "
	                 "status, reason, created, updated) VALUES (?, ?, ?, 'provisioned', "
	                 "NULL, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET jail_root_path = "
	                 "excluded.jail_root_path, collection_id = excluded.collection_id, "
	                 "status = 'provisioned', reason = NULL, updated = excluded.updated");

	sqlite3_bind_text(q, 1, tenant_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, root, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, collection, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 4, now);
	sqlite3_bind_int64(q, 5, now);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "register-tenant");
		return NULL;
	}
	return sqlite_store_tenant_get(s, tenant_id, e);
}

json_t *
sqlite_store_tenant_list(struct sqlite_store *s, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "SELECT " TENANT_COLS " FROM tenants ORDER BY tenant_id");
	json_t *items = json_array();

	(void)e;
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(items, tenant_from_row(q));
	sqlite3_reset(q);
	return json_pack("{s:o}", "items", items);
}

int
sqlite_store_tenant_set_status(struct sqlite_store *s, const char *tenant_id, const char *status,
                               const char *reason, int64_t now, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "UPDATE tenants SET status = ?, reason = ?, updated = ? "
	                           "WHERE tenant_id = ?");

	sqlite3_bind_text(q, 1, status, -1, SQLITE_TRANSIENT);
	sq_bind_text_or_null(q, 2, reason);
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_text(q, 4, tenant_id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "tenant status");
		return -1;
	}
	if (sqlite3_changes(s->db) == 0) {
		store_err_set(e, ERR_NOT_FOUND, "no tenant %s", tenant_id);
		return -1;
	}
	return 0;
}

int
sqlite_store_tenant_delete(struct sqlite_store *s, const char *tenant_id, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "DELETE FROM tenants WHERE tenant_id = ?");

	sqlite3_bind_text(q, 1, tenant_id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "delete-tenant");
		return -1;
	}
	if (sqlite3_changes(s->db) == 0) {
		store_err_set(e, ERR_NOT_FOUND, "no tenant %s", tenant_id);
		return -1;
	}
	return 0;
}

/* ---- kv ---- */

int
sqlite_store_kv_set(struct sqlite_store *s, const char *key, const char *value, struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO "
	                           "UPDATE SET value = excluded.value");

	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, value, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_dberr(s, e, "kv");
		return -1;
	}
	return 0;
}

char *
sqlite_store_kv_get(struct sqlite_store *s, const char *key)
{
	sqlite3_stmt *q = sq_st(s, "SELECT value FROM kv WHERE key = ?");
	char *v = NULL;

	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = xstrdup((const char *)sqlite3_column_text(q, 0));
	sqlite3_reset(q);
	return v;
}

/* ---- skills index and prompt log ---- */

static int
skill_insert(struct sqlite_store *s, json_t *sk, int64_t now)
{
	sqlite3_stmt *q =
	        sq_st(s, "INSERT OR REPLACE INTO skills (name, description, path, fields, "
	                 "body, indexed) VALUES (?, ?, ?, ?, ?, ?)");
	char *fields;
	int rc;

	if (q == NULL)
		return -1;
	fields = json_dumps(json_object_get(sk, "fields"), JSON_COMPACT | JSON_SORT_KEYS);
	sq_bind_text_or_null(q, 1, json_string_value(json_object_get(sk, "name")));
	sq_bind_text_or_null(q, 2, json_string_value(json_object_get(sk, "description")));
	sq_bind_text_or_null(q, 3, json_string_value(json_object_get(sk, "path")));
	sqlite3_bind_text(q, 4, fields != NULL ? fields : "{}", -1, SQLITE_TRANSIENT);
	sq_bind_text_or_null(q, 5, json_string_value(json_object_get(sk, "body")));
	sqlite3_bind_int64(q, 6, now);
	rc = sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(q);
	free(fields);
	return rc;
}

int
sqlite_store_skills_replace(struct sqlite_store *s, json_t *skills, int64_t now,
                            struct store_err *e)
{
	size_t i;
	json_t *sk;

	if (sq_run(s, "DELETE FROM skills") == -1) {
		sq_dberr(s, e, "skills index");
		return -1;
	}
	json_array_foreach(skills, i, sk)
	{
		if (skill_insert(s, sk, now) == -1) {
			sq_dberr(s, e, "skills index");
			return -1;
		}
	}
	return 0;
}

static json_t *
skill_from_row(sqlite3_stmt *q, int with_body)
{
	json_t *sk = json_object(), *fields;

	json_object_set_new(sk, "name", sq_col_text_or_null(q, 0));
	json_object_set_new(sk, "description", sq_col_text_or_null(q, 1));
	json_object_set_new(sk, "path", sq_col_text_or_null(q, 2));
	fields = sq_col_json_or_null(q, 3);
	json_object_set_new(sk, "fields", json_is_object(fields) ? fields : json_object());
	if (!json_is_object(fields))
		json_decref(fields);
	if (with_body)
		json_object_set_new(sk, "body", sq_col_text_or_null(q, 4));
	return sk;
}

json_t *
sqlite_store_skills_list(struct sqlite_store *s, const char *query, struct store_err *e)
{
	sqlite3_stmt *q =
	        sq_st(s, "SELECT name, description, path, fields, body FROM skills WHERE ?1 "
	                 "IS NULL OR name LIKE ?1 ESCAPE '\\' OR description LIKE ?1 ESCAPE "
	                 "'\\' OR body LIKE ?1 ESCAPE '\\' ORDER BY name");
	json_t *items;

	if (q == NULL) {
		sq_dberr(s, e, "skills-list");
		return NULL;
	}
	if (query != NULL)
		sqlite3_bind_text(q, 1, store_like_substring(query), -1, free);
	items = json_array();
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(items, skill_from_row(q, 0));
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return json_pack("{s:o}", "items", items);
}

json_t *
sqlite_store_skill_get(struct sqlite_store *s, const char *name, struct store_err *e)
{
	sqlite3_stmt *q =
	        sq_st(s, "SELECT name, description, path, fields, body FROM skills WHERE name = ?");
	json_t *sk;

	if (q != NULL)
		sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
	if (sq_one_row(s, q, "skill-show", e, "no skill named %.64s", name) == -1)
		return NULL;
	sk = skill_from_row(q, 1);
	sqlite3_reset(q);
	return sk;
}

int
sqlite_store_prompt_log_append(struct sqlite_store *s, const char *session_id, int64_t ts,
                               const char *r1, const char *r2, const char *r3, long long bytes,
                               struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "INSERT INTO prompt_log (session_id, ts, r1, r2, r3, bytes) "
	                           "VALUES (?, ?, ?, ?, ?, ?)");
	int rc;

	if (q == NULL) {
		sq_dberr(s, e, "prompt_log");
		return -1;
	}
	sqlite3_bind_text(q, 1, session_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, ts);
	sq_bind_text_or_null(q, 3, r1);
	sq_bind_text_or_null(q, 4, r2);
	sq_bind_text_or_null(q, 5, r3);
	sqlite3_bind_int64(q, 6, bytes);
	rc = sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
	if (rc == -1)
		sq_dberr(s, e, "prompt_log");
	sqlite3_reset(q);
	return rc;
}
