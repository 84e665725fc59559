/*
 * sqlite-scale.c -- the raw SQLite reference of bench/scale.py (`make
 * bench-scale`): for each command, the statements the daemon's store runs
 * for it (src/store/store-sqlite-tasks.c, store-sqlite-events.c,
 * store-sqlite.c), on the same database file the daemon built, timed one
 * command at a time.  No socket, no JSON, no request parsing: the daemon's
 * latency is read as a multiple of this.
 *
 * A C program and not python's sqlite3 module: a point read costs SQLite
 * a few microseconds, and the module's per-statement overhead (binding,
 * building a tuple per row, the GIL) is of the same order; the reference
 * would be mostly Python.  The library is configured as the daemon
 * configures it (one thread, no memory statistics; WAL, synchronous=NORMAL).
 *
 *   sqlite-scale DB MODE COUNT START STEP RANGE [PAGE]
 *
 * runs MODE COUNT times; the i-th run's id (or cursor) is
 * START + (i * STEP) % RANGE, as bench/scaleclient.c computes it:
 *
 *   build     INSERT a task and its task.created event, one transaction per
 *             task (the build rate's reference: one connection)
 *   bulk      the same, all COUNT tasks in one transaction (for information:
 *             the batching ceiling; only the rate is printed)
 *   show      task-show of id: TASK_JSON_SQL, every column read
 *   status    status: the counts (by status, ready, unleased owners, agents,
 *             tenants, events), last seq, schema version and sync mode
 *   list      task-list after id, its default page (1000 and one more)
 *   ready     task-ready, its default page (the queue's head)
 *   events    events-read after seq, its default page (1000 and one more)
 *   create    task-create: BEGIN; INSERT task; INSERT event; COMMIT
 *   update    task-update progress of id: read, UPDATE, read, event
 *   claim     task-claim of the queue's head, COUNT times; then task-complete
 *             of the first half of the tasks it claimed and task-release of
 *             the second half (each: read, UPDATE, read, event): three lines
 *
 * PAGE (default 1000, the commands' default) is the page of list, ready and
 * events.  Prints one line of JSON per measured command:
 * {"mode", "requests", "seconds", "rps", "p50_us", "p99_us", "max_us"}.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The store's own SQL (src/store/store-sqlite.h, store-sqlite-tasks.c). */
#define READY_WHERE                                                                                \
	"t.status = 'open' AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks u ON u.id = "      \
	"d.dep WHERE d.task = t.id AND u.status != 'done')"
#define TASK_COLS                                                                                  \
	"t.id, t.title, t.body, t.status, t.priority, t.owner, t.lease_expires, t.result, "        \
	"t.progress, t.created, t.updated, t.claimed, t.completed, t.epoch, t.attempts, "          \
	"t.max_attempts, t.last_error, t.tags"
#define TASK_JSON_SQL                                                                              \
	"SELECT " TASK_COLS ", (SELECT group_concat(dep) FROM task_deps d WHERE d.task = t.id) "   \
	"FROM tasks t WHERE t.id = ?"
#define TASK_PAGE_COLS                                                                             \
	"SELECT " TASK_COLS ", (SELECT group_concat(dep) FROM task_deps d WHERE d.task = t.id) "   \
	"FROM tasks t WHERE "
#define TAG_WHERE "(?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?5))"

static sqlite3 *db;
static long long start, step, range;
static long long page = 1000; /* the default page of task-list, task-ready and events-read */

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
		fprintf(stderr, "sqlite-scale: %s: %s\n", what, sqlite3_errmsg(db));
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
run_sql(sqlite3_stmt *q, const char *what)
{
	must(sqlite3_step(q), what);
	sqlite3_reset(q);
}

/* Step q to its end, reading every column of every row as the daemon's writers do. */
static long long
drain(sqlite3_stmt *q, const char *what)
{
	long long rows = 0;
	int rc, i, n = sqlite3_column_count(q);

	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		for (i = 0; i < n; i++)
			if (sqlite3_column_type(q, i) == SQLITE_TEXT)
				(void)sqlite3_column_text(q, i);
			else
				(void)sqlite3_column_int64(q, i);
		rows++;
	}
	must(rc, what);
	sqlite3_reset(q);
	return rows;
}

static long long
id_of(long long i)
{
	return start + (i * step) % range;
}

/* ---- the statements of each command ---- */

