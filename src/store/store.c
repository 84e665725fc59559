/*
 * store.c -- one store interface, two backends: the dispatch.
 *
 * store_open looks at what it is given: a postgres:// or postgresql://
 * URL opens the PostgreSQL backend (store-postgres.c, a module loaded then
 * and only then: store-module.h), anything else is the path of a SQLite
 * database (store-sqlite.c, linked in).  Every other store_* function
 * forwards to the backend the store was opened with, nothing more: the
 * rules both backends follow are in store-rules.c, below them.  See
 * store-backend.h for how a function is added.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-backend.h"
#include "store/store-module.h"
#include "store/store.h"

struct store {
	struct sqlite_store *sq;
	struct pg_store *pg;
	const struct store_pg_ops *pgo; /* the module's table, when pg */
	char *path;
};

#define CALL(fn, ...)                                                                              \
	(s->pg != NULL ? s->pgo->fn(s->pg, ##__VA_ARGS__) : sqlite_store_##fn(s->sq, ##__VA_ARGS__))

const char *
store_backends_built(void)
{
	return store_module_postgres(NULL) != NULL ? "sqlite postgres" : "sqlite";
}

/* Is path a PostgreSQL connection URL (postgres:// or postgresql://)? */
static int
store_is_postgres_url(const char *path)
{
	return strncmp(path, "postgres://", 11) == 0 || strncmp(path, "postgresql://", 13) == 0;
}

struct store *
store_open(const char *path, struct store_err *e)
{
	struct store *s = xcalloc(1, sizeof *s);

	if (store_is_postgres_url(path)) {
		if ((s->pgo = store_module_postgres(e)) == NULL ||
		    (s->pg = s->pgo->open(path, e)) == NULL)
			goto fail;
		s->path = xstrdup(s->pgo->url(s->pg));
		return s;
	}
	if ((s->sq = sqlite_store_open(path, e)) == NULL)
		goto fail;
	s->path = xstrdup(path);
	return s;
fail:
	free(s);
	return NULL;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->pg != NULL)
		s->pgo->close(s->pg);
	if (s->sq != NULL)
		sqlite_store_close(s->sq);
	free(s->path);
	free(s);
}

const char *
store_path(struct store *s)
{
	return s->path;
}

const char *
store_backend(struct store *s)
{
	return s->sq != NULL ? "sqlite" : "postgres";
}

struct sqlite3 *
store_sqlite(struct store *s)
{
	return s->sq != NULL ? sqlite_store_db(s->sq) : NULL;
}

/*
 * The test facility's count (vmsteps.c): the steps of the statements that finished (their
 * counters taken and zeroed by the profile hook, so that a statement prepared and
 * finalized within a request counts too) and those of the live statements not yet reset.
 */
static long long vm_steps_done;
static sqlite3 *vm_steps_db;

static int
vm_steps_profile(unsigned type, void *ctx, void *p, void *x)
{
	(void)ctx;
	(void)x;
	if (type == SQLITE_TRACE_PROFILE)
		vm_steps_done += sqlite3_stmt_status(p, SQLITE_STMTSTATUS_VM_STEP, 1);
	return 0;
}

long long
store_vm_steps(struct store *s)
{
	sqlite3_stmt *q = NULL;
	sqlite3 *db;
	long long n;

	if (s->sq == NULL)
		return -1;
	db = sqlite_store_db(s->sq);
	if (vm_steps_db != db) {
		sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, vm_steps_profile, NULL);
		vm_steps_db = db;
	}
	n = vm_steps_done;
	while ((q = sqlite3_next_stmt(db, q)) != NULL)
		n += sqlite3_stmt_status(q, SQLITE_STMTSTATUS_VM_STEP, 0);
	return n;
}

void
store_set_host(struct store *s, const char *host)
{
	if (s->pg != NULL)
		s->pgo->set_host(s->pg, host);
}

void
store_set_event_sink(struct store *s, store_event_cb cb, void *arg)
{
	if (s->pg != NULL)
		s->pgo->set_event_sink(s->pg, cb, arg);
}

int
store_notify_fd(struct store *s)
{
	return s->pg != NULL ? s->pgo->notify_fd(s->pg) : -1;
}

