/*
 * store-postgres.c -- the PostgreSQL backend of store.h (libpq).
 *
 * Several daemons, on several hosts, share one database: the task board,
 * the agent registry, tenants, kv, the skills index and the events log.
 * Each daemon holds two connections.  The main one runs every query,
 * synchronously, on the daemon's loop thread: a query costs a round trip
 * to the server (tens of microseconds on a local socket), which the group
 * commit amortises; a slow or unreachable server stalls the loop, so keep
 * the database near the daemons.  Statements are prepared once per
 * connection and cached by the address of their SQL text (always a string
 * literal), as the SQLite backend does.  The second connection only
 * LISTENs for colibri_events (see below).
 *
 * The daemon's group-commit transaction is BEGIN ... COMMIT and its
 * per-command savepoint is SAVEPOINT cmd.  READ COMMITTED: a claim of the
 * next ready task is one UPDATE whose target row comes from SELECT ... FOR
 * UPDATE SKIP LOCKED, so daemons claiming at once never wait for each other
 * nor take the same task; changes to a given task lock its row first.
 *
 * The events log is one sequence for all hosts, each row stamped with the
 * host that appended it.  Subscribers rely on seq order, so events must
 * become visible in seq order: a transaction takes an advisory lock
 * (EVENTS_LOCK, until it ends) before its first event, so seqs are drawn
 * and committed one transaction at a time.  A commit that appended events
 * sends NOTIFY colibri_events, '<last seq>' with it.  Every daemon LISTENs;
 * when notified it reads the events after the last one it handed to its
 * sink and hands them over in order.  Right after its own commit it first
 * hands over the other daemons' events that precede its own (they are all
 * committed: they held the lock before it), then counts its own as handed,
 * since the daemon publishes those itself.
 *
 * Migrations are numbered in schema_migrations, applied under an advisory
 * lock so daemons starting together migrate once.  Append new ones to
 * migrations[]; never edit a shipped one.
 *
 * Errors: a lost connection, a full disk or too many connections are
 * unavailable (the next transaction reconnects); a deadlock or a
 * serialization failure is conflict; the rest internal.
 *
 * The backend is a shared module, store-postgres.so, loaded by store.c
 * only when a PostgreSQL URL is opened (store-module.h): it exports only
 * the table colibri_store_postgres at the end of this file.  This file is
 * its core (parameters, statements, errors, connections, migrations,
 * transactions); tasks, the registry and the events log are in
 * store-postgres-tasks.c, -registry.c and -events.c (store-postgres.h).
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-backend.h"
#include "store/store-postgres.h"
#include "store/store-rules.h"
#include "store/store.h"

static const char *migrations[] = {
        /* 1: the task board, the agent registry, the events log, tenants, kv, skills, prompts. */
        "CREATE TABLE tasks ("
        "  id BIGSERIAL PRIMARY KEY,"
        "  title TEXT NOT NULL,"
        "  body TEXT NOT NULL DEFAULT '',"
        "  status TEXT NOT NULL DEFAULT 'open'"
        "    CHECK (status IN ('open','claimed','done','cancelled')),"
        "  priority BIGINT NOT NULL DEFAULT 0,"
        "  owner TEXT,"
        "  lease_ms BIGINT,"
        "  lease_expires BIGINT,"
        "  result TEXT,"
        "  progress TEXT,"
        "  created BIGINT NOT NULL,"
        "  updated BIGINT NOT NULL,"
        "  claimed BIGINT,"
        "  completed BIGINT);"
        "CREATE INDEX tasks_queue ON tasks (status, priority DESC, id);"
        "CREATE INDEX tasks_owner ON tasks (owner) WHERE owner IS NOT NULL;"
        "CREATE INDEX tasks_lease ON tasks (lease_expires) WHERE status = 'claimed';"
        "CREATE TABLE task_deps ("
        "  task BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"
        "  dep BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"
        "  PRIMARY KEY (task, dep));"
        "CREATE INDEX task_deps_dep ON task_deps (dep);"
        "CREATE TABLE agents ("
        "  id TEXT PRIMARY KEY,"
        "  kind TEXT NOT NULL DEFAULT 'registered',"
        "  name TEXT, provider TEXT, host TEXT,"
        "  pid BIGINT, pid_start BIGINT, session_id TEXT,"
        "  state TEXT NOT NULL DEFAULT 'idle', reason TEXT, since BIGINT,"
        "  lost INTEGER NOT NULL DEFAULT 0,"
        "  lease_ms BIGINT, heartbeat BIGINT,"
        "  tenant TEXT, detail TEXT,"
        "  created BIGINT NOT NULL, updated BIGINT NOT NULL);"
        "CREATE INDEX agents_kind ON agents (kind, state);"
        "CREATE TABLE events ("
        "  seq BIGSERIAL PRIMARY KEY,"
        "  ts BIGINT NOT NULL,"
        "  host TEXT NOT NULL DEFAULT '',"
        "  topic TEXT NOT NULL,"
        "  data TEXT NOT NULL);"
        "CREATE TABLE tenants ("
        "  tenant_id TEXT PRIMARY KEY,"
        "  jail_root_path TEXT NOT NULL,"
        "  collection_id TEXT NOT NULL,"
        "  status TEXT NOT NULL DEFAULT 'provisioned',"
        "  reason TEXT,"
        "  created BIGINT NOT NULL, updated BIGINT NOT NULL);"
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE skills ("
        "  name TEXT PRIMARY KEY,"
        "  description TEXT NOT NULL,"
        "  path TEXT,"
        "  fields TEXT NOT NULL,"
        "  body TEXT NOT NULL,"
        "  indexed BIGINT NOT NULL);"
        "CREATE TABLE prompt_log (session_id TEXT NOT NULL, ts BIGINT NOT NULL,"
        "  r1 TEXT, r2 TEXT, r3 TEXT, bytes BIGINT);"
        "CREATE INDEX prompt_log_session ON prompt_log (session_id, ts);",
        /* 2: the uid that spawned an agent (its owner: kill-agent, session-read, ...). */
        "ALTER TABLE agents ADD COLUMN owner_uid BIGINT;",
        /*
         * 3: task-bound runs.  Tasks gain their claim epoch, their failed runs
         * (attempts, max_attempts, last_error) and the status 'failed'; agents
         * the task and epoch a spawned run is bound to and its final message.
         */
        "ALTER TABLE tasks ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,"
        "  ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0,"
        "  ADD COLUMN max_attempts BIGINT,"
        "  ADD COLUMN last_error TEXT;"
        "ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;"
        "ALTER TABLE tasks ADD CONSTRAINT tasks_status_check"
        "  CHECK (status IN ('open','claimed','done','cancelled','failed'));"
        "ALTER TABLE agents ADD COLUMN task BIGINT,"
        "  ADD COLUMN epoch BIGINT,"
        "  ADD COLUMN last_message TEXT;",
        /*
         * 4: task tags (the dispatcher routes a task by them): a JSON array of
         * strings, checked by store_rule_tags, written in its compact form.
         */
        "ALTER TABLE tasks ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';",
        /*
         * 5: counts kept with every change, as SQLite's migration 5, so that
         * status and the ready queue cost the same whatever the size of the
         * board: a task's unfinished_deps (ready: open with none; the ready
         * queue walks tasks_ready) and counts of the tasks in each status,
         * ready tasks, agents, tenants and events, kept by triggers
         * (tasks_ready replaces tasks_queue, as on SQLite).  Several
         * daemons write at once, so a count is not one row that every
         * transaction would lock until it commits (it would serialise them,
         * and deadlock against the events lock): each backend adds to rows of
         * its own (slot = pg_backend_pid()), a count is the sum over the
         * slots, and a daemon that opens the store folds the rows of backends
         * that are gone into slot 0 (pg_store_open): O(live connections).  A
         * dependency added locks its task's dependency (FOR SHARE) before
         * reading its status, so that a concurrent completion of that task
         * either sees the new dependency or is seen done (a wait between two
         * daemons' transactions on one task, as two changes of that task
         * already are: should it close a cycle with the events lock, the
         * server breaks the deadlock and the transaction fails as conflict).
         */
        "ALTER TABLE tasks ADD COLUMN unfinished_deps BIGINT NOT NULL DEFAULT 0;"
        "UPDATE tasks t SET unfinished_deps = x.n FROM (SELECT d.task, count(*) AS n"
        "  FROM task_deps d JOIN tasks u ON u.id = d.dep WHERE u.status <> 'done'"
        "  GROUP BY d.task) x WHERE t.id = x.task;"
        "DROP INDEX tasks_queue;"
        "CREATE INDEX tasks_ready ON tasks (status, unfinished_deps, priority DESC, id);"
        "CREATE TABLE counts (slot BIGINT NOT NULL, name TEXT NOT NULL, n BIGINT NOT NULL,"
        "  PRIMARY KEY (slot, name));"
        "INSERT INTO counts (slot, name, n) SELECT 0, k, 0 FROM unnest(ARRAY['open', 'claimed',"
        "  'done', 'cancelled', 'failed', 'ready', 'agents', 'tenants', 'events']) AS k;"
        "UPDATE counts c SET n = x.n FROM (SELECT status, count(*) AS n FROM tasks"
        "  GROUP BY status) x WHERE c.slot = 0 AND c.name = x.status;"
        "UPDATE counts SET n = (SELECT count(*) FROM tasks WHERE status = 'open' AND"
        "  unfinished_deps = 0) WHERE slot = 0 AND name = 'ready';"
        "UPDATE counts SET n = (SELECT count(*) FROM agents) WHERE slot = 0 AND name = 'agents';"
        "UPDATE counts SET n = (SELECT count(*) FROM tenants) WHERE slot = 0 AND"
        "  name = 'tenants';"
        "UPDATE counts SET n = (SELECT count(*) FROM events) WHERE slot = 0 AND name = 'events';"
        "CREATE FUNCTION colibri_count(k TEXT, d BIGINT) RETURNS void LANGUAGE sql AS $$"
        "  INSERT INTO counts (slot, name, n) VALUES (pg_backend_pid(), $1, $2)"
        "  ON CONFLICT (slot, name) DO UPDATE SET n = counts.n + excluded.n $$;"
        "CREATE FUNCTION colibri_tasks_counts() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE was BOOLEAN := false; now_ready BOOLEAN := false;"
        " BEGIN"
        "  IF TG_OP <> 'INSERT' THEN"
        "   was := OLD.status = 'open' AND OLD.unfinished_deps = 0;"
        "  END IF;"
        "  IF TG_OP <> 'DELETE' THEN"
        "   now_ready := NEW.status = 'open' AND NEW.unfinished_deps = 0;"
        "  END IF;"
        "  IF TG_OP = 'INSERT' THEN"
        "   PERFORM colibri_count(NEW.status, 1);"
        "  ELSIF TG_OP = 'DELETE' THEN"
        "   PERFORM colibri_count(OLD.status, -1);"
        "  ELSIF OLD.status <> NEW.status THEN"
        "   PERFORM colibri_count(OLD.status, -1);"
        "   PERFORM colibri_count(NEW.status, 1);"
        "   IF (OLD.status = 'done') <> (NEW.status = 'done') THEN"
        "    UPDATE tasks SET unfinished_deps = unfinished_deps +"
        "     CASE WHEN NEW.status = 'done' THEN -1 ELSE 1 END"
        "     WHERE id IN (SELECT task FROM task_deps WHERE dep = NEW.id);"
        "   END IF;"
        "  END IF;"
        "  IF was <> now_ready THEN"
        "   PERFORM colibri_count('ready', CASE WHEN now_ready THEN 1 ELSE -1 END);"
        "  END IF;"
        "  RETURN NULL;"
        " END $$;"
        "CREATE TRIGGER tasks_counts AFTER INSERT OR DELETE OR UPDATE OF status, unfinished_deps"
        "  ON tasks FOR EACH ROW EXECUTE FUNCTION colibri_tasks_counts();"
        "CREATE FUNCTION colibri_tasks_del_deps() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  DELETE FROM task_deps WHERE task = OLD.id;"
        "  DELETE FROM task_deps WHERE dep = OLD.id;"
        "  RETURN OLD;"
        " END $$;"
        "CREATE TRIGGER tasks_del_deps BEFORE DELETE ON tasks"
        "  FOR EACH ROW EXECUTE FUNCTION colibri_tasks_del_deps();"
        "CREATE FUNCTION colibri_deps_counts() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE st TEXT;"
        " BEGIN"
        "  IF TG_OP = 'INSERT' THEN"
        "   SELECT status INTO st FROM tasks WHERE id = NEW.dep FOR SHARE;"
        "   IF st <> 'done' THEN"
        "    UPDATE tasks SET unfinished_deps = unfinished_deps + 1 WHERE id = NEW.task;"
        "   END IF;"
        "  ELSE"
        "   SELECT status INTO st FROM tasks WHERE id = OLD.dep FOR SHARE;"
        "   IF st <> 'done' THEN"
        "    UPDATE tasks SET unfinished_deps = unfinished_deps - 1 WHERE id = OLD.task;"
        "   END IF;"
        "  END IF;"
        "  RETURN NULL;"
        " END $$;"
        "CREATE TRIGGER task_deps_counts AFTER INSERT OR DELETE ON task_deps"
        "  FOR EACH ROW EXECUTE FUNCTION colibri_deps_counts();"
        "CREATE FUNCTION colibri_rows_counts() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  PERFORM colibri_count(TG_ARGV[0], CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END);"
        "  RETURN NULL;"
        " END $$;"
        "CREATE TRIGGER agents_counts AFTER INSERT OR DELETE ON agents"
        "  FOR EACH ROW EXECUTE FUNCTION colibri_rows_counts('agents');"
        "CREATE TRIGGER tenants_counts AFTER INSERT OR DELETE ON tenants"
        "  FOR EACH ROW EXECUTE FUNCTION colibri_rows_counts('tenants');"
        "CREATE FUNCTION colibri_events_added() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  PERFORM colibri_count('events', (SELECT count(*) FROM added));"
        "  RETURN NULL;"
        " END $$;"
        "CREATE FUNCTION colibri_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  PERFORM colibri_count('events', -(SELECT count(*) FROM deleted));"
        "  RETURN NULL;"
        " END $$;"
        "CREATE TRIGGER events_added AFTER INSERT ON events REFERENCING NEW TABLE AS added"
        "  FOR EACH STATEMENT EXECUTE FUNCTION colibri_events_added();"
        "CREATE TRIGGER events_deleted AFTER DELETE ON events REFERENCING OLD TABLE AS deleted"
        "  FOR EACH STATEMENT EXECUTE FUNCTION colibri_events_deleted();",
};