static struct {
	sqlite3_stmt *begin, *commit, *ins, *ev, *show, *get, *deps, *last, *floor, *scan, *list,
	        *ready, *next, *claim, *complete, *release, *progress;
	sqlite3_stmt *counts[6];
} st;

static void
prepare_all(void)
{
	st.begin = prep("BEGIN IMMEDIATE");
	st.commit = prep("COMMIT");
	st.ins = prep("INSERT INTO tasks (title, body, priority, created, updated, tags) "
	              "VALUES (?, ?, ?, ?, ?, ?)");
	st.ev = prep("INSERT INTO events (ts, topic, data) VALUES (?, ?, ?)");
	st.show = prep(TASK_JSON_SQL);
	st.get = prep("SELECT " TASK_COLS " FROM tasks t WHERE t.id = ?");
	st.deps = prep("SELECT dep FROM task_deps WHERE task = ? ORDER BY dep");
	st.last = prep("SELECT coalesce(max(seq), 0) FROM events");
	st.floor = prep(
	        "SELECT CAST(value AS INTEGER) FROM kv WHERE key = 'events.compacted_through'");
	st.scan = prep("SELECT seq, ts, topic, data FROM events WHERE seq > ? ORDER BY seq");
	st.list = prep(TASK_PAGE_COLS "(?1 IS NULL OR t.status = ?1) AND (?2 IS NULL OR "
	                              "t.owner = ?2) AND t.id > ?3 AND " TAG_WHERE
	                              " ORDER BY t.id LIMIT ?4");
	st.ready = prep(TASK_PAGE_COLS READY_WHERE " AND " TAG_WHERE
	                                           " ORDER BY t.priority DESC, t.id LIMIT ?4");
	st.next = prep("SELECT t.id FROM tasks t WHERE " READY_WHERE
	               " ORDER BY t.priority DESC, t.id LIMIT 1");
	st.claim =
	        prep("UPDATE tasks SET status = 'claimed', owner = ?1, lease_ms = NULLIF(?2, 0), "
	             "lease_expires = CASE WHEN ?2 > 0 THEN ?3 END, claimed = ?4, updated = ?5, "
	             "epoch = epoch + 1, "
	             "max_attempts = CASE WHEN ?7 > 0 THEN ?7 ELSE max_attempts END "
	             "WHERE id = ?6 AND status = 'open'");
	st.complete = prep("UPDATE tasks SET status = 'done', result = ?, lease_expires = NULL, "
	                   "completed = ?, updated = ? WHERE id = ?");
	st.release = prep("UPDATE tasks SET status = 'open', owner = NULL, lease_expires = NULL, "
	                  "updated = ? WHERE id = ?");
	st.progress = prep("UPDATE tasks SET progress = ?, updated = ? WHERE id = ?");
	st.counts[0] = prep("SELECT status, count(*) FROM tasks GROUP BY status");
	st.counts[1] = prep("SELECT count(*) FROM tasks t WHERE " READY_WHERE);
	st.counts[2] = prep("SELECT owner, count(*) FROM tasks WHERE status = 'claimed' AND "
	                    "lease_expires IS NULL AND owner IS NOT NULL GROUP BY owner");
	st.counts[3] = prep("SELECT count(*) FROM agents");
	st.counts[4] = prep("SELECT count(*) FROM tenants");
	st.counts[5] = prep("SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM events");
}

/* The events row of a change: its task's JSON, about as long as the daemon's. */
static void
event(const char *topic, long long id)
{
	char data[400];

	snprintf(data, sizeof data,
	         "{\"id\":%lld,\"title\":\"scale task %lld\",\"body\":\"\",\"status\":\"open\","
	         "\"priority\":0,\"owner\":null,\"lease_expires_ms\":null,\"result\":null,"
	         "\"progress\":null,\"created_ms\":%lld,\"updated_ms\":%lld,\"claimed_ms\":null,"
	         "\"completed_ms\":null,\"epoch\":0,\"attempts\":0,\"max_attempts\":null,"
	         "\"last_error\":null,\"depends_on\":[],\"tags\":[]}",
	         id, id, now_ms(), now_ms());
	sqlite3_bind_int64(st.ev, 1, now_ms());
	sqlite3_bind_text(st.ev, 2, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st.ev, 3, data, -1, SQLITE_TRANSIENT);
	run_sql(st.ev, "event");
}

/* store_task_get: the row, then its dependencies. */
static void
task_get(long long id)
{
	sqlite3_bind_int64(st.get, 1, id);
	if (drain(st.get, "get") != 1) {
		fprintf(stderr, "sqlite-scale: no task %lld\n", id);
		exit(1);
	}
	sqlite3_bind_int64(st.deps, 1, id);
	drain(st.deps, "deps");
}