int
store_notify_read(struct store *s)
{
	return s->pg != NULL ? s->pgo->notify_read(s->pg) : 0;
}

int
store_schema_version(struct store *s)
{
	return CALL(schema_version);
}

int
store_begin(struct store *s, struct store_err *e)
{
	return CALL(begin, e);
}

int
store_commit(struct store *s, struct store_err *e)
{
	return CALL(commit, e);
}

void
store_rollback(struct store *s)
{
	CALL(rollback);
}

int
store_savepoint(struct store *s)
{
	return CALL(savepoint);
}

void
store_savepoint_release(struct store *s)
{
	CALL(savepoint_release);
}

void
store_savepoint_rollback(struct store *s)
{
	CALL(savepoint_rollback);
}

int
store_in_txn(struct store *s)
{
	return CALL(in_txn);
}

int
store_integrity_check(struct store *s, struct store_err *e)
{
	return CALL(integrity_check, e);
}

int
store_set_sync(struct store *s, int full, struct store_err *e)
{
	return CALL(set_sync, full, e);
}

const char *
store_sync(struct store *s)
{
	return CALL(sync);
}

json_t *
store_counts(struct store *s)
{
	return CALL(counts);
}

void
store_idle(struct store *s)
{
	CALL(idle);
}

int
store_snapshot_open(struct store *s)
{
	return CALL(snapshot_open);
}

json_t *
store_task_create(struct store *s, const char *title, const char *body, long long priority,
                  json_t *depends_on, json_t *tags, int64_t now, struct store_err *e)
{
	long long id = CALL(task_insert, title, body, priority, depends_on, tags, now, NULL, e);

	return id == -1 ? NULL : CALL(task_get, id, e);
}

long long
store_task_create_json(struct store *s, const char *title, const char *body, long long priority,
                       json_t *depends_on, json_t *tags, int64_t now, struct buf *out,
                       struct store_err *e)
{
	return CALL(task_insert, title, body, priority, depends_on, tags, now, out, e);
}

int
store_task_get_json(struct store *s, long long id, struct buf *out, struct store_err *e)
{
	return CALL(task_get_json, id, out, e);
}

json_t *
store_task_get(struct store *s, long long id, struct store_err *e)
{
	return CALL(task_get, id, e);
}

int
store_task_list_json(struct store *s, struct store_task_page *pg, struct buf *out,
                     struct store_err *e)
{
	pg->count = 0;
	pg->last_id = pg->after;
	pg->more = pg->over = 0;
	return CALL(task_list_json, pg, out, e);
}

json_t *
store_task_claim(struct store *s, const char *agent, long long id, long long lease_ms,
                 long long max_attempts, int64_t now, struct store_err *e)
{
	return CALL(task_claim, agent, id, lease_ms, max_attempts, now, e);
}

json_t *
store_task_update(struct store *s, long long id, json_t *changes, const char *agent,
                  long long epoch, int64_t now, struct store_err *e)
{
	return CALL(task_update, id, changes, agent, epoch, now, e);
}

json_t *
store_task_complete(struct store *s, long long id, const char *agent, long long epoch,
                    json_t *result, int64_t now, int *repeated, struct store_err *e)
{
	int dummy;

	return CALL(task_complete, id, agent, epoch, result, now, repeated ? repeated : &dummy, e);
}

json_t *
store_task_release(struct store *s, long long id, const char *agent, long long epoch, int64_t now,
                   struct store_err *e)
{
	return CALL(task_release, id, agent, epoch, now, e);
}

json_t *
store_task_run_failed(struct store *s, long long id, const char *agent, long long epoch,
                      const char *reason, int64_t now, struct store_err *e)
{
	return CALL(task_run_failed, id, agent, epoch, reason, now, e);
}

int
store_task_expire(struct store *s, int64_t now, void (*cb)(json_t *, void *), void *arg)
{
	return CALL(task_expire, now, cb, arg);
}

int
store_task_release_agent(struct store *s, const char *agent, int64_t now,
                         void (*cb)(json_t *, void *), void *arg)
{
	return CALL(task_release_agent, agent, now, cb, arg);
}