/* ---- parameters, statements, errors ---- */

void
pp_int(struct pg_params *p, long long v)
{
	snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

/* A text parameter (borrowed; must outlive the query), NULL for SQL NULL. */
void
pp_text(struct pg_params *p, const char *v)
{
	p->v[p->n++] = v;
}

static const char *
pg_code_of(struct pg_store *s, const PGresult *r)
{
	const char *st = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(s->db) != CONNECTION_OK || st == NULL)
		return ERR_UNAVAILABLE;
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 || strncmp(st, "57P", 3) == 0)
		return ERR_UNAVAILABLE;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
		return ERR_CONFLICT;
	if (strncmp(st, "22", 2) == 0)
		return ERR_INVALID_ARGUMENT;
	return ERR_INTERNAL;
}

/* Remember why r (or the connection) failed. */
void
pg_note(struct pg_store *s, const PGresult *r)
{
	const char *m = r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(s->db);

	s->err_code = pg_code_of(s, r);
	snprintf(s->err_msg, sizeof s->err_msg, "%s", m != NULL && *m ? m : "connection lost");
	s->err_msg[strcspn(s->err_msg, "\n")] = '\0';
}

void
pg_dberr(struct pg_store *s, struct store_err *e, const char *what)
{
	store_err_set(e, s->err_code != NULL ? s->err_code : ERR_INTERNAL, "%s: %s", what,
	              s->err_msg);
}

