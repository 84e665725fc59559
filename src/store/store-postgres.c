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
#include "store/store-rules.h"
#include "store/store.h"

#define STMT_CACHE     128
#define MAX_PARAMS     16
#define EVENTS_LOCK    "4242424201"
#define MIGRATE_LOCK   "4242424202"
#define HANDOVER_BATCH 1000

struct pg_params {
	const char *v[MAX_PARAMS];
	char num[MAX_PARAMS][24];
	int n;
};

struct pg_store {
	PGconn *db;
	PGconn *listen;
	int listen_broken;
	char *conninfo;
	char *url; /* conninfo without a password */
	char *host;
	int txn;
	int sync_full; /* --sync full: synchronous_commit=on, set again after a reconnect */
	int in_savepoint;
	/* event ordering state of the open transaction */
	int evlock;
	long long own_min, own_max;
	int sp_evlock;
	long long sp_min, sp_max;
	/* hand-over of other daemons' events */
	long long handed;
	int notified;
	store_event_cb sink;
	void *sink_arg;
	/* last error */
	const char *err_code;
	char err_msg[200];
	struct {
		const char *sql;
		char name[12];
	} prep[STMT_CACHE];
	int nprep;
};

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
};

/* ---- parameters, statements, errors ---- */

static void
pp_int(struct pg_params *p, long long v)
{
	snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

/* A text parameter (borrowed; must outlive the query), NULL for SQL NULL. */
static void
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
static void
pg_note(struct pg_store *s, const PGresult *r)
{
	const char *m = r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(s->db);

	s->err_code = pg_code_of(s, r);
	snprintf(s->err_msg, sizeof s->err_msg, "%s", m != NULL && *m ? m : "connection lost");
	s->err_msg[strcspn(s->err_msg, "\n")] = '\0';
}

static void
pg_dberr(struct pg_store *s, struct store_err *e, const char *what)
{
	store_err_set(e, s->err_code != NULL ? s->err_code : ERR_INTERNAL, "%s: %s", what,
	              s->err_msg);
}

/*
 * r (from pg_run) holds a row: 0; else -1 with the database error (r NULL)
 * or not_found with the message fmt (no row).  The caller clears r.
 */
static int __attribute__((format(printf, 5, 6)))
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

static int
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
static PGresult *
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
static int
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
static long long
pg_changes(PGresult *r)
{
	return atoll(PQcmdTuples(r));
}

static long long
pg_int(const PGresult *r, int row, int col, long long dflt)
{
	if (row >= PQntuples(r) || PQgetisnull(r, row, col))
		return dflt;
	return atoll(PQgetvalue(r, row, col));
}

/* The single integer a query returns, or dflt (also on error). */
static long long
pg_scalar(struct pg_store *s, const char *sql, const struct pg_params *p, long long dflt)
{
	PGresult *r = pg_run(s, sql, p);
	long long v = r != NULL ? pg_int(r, 0, 0, dflt) : dflt;

	PQclear(r);
	return v;
}

static json_t *
col_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null()
	                                : json_integer(atoll(PQgetvalue(r, row, col)));
}

