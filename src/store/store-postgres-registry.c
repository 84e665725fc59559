/*
 * store-postgres-registry.c -- the registries on PostgreSQL: agents,
 * tenants, kv, the skills index and the prompt log.
 *
 * The same rows and JSON shapes as store-sqlite-registry.c.  On a shared
 * store the agent registry holds every host's agents; kind "spawned" means
 * the agents this host supervises (the host id of store_set_host).
 * Single-row reads go through pg_one_row, so a missing row is not_found
 * with the same message as on SQLite.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-postgres.h"
#include "store/store-rules.h"

/* ---- agents ---- */

#define AGENT_COLS                                                                                 \
	"id, kind, name, provider, host, pid, pid_start, session_id, state, reason, since, lost, " \
	"lease_ms, heartbeat, tenant, detail, created, updated, owner_uid, task, epoch, "          \
	"last_message"

static json_t *
agent_from_row(const PGresult *r, int i)
{
	json_t *a = json_object(), *detail;

	json_object_set_new(a, "id", pg_col_text(r, i, 0));
	json_object_set_new(a, "kind", pg_col_text(r, i, 1));
	json_object_set_new(a, "name", pg_col_text(r, i, 2));
	json_object_set_new(a, "provider", pg_col_text(r, i, 3));
	json_object_set_new(a, "host", pg_col_text(r, i, 4));
	json_object_set_new(a, "pid", pg_col_int(r, i, 5));
	json_object_set_new(a, "pid_start", pg_col_int(r, i, 6));
	json_object_set_new(a, "session_id", pg_col_text(r, i, 7));
	json_object_set_new(a, "state", pg_col_text(r, i, 8));
	json_object_set_new(a, "reason", pg_col_text(r, i, 9));
	json_object_set_new(a, "since_ms", pg_col_int(r, i, 10));
	json_object_set_new(a, "lost", json_boolean(pg_int(r, i, 11, 0) != 0));
	json_object_set_new(a, "lease_ms", pg_col_int(r, i, 12));
	json_object_set_new(a, "heartbeat_ms", pg_col_int(r, i, 13));
	json_object_set_new(a, "tenant", pg_col_text(r, i, 14));
	detail = pg_col_json(r, i, 15);
	if (json_is_object(detail))
		json_object_update_missing(a, detail);
	json_decref(detail);
	json_object_set_new(a, "created_ms", pg_col_int(r, i, 16));
	json_object_set_new(a, "updated_ms", pg_col_int(r, i, 17));
	json_object_set_new(a, "owner_uid", pg_col_int(r, i, 18));
	json_object_set_new(a, "task", pg_col_int(r, i, 19));
	json_object_set_new(a, "epoch", pg_col_int(r, i, 20));
	json_object_set_new(a, "last_message", pg_col_text(r, i, 21));
	return a;
}

json_t *
pg_store_agent_get(struct pg_store *s, const char *id, struct store_err *e)
{
	struct pg_params p = {0};
	PGresult *r;
	json_t *a = NULL;

	pp_text(&p, id);
	r = pg_run(s, "SELECT " AGENT_COLS " FROM agents WHERE id = $1", &p);
	if (pg_one_row(s, r, "agent", e, "no agent %s", id) == 0)
		a = agent_from_row(r, 0);
	PQclear(r);
	return a;
}

/* The text of field v (of the given kind) as a parameter value; *own to free. */
static const char *
agent_field_value(json_t *v, int kind, char num[24], char **own)
{
	*own = NULL;
	if (json_is_null(v))
		return NULL;
	if (kind == 1)
		return json_string_value(v);
	if (kind == 2) {
		snprintf(num, 24, "%lld",
		         (long long)(json_is_boolean(v) ? json_is_true(v) : json_integer_value(v)));
		return num;
	}
	return *own = json_dumps(v, JSON_COMPACT);
}

/*
 * Set columns of agent id from fields (creating the row if needed), in one
 * INSERT ... ON CONFLICT DO UPDATE built from the known column names.
 */
