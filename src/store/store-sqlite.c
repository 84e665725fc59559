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
 * dispatches store.h calls to them.  This file is the core (connection,
 * migrations, statements, the read snapshot, transactions); the task
 * board, the registry and the events log are in store-sqlite-tasks.c,
 * store-sqlite-registry.c and store-sqlite-events.c (see store-sqlite.h).
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
#include "store/store-sqlite.h"
#include "store/store-rules.h"
#include "store/store.h"

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
        /*
         * 3: task-bound runs.  Tasks gain their claim epoch, their failed runs
         * (attempts, max_attempts, last_error) and the status 'failed'; agents
         * the task and epoch a spawned run is bound to and its final message.
         * A CHECK cannot be altered: the tasks table is rebuilt the documented
         * way (lang_altertable.html, "other kinds of table schema changes"),
         * with foreign keys off (store_migrate) so that dropping the old table
         * does not cascade into task_deps; the AUTOINCREMENT high-water mark
         * is carried over.
         */
        "CREATE TABLE tasks_new ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  title TEXT NOT NULL,"
        "  body TEXT NOT NULL DEFAULT '',"
        "  status TEXT NOT NULL DEFAULT 'open'"
        "    CHECK (status IN ('open','claimed','done','cancelled','failed')),"
        "  priority INTEGER NOT NULL DEFAULT 0,"
        "  owner TEXT,"
        "  lease_ms INTEGER,"
        "  lease_expires INTEGER,"
        "  result TEXT,"
        "  progress TEXT,"
        "  created INTEGER NOT NULL,"
        "  updated INTEGER NOT NULL,"
        "  claimed INTEGER,"
        "  completed INTEGER,"
        "  epoch INTEGER NOT NULL DEFAULT 0,"
        "  attempts INTEGER NOT NULL DEFAULT 0,"
        "  max_attempts INTEGER,"
        "  last_error TEXT);"
        "INSERT INTO tasks_new (id, title, body, status, priority, owner, lease_ms,"
        "  lease_expires, result, progress, created, updated, claimed, completed)"
        "  SELECT id, title, body, status, priority, owner, lease_ms, lease_expires, result,"
        "  progress, created, updated, claimed, completed FROM tasks;"
        "DELETE FROM sqlite_sequence WHERE name = 'tasks_new';"
        "INSERT INTO sqlite_sequence (name, seq)"
        "  SELECT 'tasks_new', seq FROM sqlite_sequence WHERE name = 'tasks';"
        "DROP TABLE tasks;"
        "ALTER TABLE tasks_new RENAME TO tasks;"
        "CREATE INDEX tasks_queue ON tasks (status, priority DESC, id);"
        "CREATE INDEX tasks_owner ON tasks (owner) WHERE owner IS NOT NULL;"
        "CREATE INDEX tasks_lease ON tasks (lease_expires) WHERE status = 'claimed';"
        "ALTER TABLE agents ADD COLUMN task INTEGER;"
        "ALTER TABLE agents ADD COLUMN epoch INTEGER;"
        "ALTER TABLE agents ADD COLUMN last_message TEXT;",
        /*
         * 4: task tags (the dispatcher routes a task by them): a JSON array of
         * strings, checked by store_rule_tags, written in its compact form.
         */
        "ALTER TABLE tasks ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';",
        /*
         * 5: counts kept with every change, so that status and the ready queue
         * cost the same whatever the size of the board.  A task counts its
         * dependencies that are not done (unfinished_deps): ready is open
         * with none, and the ready queue walks the index tasks_ready, which
         * replaces tasks_queue (status, priority DESC, id) for every lookup by
         * status too.
         * counts holds the number of tasks in each status, of ready tasks, of
         * agents and of tenants.  Triggers keep both: a task inserted,
         * deleted or changing status or unfinished_deps moves its counts; a
         * task becoming done or ceasing to be moves its dependents'
         * unfinished_deps (a separate trigger: one cannot fire itself, and
         * the dependents' change must reach tasks_count_upd); a dependency
         * added or removed moves its task's.  A task deleted drops its
         * dependency rows first, while it is there to be looked at.  Seeded
         * from the rows already there.
         */
        "ALTER TABLE tasks ADD COLUMN unfinished_deps INTEGER NOT NULL DEFAULT 0;"
        "UPDATE tasks SET unfinished_deps = (SELECT count(*) FROM task_deps d JOIN tasks u"
        "  ON u.id = d.dep WHERE d.task = tasks.id AND u.status != 'done');"
        "DROP INDEX tasks_queue;"
        "CREATE INDEX tasks_ready ON tasks (status, unfinished_deps, priority DESC, id);"
        "CREATE TABLE counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO counts (name, n) VALUES ('open', 0), ('claimed', 0), ('done', 0),"
        "  ('cancelled', 0), ('failed', 0), ('ready', 0), ('agents', 0), ('tenants', 0);"
        "UPDATE counts SET n = (SELECT count(*) FROM tasks WHERE status = counts.name)"
        "  WHERE name IN ('open', 'claimed', 'done', 'cancelled', 'failed');"
        "UPDATE counts SET n = (SELECT count(*) FROM tasks WHERE status = 'open' AND"
        "  unfinished_deps = 0) WHERE name = 'ready';"
        "UPDATE counts SET n = (SELECT count(*) FROM agents) WHERE name = 'agents';"
        "UPDATE counts SET n = (SELECT count(*) FROM tenants) WHERE name = 'tenants';"
        "CREATE TRIGGER tasks_count_ins AFTER INSERT ON tasks BEGIN"
        "  UPDATE counts SET n = n + 1 WHERE name = new.status;"
        "  UPDATE counts SET n = n + 1 WHERE name = 'ready' AND new.status = 'open' AND"
        "    new.unfinished_deps = 0;"
        " END;"
        "CREATE TRIGGER tasks_count_del AFTER DELETE ON tasks BEGIN"
        "  UPDATE counts SET n = n - 1 WHERE name = old.status;"
        "  UPDATE counts SET n = n - 1 WHERE name = 'ready' AND old.status = 'open' AND"
        "    old.unfinished_deps = 0;"
        " END;"
        "CREATE TRIGGER tasks_count_upd AFTER UPDATE OF status, unfinished_deps ON tasks"
        "  WHEN old.status != new.status OR old.unfinished_deps != new.unfinished_deps BEGIN"
        "  UPDATE counts SET n = n - 1 WHERE name = old.status AND old.status != new.status;"
        "  UPDATE counts SET n = n + 1 WHERE name = new.status AND old.status != new.status;"
        "  UPDATE counts SET n = n + (new.status = 'open' AND new.unfinished_deps = 0)"
        "    - (old.status = 'open' AND old.unfinished_deps = 0) WHERE name = 'ready';"
        " END;"
        "CREATE TRIGGER tasks_dep_done AFTER UPDATE OF status ON tasks"
        "  WHEN (old.status = 'done') != (new.status = 'done') BEGIN"
        "  UPDATE tasks SET unfinished_deps = unfinished_deps +"
        "    CASE WHEN new.status = 'done' THEN -1 ELSE 1 END"
        "    WHERE id IN (SELECT task FROM task_deps WHERE dep = new.id);"
        " END;"
        "CREATE TRIGGER tasks_del_deps BEFORE DELETE ON tasks BEGIN"
        "  DELETE FROM task_deps WHERE task = old.id;"
        "  DELETE FROM task_deps WHERE dep = old.id;"
        " END;"
        "CREATE TRIGGER task_deps_ins AFTER INSERT ON task_deps BEGIN"
        "  UPDATE tasks SET unfinished_deps = unfinished_deps + 1 WHERE id = new.task AND"
        "    EXISTS (SELECT 1 FROM tasks WHERE id = new.dep AND status != 'done');"
        " END;"
        "CREATE TRIGGER task_deps_del AFTER DELETE ON task_deps BEGIN"
        "  UPDATE tasks SET unfinished_deps = unfinished_deps - 1 WHERE id = old.task AND"
        "    EXISTS (SELECT 1 FROM tasks WHERE id = old.dep AND status != 'done');"
        " END;"
        "CREATE TRIGGER agents_count_ins AFTER INSERT ON agents BEGIN"
        "  UPDATE counts SET n = n + 1 WHERE name = 'agents';"
        " END;"
        "CREATE TRIGGER agents_count_del AFTER DELETE ON agents BEGIN"
        "  UPDATE counts SET n = n - 1 WHERE name = 'agents';"
        " END;"
        "CREATE TRIGGER tenants_count_ins AFTER INSERT ON tenants BEGIN"
        "  UPDATE counts SET n = n + 1 WHERE name = 'tenants';"
        " END;"
        "CREATE TRIGGER tenants_count_del AFTER DELETE ON tenants BEGIN"
        "  UPDATE counts SET n = n - 1 WHERE name = 'tenants';"
        " END;",
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

