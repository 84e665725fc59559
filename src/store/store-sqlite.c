/*
 * store-sqlite.c -- the embedded SQLite backend of store.h.
 *
 * One connection, owned by the daemon's loop thread: the daemon is the only
 * writer, which avoids SQLite's unfair lock waits between processes and lets
 * the daemon batch concurrent writes into one transaction (group commit).
 * WAL journal, synchronous=NORMAL by default: a committed transaction
 * survives the daemon being killed (it is in the WAL before COMMIT
 * returns), not a crash of the OS or a power loss, which may take the last
 * few; synchronous=FULL (the daemon's --sync full) syncs the WAL at every
 * commit and survives those too.  Foreign keys on, busy timeout for the
 * odd external reader (sqlite3 CLI, backups).
 *
 * The database and its -wal, -shm and -journal files are 0600 whatever the
 * umask and the directory's group (a FreeBSD file takes its directory's
 * group, and the state directory may be the socket group's): SQLite
 * creates the side files with the database file's mode, so the database is
 * created 0600 before SQLite opens it and any of them left wider is
 * narrowed (sqlite_files_private).
 *
 * Statements are prepared once (SQLITE_PREPARE_PERSISTENT) and cached by
 * the address of their SQL text, which is always a string literal here.
 *
 * Schema changes are migrations indexed by PRAGMA user_version; append new
 * ones to the migrations[] array, never edit a shipped one.  The skills
 * index and the prompt log predate that rule: their tables are created
 * (if missing) at every open, outside the numbered migrations.
 *
 * The functions are the sqlite_store_* half of store-backend.h; store.c
 * dispatches store.h calls to them.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/jsonw.h"
#include "common/xmalloc.h"
#include "store/store-backend.h"
#include "store/store-rules.h"
#include "store/store.h"

#define STMT_CACHE 96
#define MEMO_SLOTS 64
#define MEMO_MAX   4096 /* larger tasks are not memoised */

struct sqlite_store {
	sqlite3 *db;
	char *path;
	int txn;
	int snapshot; /* the read snapshot is open (see st) */
	/* The snapshot's memo of task JSON (see memo_get). */
	unsigned long long memo_gen; /* 64 bits: never wraps back to an old entry's */
	struct memo {
		unsigned long long gen;
		long long id;
		char *json;
		size_t len;
	} memo[MEMO_SLOTS];
	int savepoints;
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[STMT_CACHE];
};

static const char *migrations[] = {
        /* 1: the task board, the agent registry, the events log, tenants, kv. */
        "CREATE TABLE tasks ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  title TEXT NOT NULL,"
        "  body TEXT NOT NULL DEFAULT '',"
        "  status TEXT NOT NULL DEFAULT 'open'"
        "    CHECK (status IN ('open','claimed','done','cancelled')),"
        "  priority INTEGER NOT NULL DEFAULT 0,"
        "  owner TEXT,"
        "  lease_ms INTEGER,"
        "  lease_expires INTEGER,"
        "  result TEXT,"
        "  progress TEXT,"
        "  created INTEGER NOT NULL,"
        "  updated INTEGER NOT NULL,"
        "  claimed INTEGER,"
        "  completed INTEGER);"
        "CREATE INDEX tasks_queue ON tasks (status, priority DESC, id);"
        "CREATE INDEX tasks_owner ON tasks (owner) WHERE owner IS NOT NULL;"
        "CREATE INDEX tasks_lease ON tasks (lease_expires) WHERE status = 'claimed';"
        "CREATE TABLE task_deps ("
        "  task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"
        "  dep INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"
        "  PRIMARY KEY (task, dep)) WITHOUT ROWID;"
        "CREATE INDEX task_deps_dep ON task_deps (dep);"
        "CREATE TABLE agents ("
        "  id TEXT PRIMARY KEY,"
        "  kind TEXT NOT NULL DEFAULT 'registered',"
        "  name TEXT, provider TEXT, host TEXT,"
        "  pid INTEGER, pid_start INTEGER, session_id TEXT,"
        "  state TEXT NOT NULL DEFAULT 'idle', reason TEXT, since INTEGER,"
        "  lost INTEGER NOT NULL DEFAULT 0,"
        "  lease_ms INTEGER, heartbeat INTEGER,"
        "  tenant TEXT, detail TEXT,"
        "  created INTEGER NOT NULL, updated INTEGER NOT NULL);"
        "CREATE INDEX agents_kind ON agents (kind, state);"
        "CREATE TABLE events ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  ts INTEGER NOT NULL,"
        "  topic TEXT NOT NULL,"
        "  data TEXT NOT NULL);"
        "CREATE TABLE tenants ("
        "  tenant_id TEXT PRIMARY KEY,"
        "  jail_root_path TEXT NOT NULL,"
        "  collection_id TEXT NOT NULL,"
        "  status TEXT NOT NULL DEFAULT 'provisioned',"
        "  reason TEXT,"
        "  created INTEGER NOT NULL, updated INTEGER NOT NULL);"
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        /* 2: the uid that spawned an agent (its owner: kill-agent, session-read, ...). */
        "ALTER TABLE agents ADD COLUMN owner_uid INTEGER;",
};

/* Tables of the skills index and the prompt log (not numbered migrations). */
static const char aux_tables[] =
        "CREATE TABLE IF NOT EXISTS skills ("
        "  name TEXT PRIMARY KEY,"
        "  description TEXT NOT NULL,"
        "  path TEXT,"
        "  fields TEXT NOT NULL,"
        "  body TEXT NOT NULL,"
        "  indexed INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS prompt_log (session_id TEXT NOT NULL, ts INTEGER NOT NULL,"
        "  r1 TEXT, r2 TEXT, r3 TEXT, bytes INTEGER);"
        "CREATE INDEX IF NOT EXISTS prompt_log_session ON prompt_log (session_id, ts);";