json_t *
pg_store_agent_put(struct pg_store *s, const char *id, json_t *f, int64_t now, struct store_err *e)
{
	const char *vals[24], *key;
	char *own[24] = {0}, num[24][24], sql[2048], nowbuf[24];
	size_t i;
	int n = 2, len, kind;
	json_t *v, *a = NULL;
	PGresult *r;

	snprintf(nowbuf, sizeof nowbuf, "%lld", (long long)now);
	vals[0] = id;
	vals[1] = nowbuf;
	len = snprintf(sql, sizeof sql, "INSERT INTO agents (id, created, updated");
	json_object_foreach(f, key, v)
	{
		if ((kind = store_agent_field_kind(key)) == 0 || n == 24) {
			store_err_set(e, ERR_INTERNAL, "agent has no field %s", key);
			goto out;
		}
		/* key is one of the fixed names above, so building the SQL is safe. */
		len += snprintf(sql + len, sizeof sql - (size_t)len, ", %s", key);
		vals[n] = agent_field_value(v, kind, num[n], &own[n]);
		n++;
	}
	len += snprintf(sql + len, sizeof sql - (size_t)len, ") VALUES ($1, $2, $2");
	for (i = 2; i < (size_t)n; i++)
		len += snprintf(sql + len, sizeof sql - (size_t)len, ", $%zu", i + 1);
	len += snprintf(sql + len, sizeof sql - (size_t)len,
	                ") ON CONFLICT (id) DO UPDATE SET updated = excluded.updated");
	json_object_foreach(f, key, v)
	{
		len += snprintf(sql + len, sizeof sql - (size_t)len, ", %s = excluded.%s", key,
		                key);
	}
	snprintf(sql + len, sizeof sql - (size_t)len, " RETURNING " AGENT_COLS);
	r = PQexecParams(s->db, sql, n, NULL, vals, NULL, NULL, 0);
	if (!pg_ok(r)) {
		pg_note(s, r);
		pg_dberr(s, e, "agent");
	} else
		a = agent_from_row(r, 0);
	PQclear(r);
out:
	for (i = 0; i < 24; i++)
		free(own[i]);
	return a;
}

json_t *
pg_store_agent_list(struct pg_store *s, const char *kind, const char *state, struct store_err *e)
{
	struct pg_params p = {0};
	PGresult *r;
	json_t *items;
	int i;

	pp_text(&p, kind);
	pp_text(&p, state);
	pp_text(&p, s->host);
	r = pg_run(s,
	           "SELECT " AGENT_COLS " FROM agents WHERE ($1::text IS NULL OR kind = $1) AND "
	           "($2::text IS NULL OR state = $2) AND ($1::text IS DISTINCT FROM 'spawned' OR "
	           "$3::text IS NULL OR host = $3) ORDER BY created, id",
	           &p);
	if (r == NULL) {
		pg_dberr(s, e, "list-agents");
		return NULL;
	}
	items = json_array();
	for (i = 0; i < PQntuples(r); i++)
		json_array_append_new(items, agent_from_row(r, i));
	PQclear(r);
	return json_pack("{s:o}", "items", items);
}

int
pg_store_agent_delete(struct pg_store *s, const char *id)
{
	struct pg_params p = {0};
	PGresult *r;
	int n;

	pp_text(&p, id);
	if ((r = pg_run(s, "DELETE FROM agents WHERE id = $1", &p)) == NULL)
		return -1;
	n = (int)pg_changes(r);
	PQclear(r);
	return n;
}

int
pg_store_agent_find_lost(struct pg_store *s, int64_t now, void (*cb)(const char *, void *),
                         void *arg)
{
	struct pg_params p = {0};
	PGresult *r;
	int i, n;

	pp_int(&p, now);
	r = pg_run(s,
	           "SELECT id FROM agents WHERE kind = 'registered' AND lost = 0 AND heartbeat + "
	           "lease_ms <= $1 ORDER BY id",
	           &p);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	for (i = 0; i < n; i++)
		cb(PQgetvalue(r, i, 0), arg);
	PQclear(r);
	return n;
}

int64_t
pg_store_agent_next_loss(struct pg_store *s)
{
	return pg_scalar(s,
	                 "SELECT min(heartbeat + lease_ms) FROM agents WHERE kind = 'registered' "
	                 "AND lost = 0",
	                 NULL, -1);
}

/* ---- tenants ---- */

#define TENANT_COLS "tenant_id, jail_root_path, collection_id, status, reason, created, updated"

static json_t *
tenant_from_row(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "tenant_id", pg_col_text(r, i, 0),
	                 "jail_root_path", pg_col_text(r, i, 1), "collection_id",
	                 pg_col_text(r, i, 2), "status", pg_col_text(r, i, 3), "reason",
	                 pg_col_text(r, i, 4), "created_ms", pg_col_int(r, i, 5), "updated_ms",
	                 pg_col_int(r, i, 6));
}

