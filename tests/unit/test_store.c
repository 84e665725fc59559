/*
 * test_store.c -- the SQLite store through store.h, on a temporary database.
 *
 * Each test opens a fresh database in its own temporary directory: the
 * task board (dependencies, cycles, the ready queue's order, claims and
 * their conflicts, leases and their expiry, agents' claims), the events
 * log (append, scan from a cursor with topic prefixes), tenants, kv, and
 * the migrations (reopening is idempotent), the counts kept with every
 * change (status's).  After every call the tests
 * check that no statement is left busy: a busy statement holds a read
 * transaction that stops WAL checkpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/proto.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct store_err e;

	strcpy(f->dir, "/tmp/colibri-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/db.sqlite", f->dir);
	f->s = store_open(f->path, &e);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;
	char p[192];

	store_close(f->s);
	snprintf(p, sizeof p, "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", f->path);
	unlink(p);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* No cached statement may stay busy between calls (see the file comment). */
static void
assert_idle(struct store *s)
{
	sqlite3 *db = store_sqlite(s);
	sqlite3_stmt *q;

	for (q = sqlite3_next_stmt(db, NULL); q != NULL; q = sqlite3_next_stmt(db, q))
		if (sqlite3_stmt_busy(q))
			fail_msg("statement left busy: %s", sqlite3_sql(q));
}

static long long
create(struct store *s, const char *title, long long prio, json_t *deps, int64_t now)
{
	struct store_err e;
	json_t *t = store_task_create(s, title, NULL, prio, deps, NULL, now, &e);
	long long id;

	if (t == NULL)
		fail_msg("create %s: %s", title, e.msg);
	id = json_integer_value(json_object_get(t, "id"));
	json_decref(t);
	json_decref(deps);
	assert_idle(s);
	return id;
}

static const char *
status_of(struct store *s, long long id)
{
	static char buf[32];
	struct store_err e;
	json_t *t = store_task_get(s, id, &e);

	assert_non_null(t);
	snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(t, "status")));
	json_decref(t);
	return buf;
}

/* The ids of one page of tasks (store_task_list_json), comma-separated. */
static const char *
page_ids(struct store *s, struct store_task_page *pg)
{
	static char buf[256];
	struct store_err e;
	struct buf out;
	json_t *r, *t;
	size_t i, n = 0;

	buf_init(&out);
	buf_addc(&out, '[');
	assert_int_equal(store_task_list_json(s, pg, &out, &e), 0);
	buf_addc(&out, ']');
	r = json_loadb(buf_head(&out), buf_used(&out), 0, NULL);
	assert_non_null(r);
	buf[0] = '\0';
	json_array_foreach(r, i, t) n +=
	        (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", i ? "," : "",
	                         (long long)json_integer_value(json_object_get(t, "id")));
	assert_int_equal((long long)json_array_size(r), pg->count);
	json_decref(r);
	buf_free(&out);
	assert_idle(s);
	return buf;
}

/* The ready queue's ids, comma-separated. */
static const char *
ready_ids(struct store *s)
{
	struct store_task_page pg = {.ready_only = 1, .limit = 100};

	return page_ids(s, &pg);
}

/* task-list pages by id after a cursor, says whether more follow, and stops at the byte cap. */
static void
test_task_pages(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	long long id[5];
	struct store_task_page pg = {.limit = 2};
	char want[64];
	int i;

	for (i = 0; i < 5; i++)
		id[i] = create(s, "t", 0, NULL, i + 1);
	snprintf(want, sizeof want, "%lld,%lld", id[0], id[1]);
	assert_string_equal(page_ids(s, &pg), want);
	assert_true(pg.more);
	assert_int_equal(pg.last_id, id[1]);
	pg.after = pg.last_id;
	snprintf(want, sizeof want, "%lld,%lld", id[2], id[3]);
	assert_string_equal(page_ids(s, &pg), want);
	assert_true(pg.more);
	pg.after = pg.last_id;
	snprintf(want, sizeof want, "%lld", id[4]);
	assert_string_equal(page_ids(s, &pg), want);
	assert_false(pg.more);
	assert_false(pg.over);
	/* A cap smaller than two tasks: the page stops after the one that passed it. */
	memset(&pg, 0, sizeof pg);
	pg.limit = 100;
	pg.max_bytes = 10;
	page_ids(s, &pg);
	assert_true(pg.over);
	assert_int_equal(pg.count, 1);
}