static void
store_dberr(struct sqlite_store *s, struct store_err *e, const char *what)
{
	int rc = sqlite3_extended_errcode(s->db);

	if ((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR)
		store_err_set(e, ERR_UNAVAILABLE, "%s: %s", what, sqlite3_errmsg(s->db));
	else
		store_err_set(e, ERR_INTERNAL, "%s: %s", what, sqlite3_errmsg(s->db));
}

/*
 * Step q (bound by the caller) to its one row: 0 with the row ready to
 * read (the caller resets q); -1 with the database error (q NULL: it did
 * not prepare) or not_found with the message fmt when there is no row.
 */
static int __attribute__((format(printf, 5, 6)))
sq_one_row(struct sqlite_store *s, sqlite3_stmt *q, const char *what, struct store_err *e,
           const char *fmt, ...)
{
	va_list ap;

	if (q == NULL) {
		store_dberr(s, e, what);
		return -1;
	}
	if (sqlite3_step(q) == SQLITE_ROW)
		return 0;
	sqlite3_reset(q);
	if (e != NULL) {
		e->code = ERR_NOT_FOUND;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The cached, reset statement for sql (a string literal). */
static sqlite3_stmt *
st_cached(struct sqlite_store *s, const char *sql)
{
	int i;

	for (i = 0; i < STMT_CACHE && s->cache[i].sql != NULL; i++) {
		if (s->cache[i].sql == sql) {
			sqlite3_reset(s->cache[i].stmt);
			sqlite3_clear_bindings(s->cache[i].stmt);
			return s->cache[i].stmt;
		}
	}
	if (i == STMT_CACHE)
		i = STMT_CACHE - 1; /* never reached with the statements here; reuse the last */
	if (s->cache[i].stmt != NULL)
		sqlite3_finalize(s->cache[i].stmt);
	s->cache[i].sql = sql;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cache[i].stmt,
	                       NULL) != SQLITE_OK) {
		s->cache[i].sql = NULL;
		s->cache[i].stmt = NULL;
		return NULL;
	}
	return s->cache[i].stmt;
}

/*
 * The read snapshot.  Outside a write transaction every statement would
 * otherwise run in a transaction of its own, and beginning one takes and
 * releases a lock on the WAL index (two fcntl calls) -- more than the rest
 * of a point read costs.  So reads share one deferred transaction, kept
 * open across requests: only this connection ever writes the database (the
 * daemon's lock file), so its snapshot is never stale.  It ends before
 * anything writes (a write transaction, or a stray write statement, which
 * then commits on its own as before) and from the daemon's idle timer
 * (store_idle), so it never holds back a checkpoint for long.
 */
static void
snapshot_end(struct sqlite_store *s)
{
	sqlite3_stmt *q;

	if (!s->snapshot)
		return;
	s->memo_gen++;
	if ((q = st_cached(s, "COMMIT")) == NULL)
		return;
	/* Only a statement still writing could stop it; none is left stepping. */
	if (sqlite3_step(q) == SQLITE_DONE)
		s->snapshot = 0;
	sqlite3_reset(q);
}

static void
snapshot_begin(struct sqlite_store *s)
{
	sqlite3_stmt *q;

	/*
	 * Only from no transaction at all: a statement still stepping keeps an
	 * implicit one open, and BEGIN would make it the snapshot's (anything it
	 * had written would then wait for the snapshot to end).
	 */
	if (sqlite3_txn_state(s->db, NULL) != SQLITE_TXN_NONE)
		return;
	if ((q = st_cached(s, "BEGIN")) == NULL)
		return;
	if (sqlite3_step(q) == SQLITE_DONE)
		s->snapshot = 1;
	sqlite3_reset(q);
}

/* A cached statement, run inside the read snapshot if it only reads. */
static sqlite3_stmt *
st(struct sqlite_store *s, const char *sql)
{
	sqlite3_stmt *q = st_cached(s, sql);

	if (q == NULL || s->txn)
		return q;
	if (!sqlite3_stmt_readonly(q))
		snapshot_end(s);
	else if (!s->snapshot)
		snapshot_begin(s);
	return q;
}

void
sqlite_store_idle(struct sqlite_store *s)
{
	if (!s->txn)
		snapshot_end(s);
}

int
sqlite_store_snapshot_open(struct sqlite_store *s)
{
	return s->snapshot;
}

/*
 * The snapshot's memo: the JSON of tasks read in the current snapshot, by
 * id, in a small direct-mapped table.  Nothing can change what a snapshot
 * reads (only this connection writes, and every write ends the snapshot
 * first), so an entry is exactly what reading the row again would give;
 * ending the snapshot forgets them all (memo_gen).  As a second guard,
 * any row change at all forgets them too (update hook), and inside a
 * write transaction the memo is neither read nor filled.
 */
static void
memo_forget(void *arg, int op, const char *db, const char *table, sqlite3_int64 rowid)
{
	struct sqlite_store *s = arg;

	(void)op;
	(void)db;
	(void)table;
	(void)rowid;
	s->memo_gen++;
}

static struct memo *
memo_slot(struct sqlite_store *s, long long id)
{
	return &s->memo[(unsigned long long)id % MEMO_SLOTS];
}

static int
memo_get(struct sqlite_store *s, long long id, struct buf *out)
{
	struct memo *m = memo_slot(s, id);

	if (s->txn || !s->snapshot || m->gen != s->memo_gen || m->id != id || m->json == NULL)
		return -1;
	buf_add(out, m->json, m->len);
	return 0;
}

static void
memo_put(struct sqlite_store *s, long long id, const char *json, size_t len)
{
	struct memo *m = memo_slot(s, id);

	if (s->txn || !s->snapshot || len > MEMO_MAX)
		return;
	if (m->json == NULL || len > m->len)
		m->json = xrealloc(m->json, len);
	memcpy(m->json, json, len);
	m->len = len;
	m->id = id;
	m->gen = s->memo_gen;
}

static void
bind_text_or_null(sqlite3_stmt *q, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(q, i);
}

/*
 * Single-row reads: step once, take column 0, reset.  A statement left
 * un-reset after SQLITE_ROW keeps the connection's read transaction open,
 * and an open read transaction stops every WAL checkpoint: the WAL would
 * grow without bound and the database file never be written.
 */
static long long
row_int64(sqlite3_stmt *q, long long dflt)
{
	long long v = dflt;

	if (q == NULL)
		return dflt;
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return v;
}

static int
row_exists(sqlite3_stmt *q)
{
	int found;

	if (q == NULL)
		return 0;
	found = sqlite3_step(q) == SQLITE_ROW;
	sqlite3_reset(q);
	return found;
}

static int
store_exec(struct sqlite_store *s, const char *sql)
{
	if (!s->txn)
		snapshot_end(s);
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/*
 * Run a cached statement without results (transaction control on the
 * request path: sqlite3_exec would parse BEGIN, SAVEPOINT, RELEASE and
 * COMMIT again for every request).
 */
static int
store_run(struct sqlite_store *s, const char *sql)
{
	sqlite3_stmt *q;

	if (!s->txn)
		snapshot_end(s);
	q = st_cached(s, sql);
	int rc;

	if (q == NULL)
		return -1;
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
store_migrate(struct sqlite_store *s, struct store_err *e)
{
	int have = sqlite_store_schema_version(s),
	    n = (int)(sizeof migrations / sizeof *migrations);
	char pragma[64];

	if (have > n) {
		store_err_set(e, ERR_INTERNAL,
		              "database schema %d is newer than this daemon knows (%d)", have, n);
		return -1;
	}
	for (; have < n; have++) {
		if (store_exec(s, "BEGIN IMMEDIATE") == -1)
			goto fail;
		if (store_exec(s, migrations[have]) == -1) {
			store_dberr(s, e, "migration");
			store_exec(s, "ROLLBACK");
			return -1;
		}
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", have + 1);
		if (store_exec(s, pragma) == -1 || store_exec(s, "COMMIT") == -1)
			goto fail;
	}
	return 0;
fail:
	store_dberr(s, e, "migration");
	store_exec(s, "ROLLBACK");
	return -1;
}

/*
 * Create the database file 0600 if it is missing, and narrow it and any
 * -wal, -shm or -journal beside it to 0600; refuse one that is not a
 * regular file (a symlink).  In-memory and URI names are left alone.
 */
static int
sqlite_files_private(const char *path, struct store_err *e)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	struct stat sb;
	char *p;
	size_t i;
	int fd, rc = 0;

	if (path[0] == '\0' || path[0] == ':' || strncmp(path, "file:", 5) == 0)
		return 0;
	for (i = 0; i < sizeof suffix / sizeof *suffix && rc == 0; i++) {
		xasprintf(&p, "%s%s", path, suffix[i]);
		fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd == -1 && errno == ENOENT && i == 0)
			fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1) {
			if (errno != ENOENT) {
				store_err_set(e, ERR_INTERNAL, "%s: %s", p, strerror(errno));
				rc = -1;
			}
		} else if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
			store_err_set(e, ERR_INTERNAL, "%s is not a regular file", p);
			rc = -1;
		} else if ((sb.st_mode & 07777) != 0600 && fchmod(fd, 0600) == -1) {
			store_err_set(e, ERR_INTERNAL, "chmod 0600 %s: %s", p, strerror(errno));
			rc = -1;
		}
		if (fd != -1)
			close(fd);
		free(p);
	}
	return rc;
}