json_t *
pg_store_tenant_get(struct pg_store *s, const char *tenant_id, struct store_err *e)
{
	struct pg_params p = {0};
	PGresult *r;
	json_t *t = NULL;

	pp_text(&p, tenant_id);
	r = pg_run(s, "SELECT " TENANT_COLS " FROM tenants WHERE tenant_id = $1", &p);
	if (pg_one_row(s, r, "tenant", e, "no tenant %s", tenant_id) == 0)
		t = tenant_from_row(r, 0);
	PQclear(r);
	return t;
}

json_t *
pg_store_tenant_put(struct pg_store *s, const char *tenant_id, const char *root,
                    const char *collection, int64_t now, struct store_err *e)
{
	struct pg_params p = {0};

	pp_text(&p, tenant_id);
	pp_text(&p, root);
	pp_text(&p, collection);
	pp_int(&p, now);
	if (pg_do(s,
	          "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, status, reason, "
	          "created, updated) VALUES ($1, $2, $3, 'provisioned', NULL, $4, $4) ON CONFLICT "
	          "(tenant_id) DO UPDATE SET jail_root_path = excluded.jail_root_path, "
	          "collection_id = excluded.collection_id, status = 'provisioned', reason = NULL, "
	          "updated = excluded.updated",
	          &p) == -1) {
		pg_dberr(s, e, "register-tenant");
		return NULL;
	}
	return pg_store_tenant_get(s, tenant_id, e);
}

json_t *
pg_store_tenant_list(struct pg_store *s, struct store_err *e)
{
	PGresult *r = pg_run(s, "SELECT " TENANT_COLS " FROM tenants ORDER BY tenant_id", NULL);
	json_t *items;
	int i;

	if (r == NULL) {
		pg_dberr(s, e, "list-tenants");
		return NULL;
	}
	items = json_array();
	for (i = 0; i < PQntuples(r); i++)
		json_array_append_new(items, tenant_from_row(r, i));
	PQclear(r);
	return json_pack("{s:o}", "items", items);
}

/* Run a one-row tenant change; not_found when no row matched. */
static int
tenant_change(struct pg_store *s, const char *sql, const struct pg_params *p, const char *tenant_id,
              const char *what, struct store_err *e)
{
	PGresult *r = pg_run(s, sql, p);
	long long n;

	if (r == NULL) {
		pg_dberr(s, e, what);
		return -1;
	}
	n = pg_changes(r);
	PQclear(r);
	if (n == 0) {
		store_err_set(e, ERR_NOT_FOUND, "no tenant %s", tenant_id);
		return -1;
	}
	return 0;
}

int
pg_store_tenant_set_status(struct pg_store *s, const char *tenant_id, const char *status,
                           const char *reason, int64_t now, struct store_err *e)
{
	struct pg_params p = {0};

	pp_text(&p, status);
	pp_text(&p, reason);
	pp_int(&p, now);
	pp_text(&p, tenant_id);
	return tenant_change(s,
	                     "UPDATE tenants SET status = $1, reason = $2, updated = $3 WHERE "
	                     "tenant_id = $4",
	                     &p, tenant_id, "tenant status", e);
}

int
pg_store_tenant_delete(struct pg_store *s, const char *tenant_id, struct store_err *e)
{
	struct pg_params p = {0};

	pp_text(&p, tenant_id);
	return tenant_change(s, "DELETE FROM tenants WHERE tenant_id = $1", &p, tenant_id,
	                     "delete-tenant", e);
}

/* ---- kv ---- */

int
pg_store_kv_set(struct pg_store *s, const char *key, const char *value, struct store_err *e)
{
	struct pg_params p = {0};

	pp_text(&p, key);
	pp_text(&p, value);
	if (pg_do(s,
	          "INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET "
	          "value = excluded.value",
	          &p) == -1) {
		pg_dberr(s, e, "kv");
		return -1;
	}
	return 0;
}