void
sq_dberr(struct sqlite_store *s, struct store_err *e, const char *what)
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
int
sq_one_row(struct sqlite_store *s, sqlite3_stmt *q, const char *what, struct store_err *e,
           const char *fmt, ...)
{
	va_list ap;

	if (q == NULL) {
		sq_dberr(s, e, what);
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
void
sq_snapshot_end(struct sqlite_store *s)
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
sqlite3_stmt *
sq_st(struct sqlite_store *s, const char *sql)
{
	sqlite3_stmt *q = st_cached(s, sql);

	if (q == NULL || s->txn)
		return q;
	if (!sqlite3_stmt_readonly(q))
		sq_snapshot_end(s);
	else if (!s->snapshot)
		snapshot_begin(s);
	return q;
}

void
sqlite_store_idle(struct sqlite_store *s)
{
	if (!s->txn)
		sq_snapshot_end(s);
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

int
sq_memo_get(struct sqlite_store *s, long long id, struct buf *out)
{
	struct memo *m = memo_slot(s, id);

	if (s->txn || !s->snapshot || m->gen != s->memo_gen || m->id != id || m->json == NULL)
		return -1;
	buf_add(out, m->json, m->len);
	return 0;
}

void
sq_memo_put(struct sqlite_store *s, long long id, const char *json, size_t len)
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

void
sq_bind_text_or_null(sqlite3_stmt *q, int i, const char *v)
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
long long
sq_row_int64(sqlite3_stmt *q, long long dflt)
{
	long long v = dflt;

	if (q == NULL)
		return dflt;
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return v;
}

int
sq_row_exists(sqlite3_stmt *q)
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
		sq_snapshot_end(s);
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/*
 * Run a cached statement without results (transaction control on the
 * request path: sqlite3_exec would parse BEGIN, SAVEPOINT, RELEASE and
 * COMMIT again for every request).
 */
int
sq_run(struct sqlite_store *s, const char *sql)
{
	sqlite3_stmt *q;

	if (!s->txn)
		sq_snapshot_end(s);
	q = st_cached(s, sql);
	int rc;

	if (q == NULL)
		return -1;
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* PRAGMA foreign_key_check finds no row: 0; else -1 with e. */
static int
fk_check(struct sqlite_store *s, struct store_err *e)
{
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &q, NULL) != SQLITE_OK) {
		sq_dberr(s, e, "migration");
		return -1;
	}
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		store_err_set(e, ERR_INTERNAL, "migration: foreign key broken in table %s",
		              (const char *)sqlite3_column_text(q, 0));
	else if (rc != SQLITE_DONE)
		sq_dberr(s, e, "migration");
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Apply the migrations the database lacks, each in its own transaction.
 * Foreign keys are off meanwhile (the pragma is a no-op inside a
 * transaction, so it is set around them): a migration that rebuilds a
 * table drops the old one, which must not cascade; each checks the keys
 * (PRAGMA foreign_key_check) before it commits.
 */
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
	if (have == n)
		return 0;
	if (store_exec(s, "PRAGMA foreign_keys = OFF") == -1)
		goto fail;
	for (; have < n; have++) {
		if (store_exec(s, "BEGIN IMMEDIATE") == -1)
			goto fail;
		if (store_exec(s, migrations[have]) == -1) {
			sq_dberr(s, e, "migration");
			goto undo;
		}
		if (fk_check(s, e) == -1)
			goto undo;
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", have + 1);
		if (store_exec(s, pragma) == -1 || store_exec(s, "COMMIT") == -1)
			goto fail;
	}
	if (store_exec(s, "PRAGMA foreign_keys = ON") == -1)
		goto fail;
	return 0;
fail:
	sq_dberr(s, e, "migration");
undo:
	store_exec(s, "ROLLBACK");
	store_exec(s, "PRAGMA foreign_keys = ON");
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
	/* A new database frees pages in steps (retention); an old one keeps its mode. */
	if (store_exec(s, "PRAGMA auto_vacuum = INCREMENTAL") == -1 ||
	    store_exec(s, "PRAGMA journal_mode = WAL") == -1 ||
	    store_exec(s, "PRAGMA synchronous = NORMAL") == -1 ||
	    store_exec(s, "PRAGMA foreign_keys = ON") == -1 ||
	    store_exec(s, "PRAGMA temp_store = MEMORY") == -1) {
		sq_dberr(s, e, "configure");
		goto fail;
	}
	if (store_migrate(s, e) == -1)
		goto fail;
	if (store_exec(s, aux_tables) == -1) {
		sq_dberr(s, e, "skills and prompt_log tables");
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
		sq_snapshot_end(s); /* before the statements go: it runs a cached COMMIT */
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
	if (sq_run(s, "BEGIN IMMEDIATE") == -1) {
		sq_dberr(s, e, "begin");
		return -1;
	}
	s->txn = 1;
	return 0;
}

int
sqlite_store_commit(struct sqlite_store *s, struct store_err *e)
{
	if (sq_run(s, "COMMIT") == -1) {
		sq_dberr(s, e, "commit");
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
	return sq_run(s, "SAVEPOINT cmd");
}

void
sqlite_store_savepoint_release(struct sqlite_store *s)
{
	sq_run(s, "RELEASE cmd");
}

void
sqlite_store_savepoint_rollback(struct sqlite_store *s)
{
	sq_run(s, "ROLLBACK TO cmd");
	sq_run(s, "RELEASE cmd");
}

int
sqlite_store_integrity_check(struct sqlite_store *s, struct store_err *e)
{
	sqlite3_stmt *q;
	int ok = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK) {
		sq_dberr(s, e, "integrity_check");
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
		sq_dberr(s, e, "synchronous");
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
	return sq_row_int64(sq_st(s, sql), -1);
}

/*
 * The owners of claims without a lease (task-bound runs'), with how many each holds: the
 * daemon counts those whose owner is no live agent as stale claims (cmd-status.c).  It
 * walks the partial index tasks_lease over the claims without a lease only: O(those
 * claims), which the dispatcher's caps bound, not O(the board).
 */
static json_t *
sqlite_unleased_owners(struct sqlite_store *s)
{
	sqlite3_stmt *q = sq_st(s, "SELECT owner, count(*) FROM tasks INDEXED BY tasks_lease WHERE "
	                           "status = 'claimed' AND "
	                           "lease_expires IS NULL AND owner IS NOT NULL GROUP BY owner");
	json_t *o = json_object();

	while (q != NULL && sqlite3_step(q) == SQLITE_ROW)
		json_object_set_new(o, (const char *)sqlite3_column_text(q, 0),
		                    json_integer(sqlite3_column_int64(q, 1)));
	if (q != NULL)
		sqlite3_reset(q);
	return o;
}

/* Two subqueries: min() and max() each seek an end of the rowid; together in one they scan. */
#define EVENTS_COUNT_SQL                                                                           \
	"SELECT coalesce((SELECT max(seq) FROM events) - (SELECT min(seq) FROM events) + 1, 0)"

/*
 * The counts, from the table the triggers of migration 5 keep (one row per status,
 * ready, agents and tenants) and the events' seq range: O(1) in the size of the board.
 */
json_t *
sqlite_store_counts(struct sqlite_store *s)
{
	static const char *const task_keys[] = {"open",      "claimed", "done",
	                                        "cancelled", "failed",  "ready"};
	json_t *tasks = json_object(), *other = json_object(), *c;
	sqlite3_stmt *q;
	size_t i;

	for (i = 0; i < sizeof task_keys / sizeof *task_keys; i++)
		json_object_set_new(tasks, task_keys[i], json_integer(0));
	json_object_set_new(other, "agents", json_integer(0));
	json_object_set_new(other, "tenants", json_integer(0));
	q = sq_st(s, "SELECT name, n FROM counts");
	while (q != NULL && sqlite3_step(q) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		json_t *into = json_object_get(tasks, name) != NULL ? tasks : other;
		json_object_set_new(into, name, json_integer(sqlite3_column_int64(q, 1)));
	}
	if (q != NULL)
		sqlite3_reset(q);
	json_object_set_new(tasks, "unleased_owners", sqlite_unleased_owners(s));
	c = json_pack("{s:o, s:O, s:O, s:I}", "tasks", tasks, "agents",
	              json_object_get(other, "agents"), "tenants",
	              json_object_get(other, "tenants"), "events",
	              (json_int_t)count_of(s, EVENTS_COUNT_SQL));
	json_decref(other);
	return c;
}

json_t *
sq_col_int_or_null(sqlite3_stmt *q, int i)
{
	return sqlite3_column_type(q, i) == SQLITE_NULL ? json_null()
	                                                : json_integer(sqlite3_column_int64(q, i));
}

json_t *
sq_col_text_or_null(sqlite3_stmt *q, int i)
{
	return sqlite3_column_type(q, i) == SQLITE_NULL
	               ? json_null()
	               : json_stringn((const char *)sqlite3_column_text(q, i),
	                              (size_t)sqlite3_column_bytes(q, i));
}

json_t *
sq_col_json_or_null(sqlite3_stmt *q, int i)
{
	json_t *v;

	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		return json_null();
	v = json_loadb((const char *)sqlite3_column_text(q, i), (size_t)sqlite3_column_bytes(q, i),
	               JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_null();
}