struct sqlite_store *
sqlite_store_open(const char *path, struct store_err *e)
{
	struct sqlite_store *s = xcalloc(1, sizeof *s);
	static int configured;

	/*
	 * The library, once per process and before its first use: one thread
	 * uses it (the loop), so no mutexes, and no memory statistics (a global
	 * mutex around every allocation otherwise).  bench/sqlite-raw.c, the
	 * reference, configures it the same.
	 */
	if (!configured) {
		configured = 1;
		sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
	s->path = xstrdup(path);
	if (sqlite_files_private(path, e) == -1)
		goto fail;
	if (sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
	                            SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		store_err_set(e, ERR_INTERNAL, "open %s: %s", path,
		              s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	sqlite3_update_hook(s->db, memo_forget, s);
	sqlite3_extended_result_codes(s->db, 1);
	if (store_exec(s, "PRAGMA journal_mode = WAL") == -1 ||
	    store_exec(s, "PRAGMA synchronous = NORMAL") == -1 ||
	    store_exec(s, "PRAGMA foreign_keys = ON") == -1 ||
	    store_exec(s, "PRAGMA temp_store = MEMORY") == -1) {
		store_dberr(s, e, "configure");
		goto fail;
	}
	if (store_migrate(s, e) == -1)
		goto fail;
	if (store_exec(s, aux_tables) == -1) {
		store_dberr(s, e, "skills and prompt_log tables");
		goto fail;
	}
	return s;
fail:
	sqlite_store_close(s);
	return NULL;
}

void
sqlite_store_close(struct sqlite_store *s)
{
	int i;

	if (s == NULL)
		return;
	if (s->db != NULL) {
		if (s->txn)
			store_exec(s, "ROLLBACK");
		snapshot_end(s); /* before the statements go: it runs a cached COMMIT */
	}
	for (i = 0; i < STMT_CACHE; i++)
		if (s->cache[i].stmt != NULL)
			sqlite3_finalize(s->cache[i].stmt);
	if (s->db != NULL)
		sqlite3_close(s->db);
	for (i = 0; i < MEMO_SLOTS; i++)
		free(s->memo[i].json);
	free(s->path);
	free(s);
}

struct sqlite3 *
sqlite_store_db(struct sqlite_store *s)
{
	return s->db;
}

int
sqlite_store_schema_version(struct sqlite_store *s)
{
	sqlite3_stmt *q;
	int v = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return v;
}

int
sqlite_store_begin(struct sqlite_store *s, struct store_err *e)
{
	if (store_run(s, "BEGIN IMMEDIATE") == -1) {
		store_dberr(s, e, "begin");
		return -1;
	}
	s->txn = 1;
	return 0;
}

int
sqlite_store_commit(struct sqlite_store *s, struct store_err *e)
{
	if (store_run(s, "COMMIT") == -1) {
		store_dberr(s, e, "commit");
		store_exec(s, "ROLLBACK");
		s->txn = 0;
		return -1;
	}
	s->txn = 0;
	return 0;
}

void
sqlite_store_rollback(struct sqlite_store *s)
{
	store_exec(s, "ROLLBACK");
	s->txn = 0;
}

int
sqlite_store_in_txn(struct sqlite_store *s)
{
	return s->txn;
}

int
sqlite_store_savepoint(struct sqlite_store *s)
{
	return store_run(s, "SAVEPOINT cmd");
}

void
sqlite_store_savepoint_release(struct sqlite_store *s)
{
	store_run(s, "RELEASE cmd");
}

void
sqlite_store_savepoint_rollback(struct sqlite_store *s)
{
	store_run(s, "ROLLBACK TO cmd");
	store_run(s, "RELEASE cmd");
}

int
sqlite_store_integrity_check(struct sqlite_store *s, struct store_err *e)
{
	sqlite3_stmt *q;
	int ok = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK) {
		store_dberr(s, e, "integrity_check");
		return -1;
	}
	if (sqlite3_step(q) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
	if (!ok)
		store_err_set(e, ERR_INTERNAL, "integrity_check: %s",
		              (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	return ok ? 0 : -1;
}

int
sqlite_store_set_sync(struct sqlite_store *s, int full, struct store_err *e)
{
	if (store_exec(s, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL") ==
	    -1) {
		store_dberr(s, e, "synchronous");
		return -1;
	}
	return 0;
}

const char *
sqlite_store_sync(struct sqlite_store *s)
{
	static const char *const names[] = {"off", "normal", "full", "extra"};
	sqlite3_stmt *q;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &q, NULL) != SQLITE_OK)
		return "unknown";
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return v >= 0 && v <= 3 ? names[v] : "unknown";
}

static long long
count_of(struct sqlite_store *s, const char *sql)
{
	return row_int64(st(s, sql), -1);
}

#define READY_WHERE                                                                                \
	"t.status = 'open' AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks u ON u.id = "      \
	"d.dep WHERE d.task = t.id AND u.status != 'done')"

json_t *
sqlite_store_counts(struct sqlite_store *s)
{
	json_t *tasks = json_object();
	sqlite3_stmt *q;

	json_object_set_new(tasks, "open", json_integer(0));
	json_object_set_new(tasks, "claimed", json_integer(0));
	json_object_set_new(tasks, "done", json_integer(0));
	json_object_set_new(tasks, "cancelled", json_integer(0));
	q = st(s, "SELECT status, count(*) FROM tasks GROUP BY status");
	while (q != NULL && sqlite3_step(q) == SQLITE_ROW)
		json_object_set_new(tasks, (const char *)sqlite3_column_text(q, 0),
		                    json_integer(sqlite3_column_int64(q, 1)));
	json_object_set_new(
	        tasks, "ready",
	        json_integer(count_of(s, "SELECT count(*) FROM tasks t WHERE " READY_WHERE)));
	return json_pack(
	        "{s:o, s:I, s:I, s:I}", "tasks", tasks, "agents",
	        (json_int_t)count_of(s, "SELECT count(*) FROM agents"), "tenants",
	        (json_int_t)count_of(s, "SELECT count(*) FROM tenants"), "events",
	        (json_int_t)count_of(s, "SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM events"));
}

/* ---- tasks ---- */

#define TASK_COLS                                                                                  \
	"t.id, t.title, t.body, t.status, t.priority, t.owner, t.lease_expires, t.result, "        \
	"t.progress, t.created, t.updated, t.claimed, t.completed"

static json_t *
col_int_or_null(sqlite3_stmt *q, int i)
{
	return sqlite3_column_type(q, i) == SQLITE_NULL ? json_null()
	                                                : json_integer(sqlite3_column_int64(q, i));
}

static json_t *
col_text_or_null(sqlite3_stmt *q, int i)
{
	return sqlite3_column_type(q, i) == SQLITE_NULL
	               ? json_null()
	               : json_stringn((const char *)sqlite3_column_text(q, i),
	                              (size_t)sqlite3_column_bytes(q, i));
}

static json_t *
col_json_or_null(sqlite3_stmt *q, int i)
{
	json_t *v;

	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		return json_null();
	v = json_loadb((const char *)sqlite3_column_text(q, i), (size_t)sqlite3_column_bytes(q, i),
	               JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_null();
}

static json_t *
task_deps_of(struct sqlite_store *s, long long id)
{
	sqlite3_stmt *q = st(s, "SELECT dep FROM task_deps WHERE task = ? ORDER BY dep");
	json_t *a = json_array();

	sqlite3_bind_int64(q, 1, id);
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(a, json_integer(sqlite3_column_int64(q, 0)));
	return a;
}

/* Build a task object from a row selected with TASK_COLS. */
static json_t *
task_from_row(struct sqlite_store *s, sqlite3_stmt *q)
{
	json_t *t = json_object();
	long long id = sqlite3_column_int64(q, 0);

	json_object_set_new(t, "id", json_integer(id));
	json_object_set_new(t, "title", col_text_or_null(q, 1));
	json_object_set_new(t, "body", col_text_or_null(q, 2));
	json_object_set_new(t, "status", col_text_or_null(q, 3));
	json_object_set_new(t, "priority", json_integer(sqlite3_column_int64(q, 4)));
	json_object_set_new(t, "owner", col_text_or_null(q, 5));
	json_object_set_new(t, "lease_expires_ms", col_int_or_null(q, 6));
	json_object_set_new(t, "result", col_json_or_null(q, 7));
	json_object_set_new(t, "progress", col_text_or_null(q, 8));
	json_object_set_new(t, "created_ms", json_integer(sqlite3_column_int64(q, 9)));
	json_object_set_new(t, "updated_ms", json_integer(sqlite3_column_int64(q, 10)));
	json_object_set_new(t, "claimed_ms", col_int_or_null(q, 11));
	json_object_set_new(t, "completed_ms", col_int_or_null(q, 12));
	json_object_set_new(t, "depends_on", task_deps_of(s, id));
	return t;
}

json_t *
sqlite_store_task_get(struct sqlite_store *s, long long id, struct store_err *e)
{
	sqlite3_stmt *q = st(s, "SELECT " TASK_COLS " FROM tasks t WHERE t.id = ?");
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

/* TASK_COLS and, as column 13, the task's dependencies (comma-separated, in any order). */
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
		json_t *v = col_json_or_null(q, 7);
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
	PUT_KEY(b, ",\"depends_on\":");
	put_deps(b, q, 13);
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

	if (memo_get(s, id, out) == 0)
		return 0;
	if ((q = st(s, TASK_JSON_SQL)) != NULL)
		sqlite3_bind_int64(q, 1, id);
	if (sq_one_row(s, q, "task-show", e, "no task %lld", id) == -1)
		return -1;
	task_write_row(q, out);
	sqlite3_reset(q);
	memo_put(s, id, out->data + start, out->len - start);
	return 0;
}

static int
task_exists(void *ctx, long long id)
{
	struct sqlite_store *s = ctx;
	sqlite3_stmt *q = st(s, "SELECT 1 FROM tasks WHERE id = ?");

	sqlite3_bind_int64(q, 1, id);
	return row_exists(q);
}

/* Would task -> dep close a cycle (dep already reaches task)? */
static int
task_dep_cycles(void *ctx, long long task, long long dep)
{
	struct sqlite_store *s = ctx;
	sqlite3_stmt *q = st(s, "WITH RECURSIVE r(x) AS (SELECT ? UNION SELECT d.dep FROM "
	                        "task_deps d JOIN r ON d.task = r.x) SELECT 1 FROM r WHERE x = ?");

	sqlite3_bind_int64(q, 1, dep);
	sqlite3_bind_int64(q, 2, task);
	return row_exists(q);
}

/* Replace task's dependencies with deps (an array of integers). */
static int
task_set_deps(struct sqlite_store *s, long long task, json_t *deps, struct store_err *e)
{
	struct store_dep_probe probe = {task_exists, task_dep_cycles, s};
	sqlite3_stmt *q;
	size_t i;
	json_t *v;

	q = st(s, "DELETE FROM task_deps WHERE task = ?");
	sqlite3_bind_int64(q, 1, task);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	json_array_foreach(deps, i, v)
	{
		long long dep;

		if (store_rule_dep(task, v, &probe, &dep, e) == -1)
			return -1;
		q = st(s, "INSERT OR IGNORE INTO task_deps (task, dep) VALUES (?, ?)");
		sqlite3_bind_int64(q, 1, task);
		sqlite3_bind_int64(q, 2, dep);
		if (sqlite3_step(q) != SQLITE_DONE)
			goto dberr;
	}
	return 0;
dberr:
	store_dberr(s, e, "task dependencies");
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
               int64_t now)
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
	PUT_KEY(b, ",\"claimed_ms\":null,\"completed_ms\":null,\"depends_on\":[]}");
}

long long
sqlite_store_task_insert(struct sqlite_store *s, const char *title, const char *body,
                         long long priority, json_t *depends_on, int64_t now, struct buf *out,
                         struct store_err *e)
{
	sqlite3_stmt *q = st(s, "INSERT INTO tasks (title, body, priority, created, updated) "
	                        "VALUES (?, ?, ?, ?, ?)");
	long long id;

	if (q == NULL)
		goto dberr;
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
		if (task_set_deps(s, id, depends_on, e) == -1)
			return -1;
		if (out != NULL && sqlite_store_task_get_json(s, id, out, e) == -1)
			return -1;
	} else if (out != NULL)
		task_write_new(out, id, title, body, priority, now);
	return id;
dberr:
	store_dberr(s, e, "task-create");
	if (q != NULL)
		sqlite3_reset(q);
	return -1;
}

/* TASK_JSON_SQL's columns for a page of task-list: by id after ?3, or the ready queue. */
#define TASK_PAGE_COLS                                                                             \
	"SELECT " TASK_COLS ", (SELECT group_concat(dep) FROM task_deps d WHERE d.task = t.id) "   \
	"FROM tasks t WHERE "

int
sqlite_store_task_list_json(struct sqlite_store *s, struct store_task_page *pg, struct buf *out,
                            struct store_err *e)
{
	size_t start = out->len;
	sqlite3_stmt *q;

	if (pg->ready_only)
		q = st(s, TASK_PAGE_COLS READY_WHERE " ORDER BY t.priority DESC, t.id LIMIT ?4");
	else
		q = st(s, TASK_PAGE_COLS "(?1 IS NULL OR t.status = ?1) AND (?2 IS NULL OR "
		                         "t.owner = ?2) AND t.id > ?3 ORDER BY t.id LIMIT ?4");
	if (q == NULL) {
		store_dberr(s, e, "task-list");
		return -1;
	}
	if (!pg->ready_only) {
		bind_text_or_null(q, 1, pg->status);
		bind_text_or_null(q, 2, pg->owner);
		sqlite3_bind_int64(q, 3, pg->after);
	}
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
	sqlite3_stmt *q = st(s, "SELECT t.id FROM tasks t WHERE " READY_WHERE
	                        " ORDER BY t.priority DESC, t.id LIMIT 1");

	return row_int64(q, 0);
}

static int
task_is_ready(struct sqlite_store *s, long long id)
{
	sqlite3_stmt *q = st(s, "SELECT 1 FROM tasks t WHERE t.id = ? AND " READY_WHERE);

	sqlite3_bind_int64(q, 1, id);
	return row_exists(q);
}

json_t *
sqlite_store_task_claim(struct sqlite_store *s, const char *agent, long long id, long long lease_ms,
                        int64_t now, struct store_err *e)
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
	q = st(s,
	       "UPDATE tasks SET status = 'claimed', owner = ?, lease_ms = ?, lease_expires = ?, "
	       "claimed = ?, updated = ? WHERE id = ? AND status = 'open'");
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, lease_ms);
	sqlite3_bind_int64(q, 3, now + lease_ms);
	sqlite3_bind_int64(q, 4, now);
	sqlite3_bind_int64(q, 5, now);
	sqlite3_bind_int64(q, 6, id);
	if (sqlite3_step(q) != SQLITE_DONE) {
		store_dberr(s, e, "task-claim");
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
	sqlite3_stmt *q = st(s, sql);

	bind_text_or_null(q, 1, v);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, id);
	return sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
}

static int
task_update_status(struct sqlite_store *s, json_t *t, long long id, const char *to, int64_t now,
                   struct store_err *e)
{
	const char *from = json_string_value(json_object_get(t, "status"));
	sqlite3_stmt *q;

	if (store_rule_status_change(from, to, id, e) == -1)
		return -1;
	q = st(s, "UPDATE tasks SET status = ?, owner = NULL, lease_expires = NULL, updated = ? "
	          "WHERE id = ?");
	sqlite3_bind_text(q, 1, to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, id);
	return sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
}

json_t *
sqlite_store_task_update(struct sqlite_store *s, long long id, json_t *ch, const char *agent,
                         int64_t now, struct store_err *e)
{
	json_t *t, *v;
	int rc = 0;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
		return NULL;
	if (store_rule_owner(t, agent, id, e) == -1)
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
	if ((v = json_object_get(ch, "priority")) != NULL) {
		sqlite3_stmt *q = st(s, "UPDATE tasks SET priority = ?, updated = ? WHERE id = ?");
		sqlite3_bind_int64(q, 1, json_integer_value(v));
		sqlite3_bind_int64(q, 2, now);
		sqlite3_bind_int64(q, 3, id);
		rc |= sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
	}
	if (rc != 0) {
		store_dberr(s, e, "task-update");
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
sqlite_store_task_complete(struct sqlite_store *s, long long id, const char *agent, json_t *result,
                           int64_t now, struct store_err *e)
{
	sqlite3_stmt *q;
	json_t *t;
	char *res = NULL;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
		return NULL;
	if (store_rule_claimed(t, agent, id, e) == -1) {
		json_decref(t);
		return NULL;
	}
	json_decref(t);
	if (result != NULL)
		res = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
	q = st(s, "UPDATE tasks SET status = 'done', result = ?, lease_expires = NULL, "
	          "completed = ?, updated = ? WHERE id = ?");
	bind_text_or_null(q, 1, res);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_int64(q, 4, id);
	free(res);
	if (sqlite3_step(q) != SQLITE_DONE) {
		store_dberr(s, e, "task-complete");
		return NULL;
	}
	return sqlite_store_task_get(s, id, e);
}

json_t *
sqlite_store_task_release(struct sqlite_store *s, long long id, const char *agent, int64_t now,
                          struct store_err *e)
{
	sqlite3_stmt *q;
	json_t *t;

	if ((t = sqlite_store_task_get(s, id, e)) == NULL)
		return NULL;
	if (store_rule_claimed(t, agent, id, e) == -1) {
		json_decref(t);
		return NULL;
	}
	json_decref(t);
	q = st(s, "UPDATE tasks SET status = 'open', owner = NULL, lease_expires = NULL, "
	          "updated = ? WHERE id = ?");
	sqlite3_bind_int64(q, 1, now);
	sqlite3_bind_int64(q, 2, id);
	if (sqlite3_step(q) != SQLITE_DONE) {
		store_dberr(s, e, "task-release");
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
		if ((t = sqlite_store_task_release(s, ids[i], NULL, now, NULL)) == NULL)
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
	sqlite3_stmt *q = st(s, "SELECT id FROM tasks WHERE status = 'claimed' AND "
	                        "lease_expires <= ? ORDER BY id");

	sqlite3_bind_int64(q, 1, now);
	return task_release_ids(s, q, now, cb, arg);
}

int
sqlite_store_task_release_agent(struct sqlite_store *s, const char *agent, int64_t now,
                                void (*cb)(json_t *, void *), void *arg)
{
	sqlite3_stmt *q = st(s, "SELECT id FROM tasks WHERE status = 'claimed' AND owner = ? "
	                        "ORDER BY id");

	sqlite3_bind_text(q, 1, agent, -1, SQLITE_TRANSIENT);
	return task_release_ids(s, q, now, cb, arg);
}

int
sqlite_store_task_renew_agent(struct sqlite_store *s, const char *agent, int64_t now)
{
	sqlite3_stmt *q = st(s, "UPDATE tasks SET lease_expires = ? + lease_ms "
	                        "WHERE status = 'claimed' AND owner = ?");

	sqlite3_bind_int64(q, 1, now);
	sqlite3_bind_text(q, 2, agent, -1, SQLITE_TRANSIENT);
	return sqlite3_step(q) == SQLITE_DONE ? sqlite3_changes(s->db) : -1;
}

int64_t
sqlite_store_task_next_expiry(struct sqlite_store *s)
{
	return row_int64(st(s, "SELECT min(lease_expires) FROM tasks WHERE status = 'claimed'"),
	                 -1);
}

/* ---- agents ---- */

#define AGENT_COLS                                                                                 \
	"id, kind, name, provider, host, pid, pid_start, session_id, state, reason, since, lost, " \
	"lease_ms, heartbeat, tenant, detail, created, updated, owner_uid"

static json_t *
agent_from_row(sqlite3_stmt *q)
{
	json_t *a = json_object(), *detail;

	json_object_set_new(a, "id", col_text_or_null(q, 0));
	json_object_set_new(a, "kind", col_text_or_null(q, 1));
	json_object_set_new(a, "name", col_text_or_null(q, 2));
	json_object_set_new(a, "provider", col_text_or_null(q, 3));
	json_object_set_new(a, "host", col_text_or_null(q, 4));
	json_object_set_new(a, "pid", col_int_or_null(q, 5));
	json_object_set_new(a, "pid_start", col_int_or_null(q, 6));
	json_object_set_new(a, "session_id", col_text_or_null(q, 7));
	json_object_set_new(a, "state", col_text_or_null(q, 8));
	json_object_set_new(a, "reason", col_text_or_null(q, 9));
	json_object_set_new(a, "since_ms", col_int_or_null(q, 10));
	json_object_set_new(a, "lost", json_boolean(sqlite3_column_int(q, 11)));
	json_object_set_new(a, "lease_ms", col_int_or_null(q, 12));
	json_object_set_new(a, "heartbeat_ms", col_int_or_null(q, 13));
	json_object_set_new(a, "tenant", col_text_or_null(q, 14));
	detail = col_json_or_null(q, 15);
	if (json_is_object(detail))
		json_object_update_missing(a, detail);
	json_decref(detail);
	json_object_set_new(a, "created_ms", json_integer(sqlite3_column_int64(q, 16)));
	json_object_set_new(a, "updated_ms", json_integer(sqlite3_column_int64(q, 17)));
	json_object_set_new(a, "owner_uid", col_int_or_null(q, 18));
	return a;
}

json_t *
sqlite_store_agent_get(struct sqlite_store *s, const char *id, struct store_err *e)
{
	sqlite3_stmt *q = st(s, "SELECT " AGENT_COLS " FROM agents WHERE id = ?");
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
	static const char *text_cols[] = {"kind",       "name",  "provider", "host",
	                                  "session_id", "state", "reason",   "tenant"};
	static const char *int_cols[] = {"pid",      "pid_start", "since",    "lost",
	                                 "lease_ms", "heartbeat", "owner_uid"};
	sqlite3_stmt *q;
	const char *key;
	json_t *v;
	char sql[160];
	size_t i;

	q = st(s, "INSERT INTO agents (id, created, updated) VALUES (?, ?, ?) "
	          "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated");
	sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, now);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	json_object_foreach(f, key, v)
	{
		sqlite3_stmt *u;
		int known = 0;

		for (i = 0; i < sizeof text_cols / sizeof *text_cols; i++)
			known |= strcmp(key, text_cols[i]) == 0;
		for (i = 0; i < sizeof int_cols / sizeof *int_cols; i++)
			known |= 2 * (strcmp(key, int_cols[i]) == 0);
		if (strcmp(key, "detail") == 0)
			known = 4;
		if (known == 0) {
			store_err_set(e, ERR_INTERNAL, "agent has no field %s", key);
			return NULL;
		}
		/* key is one of the fixed names above, so building the SQL is safe. */
		snprintf(sql, sizeof sql, "UPDATE agents SET %s = ? WHERE id = ?", key);
		if (!s->txn)
			snapshot_end(s);
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
	store_dberr(s, e, "agent");
	return NULL;
}

json_t *
sqlite_store_agent_list(struct sqlite_store *s, const char *kind, const char *state,
                        struct store_err *e)
{
	sqlite3_stmt *q = st(s, "SELECT " AGENT_COLS " FROM agents WHERE (?1 IS NULL OR kind = ?1) "
	                        "AND (?2 IS NULL OR state = ?2) ORDER BY created, id");
	json_t *items = json_array();

	if (q == NULL) {
		json_decref(items);
		store_dberr(s, e, "list-agents");
		return NULL;
	}
	bind_text_or_null(q, 1, kind);
	bind_text_or_null(q, 2, state);
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(items, agent_from_row(q));
	sqlite3_reset(q);
	return json_pack("{s:o}", "items", items);
}

int
sqlite_store_agent_delete(struct sqlite_store *s, const char *id)
{
	sqlite3_stmt *q = st(s, "DELETE FROM agents WHERE id = ?");

	sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	return sqlite3_step(q) == SQLITE_DONE ? sqlite3_changes(s->db) : -1;
}

int
sqlite_store_agent_find_lost(struct sqlite_store *s, int64_t now, void (*cb)(const char *, void *),
                             void *arg)
{
	sqlite3_stmt *q = st(s, "SELECT id FROM agents WHERE kind = 'registered' AND lost = 0 "
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
	sqlite3_stmt *q = st(s, "SELECT min(heartbeat + lease_ms) FROM agents "
	                        "WHERE kind = 'registered' AND lost = 0");

	return row_int64(q, -1);
}

/* ---- events ---- */

long long
sqlite_store_event_append(struct sqlite_store *s, const char *topic, const char *data, int64_t ts,
                          struct store_err *e)
{
	sqlite3_stmt *q = st(s, "INSERT INTO events (ts, topic, data) VALUES (?, ?, ?)");

	if (q == NULL)
		goto dberr;
	sqlite3_bind_int64(q, 1, ts);
	sqlite3_bind_text(q, 2, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, data, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	sqlite3_reset(q);
	return sqlite3_last_insert_rowid(s->db);
dberr:
	store_dberr(s, e, "event");
	if (q != NULL)
		sqlite3_reset(q);
	return -1;
}

long long
sqlite_store_event_last(struct sqlite_store *s)
{
	return row_int64(st(s, "SELECT coalesce(max(seq), 0) FROM events"), 0);
}

int
sqlite_store_event_scan(struct sqlite_store *s, long long since, long long limit, json_t *topics,
                        int (*cb)(long long, int64_t, const char *, const char *, void *),
                        void *arg)
{
	sqlite3_stmt *q;
	long long n = 0;

	/* A fresh statement: the callback may append events (which reuses the cache). */
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT seq, ts, topic, data FROM events WHERE seq > ? ORDER BY seq",
	                       -1, &q, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(q, 1, since);
	while (n < limit && sqlite3_step(q) == SQLITE_ROW) {
		const char *topic = (const char *)sqlite3_column_text(q, 2);
		if (!store_topic_matches(topics, topic))
			continue;
		n++;
		if (cb(sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1), topic,
		       (const char *)sqlite3_column_text(q, 3), arg) != 0)
			break;
	}
	sqlite3_finalize(q);
	return (int)n;
}

/* ---- tenants ---- */

static json_t *
tenant_from_row(sqlite3_stmt *q)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "tenant_id", col_text_or_null(q, 0),
	                 "jail_root_path", col_text_or_null(q, 1), "collection_id",
	                 col_text_or_null(q, 2), "status", col_text_or_null(q, 3), "reason",
	                 col_text_or_null(q, 4), "created_ms",
	                 (json_int_t)sqlite3_column_int64(q, 5), "updated_ms",
	                 (json_int_t)sqlite3_column_int64(q, 6));
}

#define TENANT_COLS "tenant_id, jail_root_path, collection_id, status, reason, created, updated"

json_t *
sqlite_store_tenant_get(struct sqlite_store *s, const char *tenant_id, struct store_err *e)
{
	sqlite3_stmt *q = st(s, "SELECT " TENANT_COLS " FROM tenants WHERE tenant_id = ?");
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
	        st(s, "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, "
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
		store_dberr(s, e, "register-tenant");
		return NULL;
	}
	return sqlite_store_tenant_get(s, tenant_id, e);
}

json_t *
sqlite_store_tenant_list(struct sqlite_store *s, struct store_err *e)
{
	sqlite3_stmt *q = st(s, "SELECT " TENANT_COLS " FROM tenants ORDER BY tenant_id");
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
	sqlite3_stmt *q = st(s, "UPDATE tenants SET status = ?, reason = ?, updated = ? "
	                        "WHERE tenant_id = ?");

	sqlite3_bind_text(q, 1, status, -1, SQLITE_TRANSIENT);
	bind_text_or_null(q, 2, reason);
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_text(q, 4, tenant_id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		store_dberr(s, e, "tenant status");
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
	sqlite3_stmt *q = st(s, "DELETE FROM tenants WHERE tenant_id = ?");

	sqlite3_bind_text(q, 1, tenant_id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		store_dberr(s, e, "delete-tenant");
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
	sqlite3_stmt *q = st(s, "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO "
	                        "UPDATE SET value = excluded.value");

	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, value, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		store_dberr(s, e, "kv");
		return -1;
	}
	return 0;
}

char *
sqlite_store_kv_get(struct sqlite_store *s, const char *key)
{
	sqlite3_stmt *q = st(s, "SELECT value FROM kv WHERE key = ?");
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
	sqlite3_stmt *q = st(s, "INSERT OR REPLACE INTO skills (name, description, path, fields, "
	                        "body, indexed) VALUES (?, ?, ?, ?, ?, ?)");
	char *fields;
	int rc;

	if (q == NULL)
		return -1;
	fields = json_dumps(json_object_get(sk, "fields"), JSON_COMPACT | JSON_SORT_KEYS);
	bind_text_or_null(q, 1, json_string_value(json_object_get(sk, "name")));
	bind_text_or_null(q, 2, json_string_value(json_object_get(sk, "description")));
	bind_text_or_null(q, 3, json_string_value(json_object_get(sk, "path")));
	sqlite3_bind_text(q, 4, fields != NULL ? fields : "{}", -1, SQLITE_TRANSIENT);
	bind_text_or_null(q, 5, json_string_value(json_object_get(sk, "body")));
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

	if (store_run(s, "DELETE FROM skills") == -1) {
		store_dberr(s, e, "skills index");
		return -1;
	}
	json_array_foreach(skills, i, sk)
	{
		if (skill_insert(s, sk, now) == -1) {
			store_dberr(s, e, "skills index");
			return -1;
		}
	}
	return 0;
}

static json_t *
skill_from_row(sqlite3_stmt *q, int with_body)
{
	json_t *sk = json_object(), *fields;

	json_object_set_new(sk, "name", col_text_or_null(q, 0));
	json_object_set_new(sk, "description", col_text_or_null(q, 1));
	json_object_set_new(sk, "path", col_text_or_null(q, 2));
	fields = col_json_or_null(q, 3);
	json_object_set_new(sk, "fields", json_is_object(fields) ? fields : json_object());
	if (!json_is_object(fields))
		json_decref(fields);
	if (with_body)
		json_object_set_new(sk, "body", col_text_or_null(q, 4));
	return sk;
}

json_t *
sqlite_store_skills_list(struct sqlite_store *s, const char *query, struct store_err *e)
{
	sqlite3_stmt *q = st(s, "SELECT name, description, path, fields, body FROM skills WHERE ?1 "
	                        "IS NULL OR name LIKE ?1 ESCAPE '\\' OR description LIKE ?1 ESCAPE "
	                        "'\\' OR body LIKE ?1 ESCAPE '\\' ORDER BY name");
	json_t *items;

	if (q == NULL) {
		store_dberr(s, e, "skills-list");
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
	        st(s, "SELECT name, description, path, fields, body FROM skills WHERE name = ?");
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
	sqlite3_stmt *q = st(s, "INSERT INTO prompt_log (session_id, ts, r1, r2, r3, bytes) "
	                        "VALUES (?, ?, ?, ?, ?, ?)");
	int rc;

	if (q == NULL) {
		store_dberr(s, e, "prompt_log");
		return -1;
	}
	sqlite3_bind_text(q, 1, session_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, ts);
	bind_text_or_null(q, 3, r1);
	bind_text_or_null(q, 4, r2);
	bind_text_or_null(q, 5, r3);
	sqlite3_bind_int64(q, 6, bytes);
	rc = sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
	if (rc == -1)
		store_dberr(s, e, "prompt_log");
	sqlite3_reset(q);
	return rc;
}