static void
test_ready_order(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	long long a = create(s, "a", 0, NULL, 1), b = create(s, "b", 5, NULL, 2);
	long long c = create(s, "c", 0, NULL, 3), d = create(s, "d", 5, NULL, 4);
	char want[64];

	snprintf(want, sizeof want, "%lld,%lld,%lld,%lld", b, d, a, c);
	assert_string_equal(ready_ids(s), want);
}

static void
test_dependencies_and_cycles(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	long long a = create(s, "a", 0, NULL, 1);
	long long b = create(s, "b", 9, json_pack("[I]", (json_int_t)a), 2);
	long long c = create(s, "c", 9, json_pack("[I]", (json_int_t)b), 3);
	json_t *ch, *t;
	char want[32];

	snprintf(want, sizeof want, "%lld", a);
	assert_string_equal(ready_ids(s), want);
	/* a -> c closes a cycle through b; a -> a is a cycle of one */
	ch = json_pack("{s:[I]}", "depends_on", (json_int_t)c);
	assert_null(store_task_update(s, a, ch, NULL, 0, 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	json_decref(ch);
	ch = json_pack("{s:[I]}", "depends_on", (json_int_t)a);
	assert_null(store_task_update(s, a, ch, NULL, 0, 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	json_decref(ch);
	/* an unknown dependency */
	ch = json_pack("[i]", 9999);
	assert_null(store_task_create(s, "x", NULL, 0, ch, NULL, 6, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	json_decref(ch);
	assert_idle(s);
	/* a diamond is not a cycle */
	ch = json_pack("{s:[I,I]}", "depends_on", (json_int_t)a, (json_int_t)b);
	t = store_task_update(s, c, ch, NULL, 0, 7, &e);
	assert_non_null(t);
	assert_int_equal(json_array_size(json_object_get(t, "depends_on")), 2);
	json_decref(t);
	json_decref(ch);
	assert_idle(s);
}

static void
test_claims(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	long long a = create(s, "a", 1, NULL, 1);
	long long b = create(s, "b", 0, json_pack("[I]", (json_int_t)a), 2);
	json_t *t, *ch;

	assert_null(store_task_claim(s, "w", b, 1000, 0, 10, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	t = store_task_claim(s, "w1", 0, 1000, 0, 10, &e);
	assert_non_null(t);
	assert_int_equal(json_integer_value(json_object_get(t, "id")), a);
	assert_int_equal(json_integer_value(json_object_get(t, "lease_expires_ms")), 1010);
	json_decref(t);
	assert_null(store_task_claim(s, "w2", a, 1000, 0, 11, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_null(store_task_claim(s, "w2", 0, 1000, 0, 11, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	assert_null(store_task_claim(s, "w2", 777, 1000, 0, 11, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	/* only the owner completes when an agent is named */
	assert_null(store_task_complete(s, a, "w2", 0, NULL, 12, NULL, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	ch = json_pack("{s:i}", "n", 1);
	t = store_task_complete(s, a, "w1", 0, ch, 12, NULL, &e);
	json_decref(ch);
	assert_non_null(t);
	assert_string_equal(json_string_value(json_object_get(t, "status")), "done");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "result"), "n")), 1);
	json_decref(t);
	assert_null(store_task_release(s, a, NULL, 0, 13, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	/* b is ready now */
	t = store_task_claim(s, "w2", b, 1000, 0, 14, &e);
	assert_non_null(t);
	json_decref(t);
	t = store_task_release(s, b, "w2", 0, 15, &e);
	assert_non_null(t);
	assert_string_equal(json_string_value(json_object_get(t, "status")), "open");
	assert_true(json_is_null(json_object_get(t, "owner")));
	json_decref(t);
	assert_idle(s);
}

static void
count_cb(json_t *t, void *arg)
{
	assert_string_equal(json_string_value(json_object_get(t, "status")), "open");
	(*(int *)arg)++;
}

static void
test_expiry_and_agents(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	long long a = create(s, "a", 0, NULL, 1), b = create(s, "b", 0, NULL, 1);
	long long c = create(s, "c", 0, NULL, 1);
	int n = 0;
	json_t *t;

	assert_int_equal(store_task_next_expiry(s), -1);
	json_decref(store_task_claim(s, "x", a, 100, 0, 1000, &e));
	json_decref(store_task_claim(s, "y", b, 500, 0, 1000, &e));
	json_decref(store_task_claim(s, "y", c, 5000, 0, 1000, &e));
	assert_int_equal(store_task_next_expiry(s), 1100);
	assert_idle(s);
	assert_int_equal(store_task_expire(s, 1099, count_cb, &n), 0);
	assert_int_equal(store_task_expire(s, 1100, count_cb, &n), 1);
	assert_int_equal(n, 1);
	assert_string_equal(status_of(s, a), "open");
	/* renewing y's leases moves them to now + their own lease */
	assert_int_equal(store_task_renew_agent(s, "y", 2000), 2);
	t = store_task_get(s, b, &e);
	assert_int_equal(json_integer_value(json_object_get(t, "lease_expires_ms")), 2500);
	json_decref(t);
	/* a lost agent's claims all go back */
	assert_int_equal(store_task_release_agent(s, "y", 2100, count_cb, &n), 2);
	assert_int_equal(n, 3);
	assert_string_equal(status_of(s, c), "open");
	assert_int_equal(store_task_next_expiry(s), -1);
	assert_idle(s);
}

static void
lost_cb(const char *id, void *arg)
{
	strcat(arg, id);
	strcat(arg, ";");
}

static void
test_agent_registry(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	char lost[64] = "";
	json_t *f, *a;

	f = json_pack("{s:s, s:I, s:I, s:i}", "kind", "registered", "lease_ms", (json_int_t)100,
	              "heartbeat", (json_int_t)1000, "lost", 0);
	a = store_agent_put(s, "ag1", f, 1000, &e);
	assert_non_null(a);
	json_decref(a);
	json_decref(f);
	f = json_pack("{s:s, s:I, s:I, s:i, s:{s:s}}", "kind", "registered", "lease_ms",
	              (json_int_t)300, "heartbeat", (json_int_t)1000, "lost", 0, "detail",
	              "activity", "busy");
	a = store_agent_put(s, "ag2", f, 1000, &e);
	assert_string_equal(json_string_value(json_object_get(a, "activity")), "busy");
	json_decref(a);
	json_decref(f);
	assert_int_equal(store_agent_next_loss(s), 1100);
	assert_int_equal(store_agent_find_lost(s, 1200, lost_cb, lost), 1);
	assert_string_equal(lost, "ag1;");
	f = json_pack("{s:i}", "nonsense", 1);
	assert_null(store_agent_put(s, "ag1", f, 1, &e));
	json_decref(f);
	a = store_agent_list(s, "registered", NULL, &e);
	assert_int_equal(json_array_size(json_object_get(a, "items")), 2);
	json_decref(a);
	assert_int_equal(store_agent_delete(s, "ag1"), 1);
	assert_null(store_agent_get(s, "ag1", &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	assert_idle(s);
}

struct scan {
	char topics[512];
	long long last;
};

static int
scan_cb(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	struct scan *sc = arg;

	(void)data;
	assert_true(seq > sc->last);
	assert_int_equal(ts, seq * 10);
	sc->last = seq;
	strcat(sc->topics, topic);
	strcat(sc->topics, ";");
	return 0;
}

/* The scan's filter (the daemon's is events_topic_matches): a prefix in the array arg. */
static int
prefix_match(const char *topic, void *arg)
{
	size_t i;
	json_t *v;

	json_array_foreach((json_t *)arg, i, v)
	{
		if (strncmp(topic, json_string_value(v), strlen(json_string_value(v))) == 0)
			return 1;
	}
	return 0;
}

static void
test_events_scan(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	static const char *topics[] = {"task.created", "task.claimed", "agent.lost",
	                               "task.created", "tasks.other",  "agent.state"};
	struct store_err e;
	struct scan sc;
	json_t *pre;
	size_t i;

	assert_int_equal(store_event_last(s), 0);
	for (i = 0; i < 6; i++)
		assert_int_equal(store_event_append(s, topics[i], "{}", (int64_t)(i + 1) * 10, &e),
		                 (long long)i + 1);
	assert_int_equal(store_event_last(s), 6);
	memset(&sc, 0, sizeof sc);
	assert_int_equal(store_event_scan(s, 0, 100, NULL, NULL, scan_cb, &sc), 6);
	memset(&sc, 0, sizeof sc);
	pre = json_pack("[s, s]", "task.", "agent.lost");
	assert_int_equal(store_event_scan(s, 1, 100, prefix_match, pre, scan_cb, &sc), 3);
	assert_string_equal(sc.topics, "task.claimed;agent.lost;task.created;");
	memset(&sc, 0, sizeof sc);
	assert_int_equal(store_event_scan(s, 0, 2, prefix_match, pre, scan_cb, &sc), 2);
	assert_string_equal(sc.topics, "task.created;task.claimed;");
	json_decref(pre);
	memset(&sc, 0, sizeof sc);
	pre = json_pack("[s]", "tasks");
	assert_int_equal(store_event_scan(s, 0, 100, prefix_match, pre, scan_cb, &sc), 1);
	json_decref(pre);
	assert_int_equal(store_event_scan(s, 6, 100, NULL, NULL, scan_cb, &sc), 0);
	assert_idle(s);
}

static void
test_tenants_and_kv(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	json_t *t;
	char *v;

	t = store_tenant_put(s, "t1", "/jails/t1", "t1", 1, &e);
	assert_string_equal(json_string_value(json_object_get(t, "status")), "provisioned");
	json_decref(t);
	json_decref(store_tenant_put(s, "t0", "/jails/t0", "c0", 1, &e));
	assert_int_equal(store_tenant_set_status(s, "t1", "active", NULL, 2, &e), 0);
	assert_int_equal(store_tenant_set_status(s, "nope", "active", NULL, 2, &e), -1);
	assert_string_equal(e.code, ERR_NOT_FOUND);
	t = store_tenant_get(s, "t1", &e);
	assert_string_equal(json_string_value(json_object_get(t, "status")), "active");
	json_decref(t);
	t = store_tenant_list(s, &e);
	assert_int_equal(json_array_size(json_object_get(t, "items")), 2);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(t, "items"), 0), "tenant_id")),
	                    "t0");
	json_decref(t);
	/* re-registering resets the status */
	t = store_tenant_put(s, "t1", "/jails/t1b", "t1", 3, &e);
	assert_string_equal(json_string_value(json_object_get(t, "jail_root_path")), "/jails/t1b");
	assert_string_equal(json_string_value(json_object_get(t, "status")), "provisioned");
	json_decref(t);
	assert_int_equal(store_tenant_delete(s, "t1", &e), 0);
	assert_int_equal(store_tenant_delete(s, "t1", &e), -1);
	assert_null(store_tenant_get(s, "t1", &e));
	assert_null(store_kv_get(s, "k"));
	assert_int_equal(store_kv_set(s, "k", "v1", &e), 0);
	assert_int_equal(store_kv_set(s, "k", "v2", &e), 0);
	v = store_kv_get(s, "k");
	assert_string_equal(v, "v2");
	free(v);
	assert_idle(s);
}

static void
test_reopen_is_idempotent(void **state)
{
	struct fx *f = *state;
	struct store_err e;
	long long id = create(f->s, "persist", 3, NULL, 1);
	int v = store_schema_version(f->s), i;
	json_t *c;

	assert_true(v >= 1);
	for (i = 0; i < 3; i++) {
		store_close(f->s);
		f->s = store_open(f->path, &e);
		assert_non_null(f->s);
		assert_int_equal(store_schema_version(f->s), v);
	}
	assert_string_equal(status_of(f->s, id), "open");
	assert_int_equal(store_integrity_check(f->s, &e), 0);
	c = store_counts(f->s);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "tasks"), "open")),
	                 1);
	json_decref(c);
	/* a database from a newer daemon is refused, not damaged */
	sqlite3_exec(store_sqlite(f->s), "PRAGMA user_version = 999", NULL, NULL, NULL);
	store_close(f->s);
	f->s = store_open(f->path, &e);
	assert_null(f->s);
	assert_non_null(strstr(e.msg, "newer"));
	f->s = NULL;
	{
		sqlite3 *db;
		char sql[64];
		/* back to the version the database really has (every migration applied) */
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
		sqlite3_close(db);
	}
	f->s = store_open(f->path, &e);
	assert_non_null(f->s);
}

/* An integer a query on the raw connection gives. */
static long long
scalar(struct store *s, const char *sql)
{
	sqlite3_stmt *q;
	long long v = -1;

	assert_int_equal(sqlite3_prepare_v2(store_sqlite(s), sql, -1, &q, NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* The kept counts (migration 5) equal a scan of the board, and every unfinished_deps its own. */
static void
assert_counts_kept(struct store *s)
{
	static const char *const st[] = {"open", "claimed", "done", "cancelled", "failed"};
	json_t *c = store_counts(s), *tasks = json_object_get(c, "tasks");
	char sql[128];
	size_t i;

	for (i = 0; i < sizeof st / sizeof *st; i++) {
		snprintf(sql, sizeof sql, "SELECT count(*) FROM tasks WHERE status = '%s'", st[i]);
		if (json_integer_value(json_object_get(tasks, st[i])) != scalar(s, sql))
			fail_msg("%s: kept %lld, scan %lld", st[i],
			         (long long)json_integer_value(json_object_get(tasks, st[i])),
			         scalar(s, sql));
	}
	assert_int_equal(json_integer_value(json_object_get(tasks, "ready")),
	                 scalar(s, "SELECT count(*) FROM tasks t WHERE t.status = 'open' AND NOT "
	                           "EXISTS (SELECT 1 FROM task_deps d JOIN tasks u ON u.id = d.dep "
	                           "WHERE d.task = t.id AND u.status != 'done')"));
	assert_int_equal(scalar(s, "SELECT count(*) FROM tasks t WHERE unfinished_deps != (SELECT "
	                           "count(*) FROM task_deps d JOIN tasks u ON u.id = d.dep WHERE "
	                           "d.task = t.id AND u.status != 'done')"),
	                 0);
	assert_int_equal(json_integer_value(json_object_get(c, "agents")),
	                 scalar(s, "SELECT count(*) FROM agents"));
	json_decref(c);
	assert_idle(s);
}

/*
 * Issue 19: status reads counts triggers keep.  Every way a task changes -- created with
 * dependencies, claimed (next or by id), completed, released, failed and retried,
 * cancelled, its dependencies replaced, its lease expired -- in a seeded random order,
 * and after each the counts equal a scan.
 */
static void
test_kept_counts_follow_every_change(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	unsigned long long rnd = 19;
	struct store_err e;
	long long n = 0, id, held = 0, epoch = 0;
	json_t *t, *ch;
	int i, op, repeated;
	char agent[16];

	assert_counts_kept(s);
	for (i = 0; i < 600; i++) {
		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		op = (int)((rnd >> 33) % 9);
		id = n > 0 ? (long long)((rnd >> 17) % (unsigned long long)n) + 1 : 0;
		snprintf(agent, sizeof agent, "w%d", (int)((rnd >> 40) % 4));
		t = NULL;
		if (op <= 2 || n < 3) {
			ch = json_array();
			if (n > 0 && op >= 1)
				json_array_append_new(ch, json_integer(id));
			if (n > 1 && op == 1)
				json_array_append_new(ch, json_integer(id > 1 ? id - 1 : id + 1));
			n++;
			create(s, "t", (long long)(rnd >> 50) % 3, ch, i);
		} else if (op == 3 || op == 4) {
			t = store_task_claim(s, agent, op == 3 ? 0 : id, (rnd >> 45) % 2 ? 1000 : 0,
			                     1, i, &e);
			if (t != NULL) {
				held = json_integer_value(json_object_get(t, "id"));
				epoch = json_integer_value(json_object_get(t, "epoch"));
			}
		} else if (op == 5)
			t = store_task_complete(s, held, NULL, 0, NULL, i, &repeated, &e);
		else if (op == 6)
			t = (rnd >> 44) % 2
			            ? store_task_release(s, held, NULL, 0, i, &e)
			            : store_task_run_failed(s, held, NULL, epoch, "x", i, &e);
		else if (op == 7) {
			ch = (rnd >> 44) % 3 == 0
			             ? json_pack("{s:s}", "status", "cancelled")
			             : json_pack("{s:[I]}", "depends_on",
			                         (json_int_t)(id > 1 ? id - 1 : id + 1));
			t = store_task_update(s, id, ch, NULL, 0, i, &e);
			json_decref(ch);
		} else {
			store_task_expire(s, i + 500, NULL, NULL);
			ch = json_object();
			json_decref(store_agent_put(s, agent, ch, i, &e));
			json_decref(ch);
			if ((rnd >> 44) % 2)
				store_agent_delete(s, agent);
		}
		json_decref(t);
		assert_counts_kept(s);
	}
	/* the board went through every status */
	assert_true(scalar(s, "SELECT count(DISTINCT status) FROM tasks") == 5);
	assert_true(scalar(s, "SELECT count(*) FROM tasks WHERE unfinished_deps > 0") > 0);
}

static void
test_savepoints(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	long long a, b;

	assert_int_equal(store_begin(s, &e), 0);
	assert_true(store_in_txn(s));
	store_savepoint(s);
	a = create(s, "kept", 0, NULL, 1);
	store_savepoint_release(s);
	store_savepoint(s);
	b = create(s, "rolled back", 0, NULL, 1);
	store_savepoint_rollback(s);
	assert_int_equal(store_commit(s, &e), 0);
	assert_false(store_in_txn(s));
	assert_string_equal(status_of(s, a), "open");
	assert_null(store_task_get(s, b, &e));
	assert_int_equal(store_begin(s, &e), 0);
	create(s, "gone", 0, NULL, 1);
	store_rollback(s);
	assert_string_equal(ready_ids(s), "1");
}

/* A task's JSON from task_get_json is exactly jsonw_dump of task_get's object. */
static void
assert_json_matches(struct store *s, long long id)
{
	struct store_err e;
	struct buf b;
	json_t *t = store_task_get(s, id, &e);
	char *want;

	assert_non_null(t);
	want = jsonw_dumps(t);
	buf_init(&b);
	assert_int_equal(store_task_get_json(s, id, &b, &e), 0);
	buf_cstr(&b);
	if (strcmp(buf_head(&b), want) != 0)
		fail_msg("task %lld:\n json %s\n  obj %s", id, buf_head(&b), want);
	buf_free(&b);
	free(want);
	json_decref(t);
}

/* store_task_create_json's JSON is what task_get_json then reads of the task. */
static void
assert_created_json(struct store *s, const char *title, const char *body, long long prio,
                    json_t *deps, json_t *tags)
{
	struct store_err e;
	struct buf b, want;
	long long id;

	buf_init(&b);
	buf_init(&want);
	id = store_task_create_json(s, title, body, prio, deps, tags, 77, &b, &e);
	assert_true(id > 0);
	assert_int_equal(store_task_get_json(s, id, &want, &e), 0);
	buf_cstr(&b);
	buf_cstr(&want);
	if (strcmp(buf_head(&b), buf_head(&want)) != 0)
		fail_msg("created %s\n  read %s", buf_head(&b), buf_head(&want));
	buf_free(&b);
	buf_free(&want);
	assert_json_matches(s, id);
}

/* task_get_json's "title" of id (a static buffer). */
static const char *
json_title(struct store *s, long long id)
{
	static char title[256];
	struct store_err e;
	struct buf b;
	json_t *t;

	buf_init(&b);
	assert_int_equal(store_task_get_json(s, id, &b, &e), 0);
	t = json_loadb(buf_head(&b), buf_used(&b), 0, NULL);
	assert_non_null(t);
	snprintf(title, sizeof title, "%s", json_string_value(json_object_get(t, "title")));
	json_decref(t);
	buf_free(&b);
	return title;
}

static void
test_task_json(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct store_err e;
	long long a = create(s, "a", 0, NULL, 1), b = create(s, "b", 0, NULL, 2);
	long long c = create(s, "c \"quoted\"\n\t\xc3\xa9", 5,
	                     json_pack("[I,I]", (json_int_t)b, (json_int_t)a), 3);
	long long d, id;
	json_t *ch, *deps = json_array();
	struct buf buf;
	int i;

	/* many dependencies, given out of order: the array comes back sorted */
	for (i = 0; i < 40; i++)
		json_array_append_new(deps, json_integer(create(s, "dep", 0, NULL, 4)));
	json_array_insert_new(deps, 0, json_integer(c));
	d = create(s, "d", -3, deps, 5);
	json_decref(store_task_claim(s, "agent \\ one", a, 1000, 0, 10, &e));
	ch = json_pack("{s:[i,s,n,b,{s:f}]}", "out", 1, "x\x01y", 1, "r", 0.5);
	json_decref(store_task_complete(s, a, NULL, 0, ch, 11, NULL, &e));
	json_decref(ch);
	ch = json_pack("{s:s, s:[s]}", "progress", "half \xe2\x82\xac", "tags", "t1");
	json_decref(store_task_update(s, b, ch, NULL, 0, 12, &e));
	json_decref(ch);
	for (id = 1; id <= d; id++)
		assert_json_matches(s, id);
	/* the same inside a write transaction */
	assert_int_equal(store_begin(s, &e), 0);
	assert_created_json(s, "in txn \"\\\x7f", "body\n", 2, NULL, NULL);
	for (id = 1; id <= d + 1; id++)
		assert_json_matches(s, id);
	assert_int_equal(store_commit(s, &e), 0);
	/* task-create's JSON (written from what it inserted) is the row's */
	assert_created_json(s, "plain", NULL, 0, NULL, NULL);
	deps = json_array();
	assert_created_json(s, "negative", "", -9, deps, NULL);
	json_decref(deps);
	deps = json_pack("[I,I,I]", (json_int_t)c, (json_int_t)a, (json_int_t)b);
	assert_created_json(s, "with deps", "x", 1, deps, NULL);
	json_decref(deps);
	/* tags: written as given (no escape needed), read back the same */
	deps = json_pack("[s,s]", "build:linux", "a.b-c_d");
	assert_created_json(s, "with tags", "x", 1, NULL, deps);
	json_decref(deps);
	buf_init(&buf);
	assert_int_equal(store_task_get_json(s, 9999, &buf, &e), -1);
	assert_string_equal(e.code, ERR_NOT_FOUND);
	assert_int_equal(buf_used(&buf), 0);
	buf_free(&buf);
	assert_idle(s);
}

/*
 * The snapshot's memo never answers with a task as it was before a write:
 * every kind of task write, in and outside a transaction, then the JSON
 * again; a rolled-back change is gone again; a change by another
 * connection shows once the snapshot ends (store_idle).
 */
static void
test_memo_follows_writes(void **state)
{
	struct fx *f = *state;
	struct store *s = f->s;
	struct store_err e;
	long long a = create(s, "a", 0, NULL, 1), b = create(s, "b", 0, NULL, 1);
	json_t *ch;
	sqlite3 *other;
	int n = 0;

	assert_json_matches(s, a); /* fills the memo */
	assert_true(store_snapshot_open(s));
	json_decref(store_task_claim(s, "w", a, 100, 0, 10, &e));
	assert_json_matches(s, a);
	assert_int_equal(store_task_renew_agent(s, "w", 20), 1);
	assert_json_matches(s, a);
	assert_int_equal(store_task_expire(s, 500, count_cb, &n), 1);
	assert_json_matches(s, a);
	json_decref(store_task_claim(s, "w", a, 100, 0, 600, &e));
	assert_json_matches(s, a);
	assert_int_equal(store_task_release_agent(s, "w", 700, count_cb, &n), 1);
	assert_json_matches(s, a);
	ch = json_pack("{s:s, s:[I]}", "title", "a2", "depends_on", (json_int_t)b);
	json_decref(store_task_update(s, a, ch, NULL, 0, 800, &e));
	json_decref(ch);
	assert_json_matches(s, a);
	assert_string_equal(json_title(s, a), "a2");
	json_decref(store_task_claim(s, "w", b, 100, 0, 900, &e));
	assert_json_matches(s, b);
	json_decref(store_task_complete(s, b, "w", 0, NULL, 901, NULL, &e));
	assert_json_matches(s, b);
	assert_json_matches(s, a);

	/* in a transaction, and rolled back */
	assert_json_matches(s, a);
	assert_int_equal(store_begin(s, &e), 0);
	ch = json_pack("{s:s}", "title", "a3");
	json_decref(store_task_update(s, a, ch, NULL, 0, 1000, &e));
	json_decref(ch);
	assert_string_equal(json_title(s, a), "a3");
	store_rollback(s);
	assert_string_equal(json_title(s, a), "a2");
	assert_json_matches(s, a);

	/* another connection's write shows once the snapshot ends */
	assert_string_equal(json_title(s, a), "a2");
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	sqlite3_busy_timeout(other, 5000);
	assert_int_equal(sqlite3_exec(other, "UPDATE tasks SET title = 'outside' WHERE id = 1",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	store_idle(s);
	assert_false(store_snapshot_open(s));
	assert_string_equal(json_title(s, a), "outside");
	sqlite3_close(other);
	assert_idle(s);
}

static long long
count_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *q;
	long long n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return n;
}

static int
append_and_read(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	struct store *s = arg;
	struct store_err e;

	(void)topic;
	(void)data;
	if (seq == 1)
		assert_true(store_event_append(s, "t.y", "{}", ts + 1, &e) > 0);
	assert_json_matches(s, 1);
	return 0;
}

/*
 * A write outside a transaction while the read snapshot is open commits at
 * once, as it did before the snapshot existed: another connection sees it
 * right away (a write inside the snapshot would wait for the snapshot).
 */
static void
test_snapshot_never_holds_a_write(void **state)
{
	struct fx *f = *state;
	struct store *s = f->s;
	struct store_err e;
	sqlite3 *other;
	json_t *j;
	int n = 0;

	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	create(s, "first", 0, NULL, 1);
	assert_json_matches(s, 1);
	assert_true(store_snapshot_open(s));
	create(s, "second", 0, NULL, 2); /* a cached INSERT */
	assert_int_equal(count_rows(other, "SELECT count(*) FROM tasks"), 2);

	assert_json_matches(s, 1);
	j = json_pack("{s:s, s:s}", "kind", "registered", "name", "n");
	json_decref(store_agent_put(s, "ag1", j, 3, &e));
	json_decref(j);
	assert_json_matches(s, 1);
	j = json_pack("{s:s}", "state", "busy"); /* an update by field: SQL built per call */
	json_decref(store_agent_put(s, "ag1", j, 4, &e));
	json_decref(j);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM agents WHERE state = 'busy'"), 1);

	assert_json_matches(s, 1);
	assert_int_equal(store_kv_set(s, "k", "v", &e), 0);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM kv"), 1);

	assert_json_matches(s, 1);
	j = json_pack("[{s:s, s:s, s:s, s:{}, s:s}]", "name", "sk", "description", "d", "path",
	              "/p", "fields", "body", "b");
	assert_int_equal(store_skills_replace(s, j, 5, &e), 0);
	json_decref(j);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM skills"), 1);
	assert_json_matches(s, 1);
	j = json_array();
	assert_int_equal(store_skills_replace(s, j, 6, &e), 0); /* DELETE alone */
	json_decref(j);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM skills"), 0);

	assert_json_matches(s, 1);
	assert_true(store_event_append(s, "t.x", "{}", 7, &e) > 0);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM events"), 1);

	/* the sweep's writes (each collects its ids, then releases them one by one) */
	json_decref(store_task_claim(s, "w", 1, 100, 0, 10, &e));
	json_decref(store_task_claim(s, "w", 2, 100, 0, 10, &e));
	assert_json_matches(s, 1);
	assert_int_equal(store_task_expire(s, 1000, count_cb, &n), 2);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM tasks WHERE status = 'open'"), 2);
	json_decref(store_task_claim(s, "w", 1, 100, 0, 2000, &e));
	json_decref(store_task_claim(s, "w", 2, 100, 0, 2000, &e));
	assert_json_matches(s, 1);
	assert_int_equal(store_task_release_agent(s, "w", 2001, count_cb, &n), 2);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM tasks WHERE status = 'open'"), 2);
	assert_json_matches(s, 2);

	/* a scan whose callback appends events and reads: the appends commit when it ends */
	assert_int_equal(store_event_scan(s, 0, 100, NULL, NULL, append_and_read, s), 2);
	assert_int_equal(count_rows(other, "SELECT count(*) FROM events"), 2);
	sqlite3_close(other);
	assert_idle(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_task_pages, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_ready_order, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_dependencies_and_cycles, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_claims, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_expiry_and_agents, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_agent_registry, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_events_scan, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_tenants_and_kv, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_reopen_is_idempotent, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_savepoints, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_kept_counts_follow_every_change, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_task_json, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_memo_follows_writes, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_never_holds_a_write, fx_setup,
	                                        fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