static json_t *
col_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col)
	               ? json_null()
	               : json_stringn(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static json_t *
col_json(const PGresult *r, int row, int col)
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

static int
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
static int
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

#define READY_WHERE                                                                                \
	"t.status = 'open' AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks u ON u.id = "      \
	"d.dep WHERE d.task = t.id AND u.status <> 'done')"

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

json_t *
pg_store_counts(struct pg_store *s)
{
	PGresult *r = pg_run(s,
	                     "SELECT (SELECT count(*) FROM tasks WHERE status = 'open'),"
	                     " (SELECT count(*) FROM tasks WHERE status = 'claimed'),"
	                     " (SELECT count(*) FROM tasks WHERE status = 'done'),"
	                     " (SELECT count(*) FROM tasks WHERE status = 'cancelled'),"
	                     " (SELECT count(*) FROM tasks t WHERE " READY_WHERE "),"
	                     " (SELECT count(*) FROM agents), (SELECT count(*) FROM tenants),"
	                     " (SELECT count(*) FROM events)",
	                     NULL);
	json_t *c;

	c = json_pack("{s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I}", "tasks", "open",
	              (json_int_t)(r ? pg_int(r, 0, 0, 0) : 0), "claimed",
	              (json_int_t)(r ? pg_int(r, 0, 1, 0) : 0), "done",
	              (json_int_t)(r ? pg_int(r, 0, 2, 0) : 0), "cancelled",
	              (json_int_t)(r ? pg_int(r, 0, 3, 0) : 0), "ready",
	              (json_int_t)(r ? pg_int(r, 0, 4, 0) : 0), "agents",
	              (json_int_t)(r ? pg_int(r, 0, 5, -1) : -1), "tenants",
	              (json_int_t)(r ? pg_int(r, 0, 6, -1) : -1), "events",
	              (json_int_t)(r ? pg_int(r, 0, 7, -1) : -1));
	PQclear(r);
	return c;
}

/* ---- tasks ---- */

/* Columns of a task row; the last is its dependencies as "1,2,3". */
#define TASK_COLS                                                                                  \
	"t.id, t.title, t.body, t.status, t.priority, t.owner, t.lease_expires, t.result, "        \
	"t.progress, t.created, t.updated, t.claimed, t.completed, (SELECT "                       \
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

	json_object_set_new(t, "id", col_int(r, i, 0));
	json_object_set_new(t, "title", col_text(r, i, 1));
	json_object_set_new(t, "body", col_text(r, i, 2));
	json_object_set_new(t, "status", col_text(r, i, 3));
	json_object_set_new(t, "priority", col_int(r, i, 4));
	json_object_set_new(t, "owner", col_text(r, i, 5));
	json_object_set_new(t, "lease_expires_ms", col_int(r, i, 6));
	json_object_set_new(t, "result", col_json(r, i, 7));
	json_object_set_new(t, "progress", col_text(r, i, 8));
	json_object_set_new(t, "created_ms", col_int(r, i, 9));
	json_object_set_new(t, "updated_ms", col_int(r, i, 10));
	json_object_set_new(t, "claimed_ms", col_int(r, i, 11));
	json_object_set_new(t, "completed_ms", col_int(r, i, 12));
	json_object_set_new(t, "depends_on", deps_from_text(PQgetvalue(r, i, 13)));
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
task_claim_next(struct pg_store *s, const char *agent, long long lease_ms, int64_t now,
                struct store_err *e)
{
	struct pg_params p = {0};
	PGresult *r;
	json_t *t = NULL;

	pp_text(&p, agent);
	pp_int(&p, lease_ms);
	pp_int(&p, now + lease_ms);
	pp_int(&p, now);
	r = pg_run(s,
	           "UPDATE tasks t SET status = 'claimed', owner = $1, lease_ms = $2, "
	           "lease_expires = $3, claimed = $4, updated = $4 WHERE t.id = (SELECT t.id FROM "
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
                    int64_t now, struct store_err *e)
{
	struct pg_params p = {0};
	json_t *t;

	if (id == 0)
		return task_claim_next(s, agent, lease_ms, now, e);
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
	return task_one(s,
	                pg_run(s,
	                       "UPDATE tasks t SET status = 'claimed', owner = $1, lease_ms = $2, "
	                       "lease_expires = $3, claimed = $4, updated = $4 WHERE t.id = $5 AND "
	                       "t.status = 'open' RETURNING " TASK_COLS,
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
	if (pg_do(s,
	          "UPDATE tasks SET status = $1, owner = NULL, lease_expires = NULL, updated = $2 "
	          "WHERE id = $3",
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
pg_store_task_update(struct pg_store *s, long long id, json_t *ch, const char *agent, int64_t now,
                     struct store_err *e)
{
	json_t *t, *v;

	if ((t = task_lock(s, id, e)) == NULL)
		return NULL;
	if (store_rule_owner(t, agent, id, e) == -1 || task_update_fields(s, id, ch, now, e) == -1)
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

/* The task locked and claimed (by agent, if given); NULL with conflict otherwise. */
static int
task_lock_claimed(struct pg_store *s, long long id, const char *agent, struct store_err *e)
{
	json_t *t;
	int rc = 0;

	if ((t = task_lock(s, id, e)) == NULL)
		return -1;
	rc = store_rule_claimed(t, agent, id, e);
	json_decref(t);
	return rc;
}

json_t *
pg_store_task_complete(struct pg_store *s, long long id, const char *agent, json_t *result,
                       int64_t now, struct store_err *e)
{
	struct pg_params p = {0};
	char *res = NULL;
	json_t *t;

	if (task_lock_claimed(s, id, agent, e) == -1)
		return NULL;
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
pg_store_task_release(struct pg_store *s, long long id, const char *agent, int64_t now,
                      struct store_err *e)
{
	struct pg_params p = {0};

	if (task_lock_claimed(s, id, agent, e) == -1)
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
		if ((t = pg_store_task_release(s, pg_int(r, i, 0, 0), NULL, now, NULL)) == NULL)
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

/* ---- agents ---- */

#define AGENT_COLS                                                                                 \
	"id, kind, name, provider, host, pid, pid_start, session_id, state, reason, since, lost, " \
	"lease_ms, heartbeat, tenant, detail, created, updated, owner_uid"

static json_t *
agent_from_row(const PGresult *r, int i)
{
	json_t *a = json_object(), *detail;

	json_object_set_new(a, "id", col_text(r, i, 0));
	json_object_set_new(a, "kind", col_text(r, i, 1));
	json_object_set_new(a, "name", col_text(r, i, 2));
	json_object_set_new(a, "provider", col_text(r, i, 3));
	json_object_set_new(a, "host", col_text(r, i, 4));
	json_object_set_new(a, "pid", col_int(r, i, 5));
	json_object_set_new(a, "pid_start", col_int(r, i, 6));
	json_object_set_new(a, "session_id", col_text(r, i, 7));
	json_object_set_new(a, "state", col_text(r, i, 8));
	json_object_set_new(a, "reason", col_text(r, i, 9));
	json_object_set_new(a, "since_ms", col_int(r, i, 10));
	json_object_set_new(a, "lost", json_boolean(pg_int(r, i, 11, 0) != 0));
	json_object_set_new(a, "lease_ms", col_int(r, i, 12));
	json_object_set_new(a, "heartbeat_ms", col_int(r, i, 13));
	json_object_set_new(a, "tenant", col_text(r, i, 14));
	detail = col_json(r, i, 15);
	if (json_is_object(detail))
		json_object_update_missing(a, detail);
	json_decref(detail);
	json_object_set_new(a, "created_ms", col_int(r, i, 16));
	json_object_set_new(a, "updated_ms", col_int(r, i, 17));
	json_object_set_new(a, "owner_uid", col_int(r, i, 18));
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

/* 1: text column, 2: integer column, 4: detail (JSON object); 0: unknown. */
static int
agent_field_kind(const char *key)
{
	static const char *text_cols[] = {"kind",       "name",  "provider", "host",
	                                  "session_id", "state", "reason",   "tenant"};
	static const char *int_cols[] = {"pid",      "pid_start", "since",    "lost",
	                                 "lease_ms", "heartbeat", "owner_uid"};
	size_t i;

	for (i = 0; i < sizeof text_cols / sizeof *text_cols; i++)
		if (strcmp(key, text_cols[i]) == 0)
			return 1;
	for (i = 0; i < sizeof int_cols / sizeof *int_cols; i++)
		if (strcmp(key, int_cols[i]) == 0)
			return 2;
	return strcmp(key, "detail") == 0 ? 4 : 0;
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
		if ((kind = agent_field_kind(key)) == 0 || n == 24) {
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

/* ---- events ---- */

long long
pg_store_event_append(struct pg_store *s, const char *topic, const char *data, int64_t ts,
                      struct store_err *e)
{
	struct pg_params p = {0};
	long long seq;

	/* Seqs are drawn under the events lock, so they commit in order (see the top). */
	if (!s->evlock) {
		if (pg_do(s, "SELECT pg_advisory_xact_lock(" EVENTS_LOCK ")", NULL) == -1)
			goto fail;
		s->evlock = 1;
	}
	pp_int(&p, ts);
	pp_text(&p, s->host != NULL ? s->host : "");
	pp_text(&p, topic);
	pp_text(&p, data);
	seq = pg_scalar(s,
	                "INSERT INTO events (ts, host, topic, data) VALUES ($1, $2, $3, $4) "
	                "RETURNING seq",
	                &p, -1);
	if (seq == -1)
		goto fail;
	if (s->own_min == 0)
		s->own_min = seq;
	s->own_max = seq;
	return seq;
fail:
	pg_dberr(s, e, "event");
	return -1;
}

long long
pg_store_event_last(struct pg_store *s)
{
	return pg_scalar(s, "SELECT coalesce(max(seq), 0) FROM events", NULL, 0);
}

int
pg_store_event_scan(struct pg_store *s, long long since, long long limit, json_t *topics,
                    store_scan_cb cb, void *arg)
{
	struct pg_params p = {0};
	long long n = 0, last = since;
	PGresult *r;
	int i, rows, stop = 0;

	do {
		p.n = 0;
		pp_int(&p, last);
		r = pg_run(s,
		           "SELECT seq, ts, topic, data FROM events WHERE seq > $1 ORDER BY seq "
		           "LIMIT 1000",
		           &p);
		if (r == NULL)
			return -1;
		rows = PQntuples(r);
		for (i = 0; i < rows && n < limit && !stop; i++) {
			last = pg_int(r, i, 0, last);
			if (!store_topic_matches(topics, PQgetvalue(r, i, 2)))
				continue;
			n++;
			stop = cb(last, pg_int(r, i, 1, 0), PQgetvalue(r, i, 2),
			          PQgetvalue(r, i, 3), arg) != 0;
		}
		PQclear(r);
	} while (rows == 1000 && n < limit && !stop);
	return (int)n;
}

/* ---- cross-host notifications ---- */

int
pg_store_notify_fd(struct pg_store *s)
{
	return s->listen != NULL ? PQsocket(s->listen) : -1;
}

int
pg_store_notify_read(struct pg_store *s)
{
	PGnotify *nf;
	int n = 0;

	if (s->listen == NULL || s->listen_broken || PQstatus(s->listen) != CONNECTION_OK) {
		/* Reconnect; events committed meanwhile are found by the hand-over. */
		if (pg_listen_start(s) == -1)
			return -1;
		s->listen_broken = 0;
		n = 1;
	} else if (PQconsumeInput(s->listen) == 0) {
		/* Keep the descriptor open until the caller has stopped watching it. */
		s->listen_broken = 1;
		return -1;
	}
	while ((nf = PQnotifies(s->listen)) != NULL) {
		n++;
		PQfreemem(nf);
	}
	if (n == 0)
		return 0;
	if (s->txn) {
		/* Our own uncommitted events would show: hand over after the commit. */
		s->notified = 1;
		return 0;
	}
	return pg_handover(s, 0);
}

/* ---- tenants ---- */

#define TENANT_COLS "tenant_id, jail_root_path, collection_id, status, reason, created, updated"

static json_t *
tenant_from_row(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "tenant_id", col_text(r, i, 0),
	                 "jail_root_path", col_text(r, i, 1), "collection_id", col_text(r, i, 2),
	                 "status", col_text(r, i, 3), "reason", col_text(r, i, 4), "created_ms",
	                 col_int(r, i, 5), "updated_ms", col_int(r, i, 6));
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
	json_t *sk = json_object(), *fields = col_json(r, i, 3);

	json_object_set_new(sk, "name", col_text(r, i, 0));
	json_object_set_new(sk, "description", col_text(r, i, 1));
	json_object_set_new(sk, "path", col_text(r, i, 2));
	if (!json_is_object(fields)) {
		json_decref(fields);
		fields = json_object();
	}
	json_object_set_new(sk, "fields", fields);
	if (with_body)
		json_object_set_new(sk, "body", col_text(r, i, 4));
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
