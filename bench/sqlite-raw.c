/*
 * sqlite-raw.c -- the storage reference of `make bench`: raw SQLite doing
 * the daemon's own statements, one row per transaction, on a copy of an
 * empty database the daemon created (so schema and indexes are the same).
 * WAL and synchronous=NORMAL, as the daemon opens it.  No socket, no JSON,
 * no events: the daemon is measured as a fraction of this.
 *
 *   sqlite-raw DB create SECONDS   INSERT a task per transaction for SECONDS
 *   sqlite-raw DB create+event SECONDS
 *                                  the same, plus the events row the daemon
 *                                  appends with every change (its storage
 *                                  work per task-create, without socket or JSON)
 *   sqlite-raw DB claim COUNT      insert COUNT tasks (one transaction), then
 *                                  claim the head of the ready queue, one
 *                                  claim per transaction, until it is empty
 *
 * Prints {"mode", "requests", "seconds", "rps"} as one line of JSON.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The daemon's (store-sqlite.h): unfinished_deps and the counts are kept by triggers. */
#define READY_WHERE "t.status = 'open' AND t.unfinished_deps = 0"

static sqlite3 *db;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
must(int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "sqlite-raw: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

static sqlite3_stmt *
prep(const char *sql)
{
	sqlite3_stmt *q;

	must(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL), sql);
	return q;
}

static void
step_reset(sqlite3_stmt *q, const char *what)
{
	must(sqlite3_step(q), what);
	sqlite3_reset(q);
}

static void
insert_task(sqlite3_stmt *ins, long long k)
{
	char title[32];
	long long t = now_ms();

	snprintf(title, sizeof title, "task %lld", k);
	sqlite3_bind_text(ins, 1, title, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(ins, 2, "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 3, 0);
	sqlite3_bind_int64(ins, 4, t);
	sqlite3_bind_int64(ins, 5, t);
	step_reset(ins, "insert");
}

static void
insert_event(sqlite3_stmt *ev, long long k)
{
	char data[160];

	snprintf(data, sizeof data,
	         "{\"id\":%lld,\"title\":\"task %lld\",\"body\":\"\",\"status\":\"open\","
	         "\"priority\":0,\"owner\":null,\"depends_on\":[]}",
	         k, k);
	sqlite3_bind_int64(ev, 1, now_ms());
	sqlite3_bind_text(ev, 2, "task.created", -1, SQLITE_STATIC);
	sqlite3_bind_text(ev, 3, data, -1, SQLITE_TRANSIENT);
	step_reset(ev, "event");
}

static long long
bench_create(double seconds, int with_event)
{
	sqlite3_stmt *begin = prep("BEGIN IMMEDIATE"), *commit = prep("COMMIT");
	sqlite3_stmt *ins = prep("INSERT INTO tasks (title, body, priority, created, updated) "
	                         "VALUES (?, ?, ?, ?, ?)");
	sqlite3_stmt *ev = prep("INSERT INTO events (ts, topic, data) VALUES (?, ?, ?)");
	double end = now_s() + seconds;
	long long n = 0;

	while (now_s() < end) {
		step_reset(begin, "begin");
		insert_task(ins, n);
		if (with_event)
			insert_event(ev, n);
		n++;
		step_reset(commit, "commit");
	}
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_finalize(ins);
	sqlite3_finalize(ev);
	return n;
}

static long long
bench_claim(long long count, double *secs)
{
	sqlite3_stmt *begin = prep("BEGIN IMMEDIATE"), *commit = prep("COMMIT");
	sqlite3_stmt *ins = prep("INSERT INTO tasks (title, body, priority, created, updated) "
	                         "VALUES (?, ?, ?, ?, ?)");
	sqlite3_stmt *next = prep("SELECT t.id FROM tasks t WHERE " READY_WHERE
	                          " ORDER BY t.priority DESC, t.id LIMIT 1");
	sqlite3_stmt *claim = prep("UPDATE tasks SET status = 'claimed', owner = ?, lease_ms = ?, "
	                           "lease_expires = ?, claimed = ?, updated = ? WHERE id = ? AND "
	                           "status = 'open'");
	long long i, n = 0, id, t;
	double t0;

	step_reset(begin, "begin");
	for (i = 0; i < count; i++)
		insert_task(ins, i);
	step_reset(commit, "commit");
	t0 = now_s();
	for (;;) {
		step_reset(begin, "begin");
		if (sqlite3_step(next) != SQLITE_ROW) {
			sqlite3_reset(next);
			step_reset(commit, "commit");
			break;
		}
		id = sqlite3_column_int64(next, 0);
		sqlite3_reset(next);
		t = now_ms();
		sqlite3_bind_text(claim, 1, "raw", -1, SQLITE_STATIC);
		sqlite3_bind_int64(claim, 2, 300000);
		sqlite3_bind_int64(claim, 3, t + 300000);
		sqlite3_bind_int64(claim, 4, t);
		sqlite3_bind_int64(claim, 5, t);
		sqlite3_bind_int64(claim, 6, id);
		step_reset(claim, "claim");
		step_reset(commit, "commit");
		n++;
	}
	*secs = now_s() - t0;
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_finalize(ins);
	sqlite3_finalize(next);
	sqlite3_finalize(claim);
	return n;
}

int
main(int argc, char **argv)
{
	double secs;
	long long n;

	if (argc != 4 || (strcmp(argv[2], "create") != 0 && strcmp(argv[2], "create+event") != 0 &&
	                  strcmp(argv[2], "claim") != 0)) {
		fprintf(stderr,
		        "usage: sqlite-raw DB create|create+event SECONDS | DB claim COUNT\n");
		return 2;
	}
	/* The library as the daemon configures it (store-sqlite.c): one thread, no statistics. */
	sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	must(sqlite3_open(argv[1], &db), "open");
	must(sqlite3_exec(db,
	                  "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
	                  "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY",
	                  NULL, NULL, NULL),
	     "configure");
	if (strncmp(argv[2], "create", 6) == 0) {
		double t0 = now_s();
		n = bench_create(atof(argv[3]), strcmp(argv[2], "create+event") == 0);
		secs = now_s() - t0;
	} else
		n = bench_claim(atoll(argv[3]), &secs);
	printf("{\"mode\": \"%s\", \"requests\": %lld, \"seconds\": %.3f, \"rps\": %.0f}\n",
	       argv[2], n, secs, (double)n / secs);
	sqlite3_close(db);
	return 0;
}