/* build's statements without a transaction of their own (bulk runs inside one) */
static void
do_insert(long long i)
{
	char title[48];
	long long t = now_ms();

	snprintf(title, sizeof title, "scale task %lld", i);
	sqlite3_bind_text(st.ins, 1, title, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st.ins, 2, "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st.ins, 3, 0);
	sqlite3_bind_int64(st.ins, 4, t);
	sqlite3_bind_int64(st.ins, 5, t);
	sqlite3_bind_text(st.ins, 6, "[]", -1, SQLITE_STATIC);
	run_sql(st.ins, "insert");
	event("task.created", sqlite3_last_insert_rowid(db));
}

static void
do_create(long long i)
{
	run_sql(st.begin, "begin");
	do_insert(i);
	run_sql(st.commit, "commit");
}

static void
do_show(long long i)
{
	sqlite3_bind_int64(st.show, 1, id_of(i));
	if (drain(st.show, "show") != 1) {
		fprintf(stderr, "sqlite-scale: no task %lld\n", id_of(i));
		exit(1);
	}
}

static void
do_status(long long i)
{
	sqlite3_stmt *q;
	int k;

	(void)i;
	for (k = 0; k < 6; k++)
		drain(st.counts[k], "counts");
	drain(st.last, "last seq");
	/* store_schema_version and store_sync: uncached pragmas, as the store reads them */
	must(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), "user_version");
	drain(q, "user_version");
	sqlite3_finalize(q);
	must(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &q, NULL), "synchronous");
	drain(q, "synchronous");
	sqlite3_finalize(q);
}

static void
do_list(long long i)
{
	sqlite3_bind_null(st.list, 1);
	sqlite3_bind_null(st.list, 2);
	sqlite3_bind_int64(st.list, 3, id_of(i));
	sqlite3_bind_int64(st.list, 4, page + 1);
	sqlite3_bind_null(st.list, 5);
	drain(st.list, "list");
}

static void
do_ready(long long i)
{
	(void)i;
	sqlite3_bind_int64(st.ready, 4, page + 1);
	sqlite3_bind_null(st.ready, 5);
	drain(st.ready, "ready");
}

/* events-read after a seq: the floor, the page (and one more), the last seq. */
static void
do_events(long long i)
{
	int n = 0;

	drain(st.floor, "floor");
	sqlite3_bind_int64(st.scan, 1, id_of(i));
	while (n <= page && sqlite3_step(st.scan) == SQLITE_ROW) {
		(void)sqlite3_column_text(st.scan, 2);
		(void)sqlite3_column_text(st.scan, 3);
		n++;
	}
	sqlite3_reset(st.scan);
	drain(st.last, "last seq");
}

static void
do_update(long long i)
{
	long long id = id_of(i);

	run_sql(st.begin, "begin");
	task_get(id);
	sqlite3_bind_text(st.progress, 1, "halfway", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st.progress, 2, now_ms());
	sqlite3_bind_int64(st.progress, 3, id);
	run_sql(st.progress, "update");
	task_get(id);
	event("task.updated", id);
	run_sql(st.commit, "commit");
}

static long long *claimed;

static void
do_claim(long long i)
{
	long long id, t = now_ms();

	run_sql(st.begin, "begin");
	if (sqlite3_step(st.next) != SQLITE_ROW) {
		fprintf(stderr, "sqlite-scale: no ready task\n");
		exit(1);
	}
	id = sqlite3_column_int64(st.next, 0);
	sqlite3_reset(st.next);
	sqlite3_bind_text(st.claim, 1, "raw", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st.claim, 2, 300000);
	sqlite3_bind_int64(st.claim, 3, t + 300000);
	sqlite3_bind_int64(st.claim, 4, t);
	sqlite3_bind_int64(st.claim, 5, t);
	sqlite3_bind_int64(st.claim, 6, id);
	sqlite3_bind_int64(st.claim, 7, 0);
	run_sql(st.claim, "claim");
	task_get(id);
	event("task.claimed", id);
	run_sql(st.commit, "commit");
	claimed[i] = id;
}

