/*
 * test_store.c -- the SQLite store through store.h, on a temporary database.
 *
 * Each test opens a fresh database in its own temporary directory: the
 * task board (dependencies, cycles, the ready queue's order, claims and
 * their conflicts, leases and their expiry, agents' claims), the events
 * log (append, scan from a cursor with topic prefixes), tenants, kv, and
 * the migrations (reopening is idempotent).  After every call the tests
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
	json_t *t = store_task_create(s, title, NULL, prio, deps, now, &e);
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

/* The ready queue's ids, comma-separated. */
static const char *
ready_ids(struct store *s)
{
	static char buf[256];
	struct store_err e;
	json_t *r = store_task_list(s, NULL, NULL, 1, 100, &e), *t;
	size_t i, n = 0;

	assert_non_null(r);
	buf[0] = '\0';
	json_array_foreach(json_object_get(r, "items"), i, t) n +=
	        (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", i ? "," : "",
	                         (long long)json_integer_value(json_object_get(t, "id")));
	json_decref(r);
	assert_idle(s);
	return buf;
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
	assert_null(store_task_update(s, a, ch, NULL, 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	json_decref(ch);
	ch = json_pack("{s:[I]}", "depends_on", (json_int_t)a);
	assert_null(store_task_update(s, a, ch, NULL, 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	json_decref(ch);
	/* an unknown dependency */
	ch = json_pack("[i]", 9999);
	assert_null(store_task_create(s, "x", NULL, 0, ch, 6, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	json_decref(ch);
	assert_idle(s);
	/* a diamond is not a cycle */
	ch = json_pack("{s:[I,I]}", "depends_on", (json_int_t)a, (json_int_t)b);
	t = store_task_update(s, c, ch, NULL, 7, &e);
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

	assert_null(store_task_claim(s, "w", b, 1000, 10, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	t = store_task_claim(s, "w1", 0, 1000, 10, &e);
	assert_non_null(t);
	assert_int_equal(json_integer_value(json_object_get(t, "id")), a);
	assert_int_equal(json_integer_value(json_object_get(t, "lease_expires_ms")), 1010);
	json_decref(t);
	assert_null(store_task_claim(s, "w2", a, 1000, 11, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_null(store_task_claim(s, "w2", 0, 1000, 11, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	assert_null(store_task_claim(s, "w2", 777, 1000, 11, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	/* only the owner completes when an agent is named */
	assert_null(store_task_complete(s, a, "w2", NULL, 12, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	ch = json_pack("{s:i}", "n", 1);
	t = store_task_complete(s, a, "w1", ch, 12, &e);
	json_decref(ch);
	assert_non_null(t);
	assert_string_equal(json_string_value(json_object_get(t, "status")), "done");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "result"), "n")), 1);
	json_decref(t);
	assert_null(store_task_release(s, a, NULL, 13, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	/* b is ready now */
	t = store_task_claim(s, "w2", b, 1000, 14, &e);
	assert_non_null(t);
	json_decref(t);
	t = store_task_release(s, b, "w2", 15, &e);
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
	json_decref(store_task_claim(s, "x", a, 100, 1000, &e));
	json_decref(store_task_claim(s, "y", b, 500, 1000, &e));
	json_decref(store_task_claim(s, "y", c, 5000, 1000, &e));
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
	assert_int_equal(store_event_scan(s, 0, 100, NULL, scan_cb, &sc), 6);
	memset(&sc, 0, sizeof sc);
	pre = json_pack("[s, s]", "task.", "agent.lost");
	assert_int_equal(store_event_scan(s, 1, 100, pre, scan_cb, &sc), 3);
	assert_string_equal(sc.topics, "task.claimed;agent.lost;task.created;");
	memset(&sc, 0, sizeof sc);
	assert_int_equal(store_event_scan(s, 0, 2, pre, scan_cb, &sc), 2);
	assert_string_equal(sc.topics, "task.created;task.claimed;");
	json_decref(pre);
	memset(&sc, 0, sizeof sc);
	pre = json_pack("[s]", "tasks");
	assert_int_equal(store_event_scan(s, 0, 100, pre, scan_cb, &sc), 1);
	json_decref(pre);
	assert_int_equal(store_event_scan(s, 6, 100, NULL, scan_cb, &sc), 0);
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
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	f->s = store_open(f->path, &e);
	assert_non_null(f->s);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