char *
pg_store_kv_get(struct pg_store *s, const char *key)
{
	struct pg_params p = {0};
	PGresult *r;
	char *v = NULL;

	pp_text(&p, key);
	r = pg_run(s, "SELECT value FROM kv WHERE key = $1", &p);
	if (r != NULL && PQntuples(r) > 0)
		v = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* ---- skills index and prompt log ---- */

static int
skill_insert(struct pg_store *s, json_t *sk, int64_t now)
{
	struct pg_params p = {0};
	char *fields = json_dumps(json_object_get(sk, "fields"), JSON_COMPACT | JSON_SORT_KEYS);
	int rc;

	pp_text(&p, json_string_value(json_object_get(sk, "name")));
	pp_text(&p, json_string_value(json_object_get(sk, "description")));
	pp_text(&p, json_string_value(json_object_get(sk, "path")));
	pp_text(&p, fields != NULL ? fields : "{}");
	pp_text(&p, json_string_value(json_object_get(sk, "body")));
	pp_int(&p, now);
	rc = pg_do(s,
	           "INSERT INTO skills (name, description, path, fields, body, indexed) VALUES "
	           "($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET description = "
	           "excluded.description, path = excluded.path, fields = excluded.fields, body = "
	           "excluded.body, indexed = excluded.indexed",
	           &p);
	free(fields);
	return rc;
}

int
pg_store_skills_replace(struct pg_store *s, json_t *skills, int64_t now, struct store_err *e)
{
	size_t i;
	json_t *sk;

	if (pg_do(s, "DELETE FROM skills", NULL) == -1)
		goto fail;
	json_array_foreach(skills, i, sk)
	{
		if (skill_insert(s, sk, now) == -1)
			goto fail;
	}
	return 0;
fail:
	pg_dberr(s, e, "skills index");
	return -1;
}

static json_t *
skill_from_row(const PGresult *r, int i, int with_body)
{
	json_t *sk = json_object(), *fields = pg_col_json(r, i, 3);

	json_object_set_new(sk, "name", pg_col_text(r, i, 0));
	json_object_set_new(sk, "description", pg_col_text(r, i, 1));
	json_object_set_new(sk, "path", pg_col_text(r, i, 2));
	if (!json_is_object(fields)) {
		json_decref(fields);
		fields = json_object();
	}
	json_object_set_new(sk, "fields", fields);
	if (with_body)
		json_object_set_new(sk, "body", pg_col_text(r, i, 4));
	return sk;
}

json_t *
pg_store_skills_list(struct pg_store *s, const char *query, struct store_err *e)
{
	struct pg_params p = {0};
	char *like = query != NULL ? store_like_substring(query) : NULL;
	PGresult *r;
	json_t *items;
	int i;

	pp_text(&p, like);
	/* ILIKE: SQLite's LIKE is case-insensitive for ASCII. */
	r = pg_run(s,
	           "SELECT name, description, path, fields, body FROM skills WHERE $1::text IS "
	           "NULL OR name ILIKE $1 ESCAPE '\\' OR description ILIKE $1 ESCAPE '\\' OR body "
	           "ILIKE $1 ESCAPE '\\' ORDER BY name COLLATE \"C\"",
	           &p);
	free(like);
	if (r == NULL) {
		pg_dberr(s, e, "skills-list");
		return NULL;
	}
	items = json_array();
	for (i = 0; i < PQntuples(r); i++)
		json_array_append_new(items, skill_from_row(r, i, 0));
	PQclear(r);
	return json_pack("{s:o}", "items", items);
}

json_t *
pg_store_skill_get(struct pg_store *s, const char *name, struct store_err *e)
{
	struct pg_params p = {0};
	PGresult *r;
	json_t *sk = NULL;

	pp_text(&p, name);
	r = pg_run(s, "SELECT name, description, path, fields, body FROM skills WHERE name = $1",
	           &p);
	if (pg_one_row(s, r, "skill-show", e, "no skill named %.64s", name) == 0)
		sk = skill_from_row(r, 0, 1);
	PQclear(r);
	return sk;
}

int
pg_store_prompt_log_append(struct pg_store *s, const char *session_id, int64_t ts, const char *r1,
                           const char *r2, const char *r3, long long bytes, struct store_err *e)
{
	struct pg_params p = {0};

	pp_text(&p, session_id);
	pp_int(&p, ts);
	pp_text(&p, r1);
	pp_text(&p, r2);
	pp_text(&p, r3);
	pp_int(&p, bytes);
	if (pg_do(s,
	          "INSERT INTO prompt_log (session_id, ts, r1, r2, r3, bytes) VALUES ($1, $2, $3, "
	          "$4, $5, $6)",
	          &p) == -1) {
		pg_dberr(s, e, "prompt_log");
		return -1;
	}
	return 0;
}