static void
do_complete(long long i)
{
	long long id = claimed[i], t = now_ms();

	run_sql(st.begin, "begin");
	task_get(id);
	sqlite3_bind_text(st.complete, 1, "{\"ok\":1}", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st.complete, 2, t);
	sqlite3_bind_int64(st.complete, 3, t);
	sqlite3_bind_int64(st.complete, 4, id);
	run_sql(st.complete, "complete");
	task_get(id);
	event("task.completed", id);
	run_sql(st.commit, "commit");
}

static long long release_base;

static void
do_release(long long i)
{
	long long id = claimed[release_base + i];

	run_sql(st.begin, "begin");
	task_get(id);
	sqlite3_bind_int64(st.release, 1, now_ms());
	sqlite3_bind_int64(st.release, 2, id);
	run_sql(st.release, "release");
	task_get(id);
	event("task.released", id);
	run_sql(st.commit, "commit");
}

/* ---- timing ---- */

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
measure(const char *mode, void (*fn)(long long), long long n)
{
	double *lat = malloc((size_t)(n > 0 ? n : 1) * sizeof *lat), t0 = now_s(), t1, secs;
	long long i;

	for (i = 0; i < n; i++) {
		t1 = now_s();
		fn(i);
		lat[i] = (now_s() - t1) * 1e6;
	}
	secs = now_s() - t0;
	qsort(lat, (size_t)n, sizeof *lat, cmp_d);
	printf("{\"mode\": \"%s\", \"requests\": %lld, \"seconds\": %.3f, \"rps\": %.0f, "
	       "\"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
	       mode, n, secs, secs > 0 ? (double)n / secs : 0.0, n ? lat[n / 2] : 0.0,
	       n ? lat[(long long)(0.99 * (double)n)] : 0.0, n ? lat[n - 1] : 0.0);
	fflush(stdout);
	free(lat);
}

static const struct {
	const char *mode;
	void (*fn)(long long);
} modes[] = {
        {"build", do_create},  {"bulk", NULL},      {"show", do_show},     {"status", do_status},
        {"list", do_list},     {"ready", do_ready}, {"events", do_events}, {"create", do_create},
        {"update", do_update}, {"claim", do_claim},
};

int
main(int argc, char **argv)
{
	long long n;
	size_t m;

	if (argc != 7 && argc != 8) {
		fprintf(stderr, "usage: sqlite-scale DB MODE COUNT START STEP RANGE [PAGE]\n");
		return 2;
	}
	for (m = 0; m < sizeof modes / sizeof *modes; m++)
		if (strcmp(argv[2], modes[m].mode) == 0)
			break;
	n = atoll(argv[3]);
	start = atoll(argv[4]);
	step = atoll(argv[5]);
	range = atoll(argv[6]);
	if (argc == 8)
		page = atoll(argv[7]);
	if (m == sizeof modes / sizeof *modes || n < 0 || range < 1 || page < 1) {
		fprintf(stderr, "sqlite-scale: unknown mode %s, or a bad COUNT, RANGE or PAGE\n",
		        argv[2]);
		return 2;
	}
	/* The library as the daemon configures it (store-sqlite.c): one thread, no statistics. */
	sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	must(sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL), "open");
	must(sqlite3_exec(db,
	                  "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
	                  "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY",
	                  NULL, NULL, NULL),
	     "configure");
	prepare_all();
	if (strcmp(argv[2], "claim") == 0) {
		claimed = calloc((size_t)(n > 0 ? n : 1), sizeof *claimed);
		measure("claim", do_claim, n);
		measure("complete", do_complete, n / 2);
		release_base = n / 2;
		measure("release", do_release, n - n / 2);
		free(claimed);
	} else if (strcmp(argv[2], "bulk") == 0) {
		double t0 = now_s(), secs;
		long long i;

		run_sql(st.begin, "begin");
		for (i = 0; i < n; i++)
			do_insert(i);
		run_sql(st.commit, "commit");
		secs = now_s() - t0;
		printf("{\"mode\": \"bulk\", \"requests\": %lld, \"seconds\": %.3f, \"rps\": "
		       "%.0f}\n",
		       n, secs, secs > 0 ? (double)n / secs : 0.0);
	} else {
		/*
		 * A read first runs 5 times untimed on other ids, as scale.py's probe
		 * warms the daemon: both then start with the schema and the upper
		 * b-tree pages in their cache.
		 */
		if (modes[m].fn != do_create && modes[m].fn != do_update)
			for (long long k = 0; k < 5; k++)
				modes[m].fn(n + k);
		measure(modes[m].mode, modes[m].fn, n);
	}
	sqlite3_close_v2(db);
	return 0;
}