/*
 * r (from pg_run) holds a row: 0; else -1 with the database error (r NULL)
 * or not_found with the message fmt (no row).  The caller clears r.
 */
int
pg_one_row(struct pg_store *s, const PGresult *r, const char *what, struct store_err *e,
           const char *fmt, ...)
{
	va_list ap;

	if (r == NULL) {
		pg_dberr(s, e, what);
		return -1;
	}
	if (PQntuples(r) > 0)
		return 0;
	if (e != NULL) {
		e->code = ERR_NOT_FOUND;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int
pg_ok(const PGresult *r)
{
	ExecStatusType t = PQresultStatus(r);

	return t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;
}

static int pg_ensure(struct pg_store *, struct store_err *);

/* The prepared statement name for sql, preparing it on first use; NULL on error. */
static const char *
pg_prepared(struct pg_store *s, const char *sql)
{
	PGresult *r;
	int i;

	for (i = 0; i < s->nprep; i++)
		if (s->prep[i].sql == sql)
			return s->prep[i].name;
	if (s->nprep == STMT_CACHE)
		return NULL;
	i = s->nprep;
	snprintf(s->prep[i].name, sizeof s->prep[i].name, "c%d", i);
	r = PQprepare(s->db, s->prep[i].name, sql, 0, NULL);
	if (!pg_ok(r)) {
		pg_note(s, r);
		PQclear(r);
		return NULL;
	}
	PQclear(r);
	s->prep[i].sql = sql;
	s->nprep++;
	return s->prep[i].name;
}

/*
 * Run the cached statement sql (a string literal) with p; the result, or
 * NULL with the cause noted.  The caller PQclear()s.
 */
PGresult *
pg_run(struct pg_store *s, const char *sql, const struct pg_params *p)
{
	const char *name;
	PGresult *r;

	/* Outside a transaction a lost connection can be replaced at once (reads). */
	if (!s->txn && PQstatus(s->db) != CONNECTION_OK && pg_ensure(s, NULL) == -1) {
		pg_note(s, NULL);
		return NULL;
	}
	name = pg_prepared(s, sql);

	if (name == NULL) {
		if (s->nprep == STMT_CACHE) {
			s->err_code = ERR_INTERNAL;
			snprintf(s->err_msg, sizeof s->err_msg, "statement cache full");
		}
		return NULL;
	}
	r = PQexecPrepared(s->db, name, p != NULL ? p->n : 0, p != NULL ? p->v : NULL, NULL, NULL,
	                   0);
	if (!pg_ok(r)) {
		pg_note(s, r);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* Run sql and drop the result: 0, or -1 with the cause noted. */
int
pg_do(struct pg_store *s, const char *sql, const struct pg_params *p)
{
	PGresult *r = pg_run(s, sql, p);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* Unprepared simple-protocol text (transaction control, DDL). */
static int
pg_exec(struct pg_store *s, const char *sql)
{
	PGresult *r = PQexec(s->db, sql);
	int ok = pg_ok(r);

	if (!ok)
		pg_note(s, r);
	PQclear(r);
	return ok ? 0 : -1;
}

/* Rows affected by a command result. */
long long
pg_changes(PGresult *r)
{
	return atoll(PQcmdTuples(r));
}

long long
pg_int(const PGresult *r, int row, int col, long long dflt)
{
	if (row >= PQntuples(r) || PQgetisnull(r, row, col))
		return dflt;
	return atoll(PQgetvalue(r, row, col));
}

/* The single integer a query returns, or dflt (also on error). */
long long
pg_scalar(struct pg_store *s, const char *sql, const struct pg_params *p, long long dflt)
{
	PGresult *r = pg_run(s, sql, p);
	long long v = r != NULL ? pg_int(r, 0, 0, dflt) : dflt;

	PQclear(r);
	return v;
}

json_t *
pg_col_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null()
	                                : json_integer(atoll(PQgetvalue(r, row, col)));
}

json_t *
pg_col_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col)
	               ? json_null()
	               : json_stringn(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

json_t *
pg_col_json(const PGresult *r, int row, int col)
{
	json_t *v;

	if (PQgetisnull(r, row, col))
		return json_null();
	v = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col), JSON_DECODE_ANY,
	               NULL);
	return v != NULL ? v : json_null();
}

/* ---- connections, migrations ---- */

/* The URL with the password (userinfo or password= parameter) blanked. */
static char *
url_redact(const char *url)
{
	char *u = xstrdup(url), *p, *at, *colon, *end;

	if ((p = strstr(u, "://")) != NULL && (at = strchr(p + 3, '@')) != NULL &&
	    (colon = memchr(p + 3, ':', (size_t)(at - p - 3))) != NULL)
		memmove(colon, at, strlen(at) + 1);
	if ((p = strstr(u, "password=")) != NULL) {
		end = p + strcspn(p, "&");
		memmove(p + 9, end, strlen(end) + 1);
	}
	return u;
}

static PGconn *
pg_connect(const char *conninfo, char *err, size_t errlen)
{
	PGconn *c = PQconnectdb(conninfo);

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", c != NULL ? PQerrorMessage(c) : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfinish(c);
		return NULL;
	}
	return c;
}

static int
pg_migrate(struct pg_store *s, struct store_err *e)
{
	int n = (int)(sizeof migrations / sizeof *migrations), have;
	char sql[128];

	if (pg_exec(s, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")") == -1 ||
	    pg_exec(s, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
	               "KEY, applied BIGINT NOT NULL)") == -1)
		goto fail;
	have = pg_store_schema_version(s);
	if (have > n) {
		store_err_set(e, ERR_INTERNAL,
		              "database schema %d is newer than this daemon knows (%d)", have, n);
		pg_exec(s, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
		return -1;
	}
	for (; have < n; have++) {
		snprintf(sql, sizeof sql,
		         "INSERT INTO schema_migrations VALUES (%d, "
		         "(extract(epoch FROM now()) * 1000)::bigint)",
		         have + 1);
		if (pg_exec(s, "BEGIN") == -1 || pg_exec(s, migrations[have]) == -1 ||
		    pg_exec(s, sql) == -1 || pg_exec(s, "COMMIT") == -1) {
			pg_exec(s, "ROLLBACK");
			goto fail;
		}
	}
	return pg_exec(s, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")") == -1 ? -1 : 0;
fail:
	pg_dberr(s, e, "migration");
	return -1;
}

int
pg_listen_start(struct pg_store *s)
{
	char err[256];
	PGresult *r;
	int ok;

	PQfinish(s->listen);
	if ((s->listen = pg_connect(s->conninfo, err, sizeof err)) == NULL)
		return -1;
	r = PQexec(s->listen, "LISTEN colibri_events");
	ok = pg_ok(r);
	PQclear(r);
	if (!ok || PQsetnonblocking(s->listen, 1) == -1) {
		PQfinish(s->listen);
		s->listen = NULL;
		return -1;
	}
	return 0;
}

struct pg_store *
pg_store_open(const char *url, struct store_err *e)
{
	struct pg_store *s = xcalloc(1, sizeof *s);
	char err[256];

	s->conninfo = xstrdup(url);
	s->url = url_redact(url);
	if ((s->db = pg_connect(url, err, sizeof err)) == NULL) {
		store_err_set(e, ERR_UNAVAILABLE, "connect %s: %s", s->url, err);
		goto fail;
	}
	if (pg_exec(s, "SET client_min_messages = warning") == -1 || pg_migrate(s, e) == -1) {
		if (s->err_code != NULL)
			pg_dberr(s, e, "open");
		goto fail;
	}
	/*
	 * Fold the count rows of backends that are gone into slot 0 (migration 5), so that
	 * the slots stay as many as the connections; a live backend's rows are its own.
	 */
	if (pg_exec(s, "WITH gone AS (DELETE FROM counts WHERE slot <> 0 AND slot NOT IN "
	               "(SELECT pid FROM pg_stat_activity) RETURNING name, n) "
	               "INSERT INTO counts (slot, name, n) SELECT 0, name, sum(n) FROM gone "
	               "GROUP BY name ON CONFLICT (slot, name) DO UPDATE SET n = counts.n + "
	               "excluded.n") == -1) {
		pg_dberr(s, e, "open: counts");
		goto fail;
	}
	if (pg_listen_start(s) == -1) {
		store_err_set(e, ERR_UNAVAILABLE, "LISTEN connection to %s failed", s->url);
		goto fail;
	}
	s->handed = pg_store_event_last(s);
	return s;
fail:
	pg_store_close(s);
	return NULL;
}

void
pg_store_close(struct pg_store *s)
{
	if (s == NULL)
		return;
	if (s->db != NULL && s->txn)
		pg_exec(s, "ROLLBACK");
	PQfinish(s->db);
	PQfinish(s->listen);
	free(s->conninfo);
	free(s->url);
	free(s->host);
	free(s);
}

const char *
pg_store_url(struct pg_store *s)
{
	return s->url;
}

void
pg_store_set_host(struct pg_store *s, const char *host)
{
	free(s->host);
	s->host = host != NULL ? xstrdup(host) : NULL;
}

void
pg_store_set_event_sink(struct pg_store *s, store_event_cb cb, void *arg)
{
	s->sink = cb;
	s->sink_arg = arg;
}

int
pg_store_schema_version(struct pg_store *s)
{
	return (int)pg_scalar(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL,
	                      -1);
}

/* ---- transactions ---- */

/* Reconnect a lost main connection (between transactions only). */
static int
pg_ensure(struct pg_store *s, struct store_err *e)
{
	if (PQstatus(s->db) == CONNECTION_OK)
		return 0;
	PQreset(s->db);
	s->nprep = 0;
	if (PQstatus(s->db) != CONNECTION_OK ||
	    (s->sync_full && pg_exec(s, "SET synchronous_commit = on") == -1)) {
		store_err_set(e, ERR_UNAVAILABLE, "database %s unreachable", s->url);
		return -1;
	}
	return 0;
}

static void
pg_txn_reset(struct pg_store *s)
{
	s->txn = 0;
	s->in_savepoint = 0;
	s->evlock = 0;
	s->own_min = s->own_max = 0;
}

int
pg_store_begin(struct pg_store *s, struct store_err *e)
{
	if (pg_ensure(s, e) == -1)
		return -1;
	if (pg_do(s, "BEGIN", NULL) == -1) {
		pg_dberr(s, e, "begin");
		return -1;
	}
	pg_txn_reset(s);
	s->txn = 1;
	return 0;
}

/* Hand the events after s->handed (and below `below`, if > 0) to the sink, in order. */
int
pg_handover(struct pg_store *s, long long below)
{
	struct pg_params p = {0};
	PGresult *r;
	int i, n, total = 0;

	if (s->sink == NULL)
		return 0;
	do {
		p.n = 0;
		pp_int(&p, s->handed);
		pp_int(&p, below > 0 ? below : (long long)INT64_MAX);
		r = pg_run(s,
		           "SELECT seq, ts, topic, data FROM events WHERE seq > $1 AND seq < $2 "
		           "ORDER BY seq LIMIT 1000",
		           &p);
		if (r == NULL)
			return -1;
		n = PQntuples(r);
		for (i = 0; i < n; i++) {
			s->handed = pg_int(r, i, 0, s->handed);
			s->sink(s->handed, pg_int(r, i, 1, 0), PQgetvalue(r, i, 2),
			        PQgetvalue(r, i, 3), s->sink_arg);
		}
		PQclear(r);
		total += n;
	} while (n == HANDOVER_BATCH);
	return total;
}

int
pg_store_commit(struct pg_store *s, struct store_err *e)
{
	char sql[96];
	PGresult *r;
	int ok;

	if (s->own_max > 0) {
		snprintf(sql, sizeof sql, "NOTIFY colibri_events, '%lld'; COMMIT", s->own_max);
		r = PQexec(s->db, sql);
	} else
		r = PQexec(s->db, "COMMIT");
	/* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
	ok = pg_ok(r) && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	if (!ok) {
		if (pg_ok(r)) {
			s->err_code = ERR_INTERNAL;
			snprintf(s->err_msg, sizeof s->err_msg, "the transaction was aborted");
		} else
			pg_note(s, r);
		pg_dberr(s, e, "commit");
		PQclear(r);
		pg_exec(s, "ROLLBACK");
		pg_txn_reset(s);
		return -1;
	}
	PQclear(r);
	if (s->own_min > 0) {
		pg_handover(s, s->own_min);
		if (s->own_max > s->handed)
			s->handed = s->own_max;
	} else if (s->notified)
		pg_handover(s, 0);
	s->notified = 0;
	pg_txn_reset(s);
	return 0;
}

void
pg_store_rollback(struct pg_store *s)
{
	pg_exec(s, "ROLLBACK");
	pg_txn_reset(s);
	if (s->notified) {
		s->notified = 0;
		pg_handover(s, 0);
	}
}

int
pg_store_in_txn(struct pg_store *s)
{
	return s->txn;
}

int
pg_store_savepoint(struct pg_store *s)
{
	s->sp_evlock = s->evlock;
	s->sp_min = s->own_min;
	s->sp_max = s->own_max;
	s->in_savepoint = 1;
	return pg_do(s, "SAVEPOINT cmd", NULL);
}

void
pg_store_savepoint_release(struct pg_store *s)
{
	s->in_savepoint = 0;
	pg_do(s, "RELEASE cmd", NULL);
}

void
pg_store_savepoint_rollback(struct pg_store *s)
{
	/* Locks taken since the savepoint go with it: the events lock too. */
	s->evlock = s->sp_evlock;
	s->own_min = s->sp_min;
	s->own_max = s->sp_max;
	s->in_savepoint = 0;
	pg_do(s, "ROLLBACK TO cmd", NULL);
	pg_do(s, "RELEASE cmd", NULL);
}

int
pg_store_integrity_check(struct pg_store *s, struct store_err *e)
{
	if (pg_do(s, "SELECT count(*) FROM schema_migrations", NULL) == -1) {
		pg_dberr(s, e, "integrity_check");
		return -1;
	}
	return 0;
}

int
pg_store_set_sync(struct pg_store *s, int full, struct store_err *e)
{
	s->sync_full = full;
	if (full && pg_exec(s, "SET synchronous_commit = on") == -1) {
		pg_dberr(s, e, "synchronous_commit");
		return -1;
	}
	return 0;
}

/* synchronous_commit off may lose the last commits to a crash of the server: "normal". */
const char *
pg_store_sync(struct pg_store *s)
{
	PGresult *r = pg_run(s, "SELECT current_setting('synchronous_commit')", NULL);
	const char *v = "unknown";

	if (r != NULL && PQntuples(r) == 1)
		v = strcmp(PQgetvalue(r, 0, 0), "off") == 0 ? "normal" : "full";
	PQclear(r);
	return v;
}

/*
 * The owners of claims without a lease, with how many each holds (as SQLite's): the
 * partial index tasks_lease, O(those claims), which the dispatcher's caps bound.
 */
static json_t *
pg_unleased_owners(struct pg_store *s)
{
	PGresult *r = pg_run(s,
	                     "SELECT owner, count(*) FROM tasks WHERE status = 'claimed' AND "
	                     "lease_expires IS NULL AND owner IS NOT NULL GROUP BY owner",
	                     NULL);
	json_t *o = json_object();
	int i;

	for (i = 0; r != NULL && i < PQntuples(r); i++)
		json_object_set_new(o, PQgetvalue(r, i, 0), json_integer(pg_int(r, i, 1, 0)));
	PQclear(r);
	return o;
}

/*
 * The counts the triggers of migration 5 keep, summed over the slots (one per backend
 * that wrote since the last fold; pg_store_open): O(connections), not O(the board).
 */
json_t *
pg_store_counts(struct pg_store *s)
{
	static const char *const task_keys[] = {"open",      "claimed", "done",
	                                        "cancelled", "failed",  "ready"};
	PGresult *r = pg_run(s, "SELECT name, sum(n) FROM counts GROUP BY name", NULL);
	json_t *tasks = json_object(), *c;
	json_int_t agents = r != NULL ? 0 : -1, tenants = agents, events = agents;
	size_t k;
	int i;

	for (k = 0; k < sizeof task_keys / sizeof *task_keys; k++)
		json_object_set_new(tasks, task_keys[k], json_integer(0));
	for (i = 0; r != NULL && i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		json_int_t n = pg_int(r, i, 1, 0);

		if (json_object_get(tasks, name) != NULL)
			json_object_set_new(tasks, name, json_integer(n));
		else if (strcmp(name, "agents") == 0)
			agents = n;
		else if (strcmp(name, "tenants") == 0)
			tenants = n;
		else if (strcmp(name, "events") == 0)
			events = n;
	}
	PQclear(r);
	json_object_set_new(tasks, "unleased_owners", pg_unleased_owners(s));
	c = json_pack("{s:o, s:I, s:I, s:I}", "tasks", tasks, "agents", agents, "tenants", tenants,
	              "events", events);
	return c;
}

/* ---- the module's table ---- */

#define STORE_PG_OP(ret, name, args) .name = pg_store_##name,
/* clang-format off */
__attribute__((visibility("default"))) const struct store_pg_ops colibri_store_postgres = {
	.abi = STORE_MODULE_ABI,
	.size = sizeof(struct store_pg_ops),
	STORE_BACKEND_FUNCS(STORE_PG_OP, struct pg_store)
	.set_host = pg_store_set_host,
	.set_event_sink = pg_store_set_event_sink,
	.notify_fd = pg_store_notify_fd,
	.notify_read = pg_store_notify_read,
	.url = pg_store_url,
};
/* clang-format on */