int
store_task_renew_agent(struct store *s, const char *agent, int64_t now)
{
	return CALL(task_renew_agent, agent, now);
}

int64_t
store_task_next_expiry(struct store *s)
{
	return CALL(task_next_expiry);
}

json_t *
store_agent_put(struct store *s, const char *id, json_t *fields, int64_t now, struct store_err *e)
{
	return CALL(agent_put, id, fields, now, e);
}

json_t *
store_agent_get(struct store *s, const char *id, struct store_err *e)
{
	return CALL(agent_get, id, e);
}

json_t *
store_agent_list(struct store *s, const char *kind, const char *state, struct store_err *e)
{
	return CALL(agent_list, kind, state, e);
}

int
store_agent_delete(struct store *s, const char *id)
{
	return CALL(agent_delete, id);
}

int
store_agent_find_lost(struct store *s, int64_t now, void (*cb)(const char *, void *), void *arg)
{
	return CALL(agent_find_lost, now, cb, arg);
}

int64_t
store_agent_next_loss(struct store *s)
{
	return CALL(agent_next_loss);
}

long long
store_event_append(struct store *s, const char *topic, const char *data, int64_t ts,
                   struct store_err *e)
{
	return CALL(event_append, topic, data, ts, e);
}

long long
store_event_last(struct store *s)
{
	return CALL(event_last);
}

long long
store_event_compact(struct store *s, int64_t before, long long keep_rows, long long batch,
                    struct store_err *e)
{
	return CALL(event_compact, before, keep_rows, batch, e);
}

long long
store_event_floor(struct store *s)
{
	return CALL(event_floor);
}

long long
store_event_oldest(struct store *s)
{
	return CALL(event_oldest);
}

long long
store_db_bytes(struct store *s)
{
	return CALL(db_bytes);
}

long long
store_reclaim(struct store *s, long long max_pages, struct store_err *e)
{
	return CALL(reclaim, max_pages, e);
}

int
store_event_scan(struct store *s, long long since, long long limit, store_match_cb match,
                 void *match_arg, int (*cb)(long long, int64_t, const char *, const char *, void *),
                 void *arg)
{
	return CALL(event_scan, since, limit, match, match_arg, cb, arg);
}

json_t *
store_tenant_put(struct store *s, const char *tenant_id, const char *jail_root_path,
                 const char *collection_id, int64_t now, struct store_err *e)
{
	return CALL(tenant_put, tenant_id, jail_root_path, collection_id, now, e);
}

json_t *
store_tenant_get(struct store *s, const char *tenant_id, struct store_err *e)
{
	return CALL(tenant_get, tenant_id, e);
}

json_t *
store_tenant_list(struct store *s, struct store_err *e)
{
	return CALL(tenant_list, e);
}

int
store_tenant_set_status(struct store *s, const char *tenant_id, const char *status,
                        const char *reason, int64_t now, struct store_err *e)
{
	return CALL(tenant_set_status, tenant_id, status, reason, now, e);
}

int
store_tenant_delete(struct store *s, const char *tenant_id, struct store_err *e)
{
	return CALL(tenant_delete, tenant_id, e);
}

int
store_kv_set(struct store *s, const char *key, const char *value, struct store_err *e)
{
	return CALL(kv_set, key, value, e);
}

char *
store_kv_get(struct store *s, const char *key)
{
	return CALL(kv_get, key);
}

int
store_skills_replace(struct store *s, json_t *skills, int64_t now, struct store_err *e)
{
	return CALL(skills_replace, skills, now, e);
}

json_t *
store_skills_list(struct store *s, const char *query, struct store_err *e)
{
	return CALL(skills_list, query, e);
}

json_t *
store_skill_get(struct store *s, const char *name, struct store_err *e)
{
	return CALL(skill_get, name, e);
}

int
store_prompt_log_append(struct store *s, const char *session_id, int64_t ts, const char *r1,
                        const char *r2, const char *r3, long long bytes, struct store_err *e)
{
	return CALL(prompt_log_append, session_id, ts, r1, r2, r3, bytes, e);
}
