/*
 * store-sqlite.h -- what the files of the SQLite backend share (private to
 * src/store; the daemon sees only store.h).
 *
 * The backend is four files cut along its sections: store-sqlite.c (the
 * connection, migrations, the statement cache, the read snapshot and
 * transactions), store-sqlite-tasks.c (the task board),
 * store-sqlite-registry.c (agents, tenants, kv, the skills index and the
 * prompt log) and store-sqlite-events.c (the events log: append and scan).
 * The connection's state is struct sqlite_store below; the helpers
 * declared here are the core's, used by the other three.  Each sq_* helper
 * keeps the contract it had as a static function: statements come from
 * sq_st, are bound by the caller and reset before the function returns.
 */
#ifndef COLIBRI_STORE_SQLITE_H
#define COLIBRI_STORE_SQLITE_H

#include <jansson.h>
#include <sqlite3.h>

#include "common/buf.h"
#include "store/store-backend.h"
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

/*
 * A task is ready: open, and every task it depends on is done (t is the task;
 * unfinished_deps is kept by triggers, migration 5): the ready queue walks the
 * index tasks_ready (status, unfinished_deps, priority DESC, id).
 */
#define READY_WHERE "t.status = 'open' AND t.unfinished_deps = 0"

/* The cached statement for sql (a string literal), inside the read snapshot if it only reads. */
sqlite3_stmt *sq_st(struct sqlite_store *s, const char *sql);
/* Fill e from the connection's last error: unavailable (disk full, I/O) or internal. */
void sq_dberr(struct sqlite_store *s, struct store_err *e, const char *what);
/*
 * Step q (bound by the caller) to its one row: 0 with the row ready to
 * read (the caller resets q); -1 with the database error (q NULL: it did
 * not prepare) or not_found with the message fmt when there is no row.
 */
int sq_one_row(struct sqlite_store *s, sqlite3_stmt *q, const char *what, struct store_err *e,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Run a cached statement that returns no rows (transaction control); 0 or -1. */
int sq_run(struct sqlite_store *s, const char *sql);
/* End the read snapshot (before anything writes outside a transaction). */
void sq_snapshot_end(struct sqlite_store *s);
/* The snapshot's memo of task JSON: append task id's JSON to out (0) or -1; remember it. */
int sq_memo_get(struct sqlite_store *s, long long id, struct buf *out);
void sq_memo_put(struct sqlite_store *s, long long id, const char *json, size_t len);
void sq_bind_text_or_null(sqlite3_stmt *q, int i, const char *v);
/* Single-row reads: step once, take column 0 (or whether there is a row), reset. */
long long sq_row_int64(sqlite3_stmt *q, long long dflt);
int sq_row_exists(sqlite3_stmt *q);
/* Column i as JSON: an integer, a string or parsed JSON; null for SQL NULL. */
json_t *sq_col_int_or_null(sqlite3_stmt *q, int i);
json_t *sq_col_text_or_null(sqlite3_stmt *q, int i);
json_t *sq_col_json_or_null(sqlite3_stmt *q, int i);

#endif
