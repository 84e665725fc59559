/*
 * test_store_runs.c -- claim epochs and failed runs through store.h.
 *
 * Task-bound runs (issue 17) lean on three things the store decides: every
 * claim bumps the task's epoch; update, complete and release given an
 * epoch act only on that claim (an older one is stale, a conflict), and
 * completing twice with the same epoch is one completion; and a failed run
 * (store_task_run_failed, which only the spawner calls, so no protocol test
 * reaches it) counts an attempt, keeps its reason and puts the task back in
 * the queue, or makes it failed once max_attempts is reached.
 *
 * Each scenario is a function of a store.  They run on a fresh SQLite
 * database, and again on PostgreSQL when COLIBRI_TEST_PG_URL names a
 * database (tests/pg/start.sh prints a server's URL): the rules are shared
 * (store-rules.c), the SQL is not.  The scenarios create their own tasks
 * and claim them by id, so a database that already holds tasks does too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/proto.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
sqlite_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct store_err e;

	strcpy(f->dir, "/tmp/colibri-test-runs-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/db.sqlite", f->dir);
	f->s = store_open(f->path, &e);
	if (f->s == NULL)
		fail_msg("store_open: %s", e.msg);
	*state = f;
	return 0;
}

static int
pg_setup(void **state)
{
	const char *url = getenv("COLIBRI_TEST_PG_URL");
	struct fx *f = calloc(1, sizeof *f);
	struct store_err e;

	if (url == NULL || *url == '\0') {
		free(f);
		*state = NULL;
		return 0;
	}
	f->s = store_open(url, &e);
	if (f->s == NULL)
		fail_msg("store_open %s: %s", url, e.msg);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;
	char p[192];

	if (f == NULL)
		return 0;
	store_close(f->s);
	if (f->path[0] != '\0') {
		snprintf(p, sizeof p, "%s-wal", f->path);
		unlink(p);
		snprintf(p, sizeof p, "%s-shm", f->path);
		unlink(p);
		unlink(f->path);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

/* The store of the fixture, or skip (PostgreSQL without COLIBRI_TEST_PG_URL). */
static struct store *
store_of(void **state)
{
	if (*state == NULL)
		skip();
	return ((struct fx *)*state)->s;
}

static long long
create(struct store *s, const char *title, int64_t now)
{
	struct store_err e;
	json_t *t = store_task_create(s, title, NULL, 0, NULL, NULL, now, &e);
	long long id;

	if (t == NULL)
		fail_msg("create %s: %s", title, e.msg);
	id = json_integer_value(json_object_get(t, "id"));
	json_decref(t);
	return id;
}

static long long
int_of(json_t *t, const char *key)
{
	json_t *v = json_object_get(t, key);

	if (!json_is_integer(v))
		fail_msg("%s is not an integer", key);
	return json_integer_value(v);
}

static const char *
str_of(json_t *t, const char *key)
{
	return json_string_value(json_object_get(t, key));
}

/* Claim id for agent; the task's new epoch. */
static long long
claim(struct store *s, const char *agent, long long id, long long max_attempts, int64_t now)
{
	struct store_err e;
	json_t *t = store_task_claim(s, agent, id, 1000, max_attempts, now, &e);
	long long epoch;

	if (t == NULL)
		fail_msg("claim %lld: %s", id, e.msg);
	assert_string_equal(str_of(t, "status"), "claimed");
	epoch = int_of(t, "epoch");
	json_decref(t);
	return epoch;
}

/* Is id in the ready queue? */
static int
is_ready(struct store *s, long long id)
{
	struct store_task_page pg = {.ready_only = 1, .limit = 100000};
	struct store_err e;
	struct buf out;
	json_t *a, *t;
	size_t i;
	int found = 0;

	buf_init(&out);
	buf_addc(&out, '[');
	assert_int_equal(store_task_list_json(s, &pg, &out, &e), 0);
	buf_addc(&out, ']');
	a = json_loadb(buf_head(&out), buf_used(&out), 0, NULL);
	assert_non_null(a);
	json_array_foreach(a, i, t) found |= int_of(t, "id") == id;
	json_decref(a);
	buf_free(&out);
	return found;
}

/* A new task starts at epoch 0 with no attempts; each claim adds one to the epoch. */
static void
test_epoch_per_claim(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	long long id = create(s, "epochs", 1);
	json_t *t;

	t = store_task_get(s, id, &e);
	assert_int_equal(int_of(t, "epoch"), 0);
	assert_int_equal(int_of(t, "attempts"), 0);
	assert_true(json_is_null(json_object_get(t, "max_attempts")));
	assert_true(json_is_null(json_object_get(t, "last_error")));
	json_decref(t);
	assert_int_equal(claim(s, "a", id, 0, 2), 1);
	json_decref(store_task_release(s, id, "a", 1, 3, &e));
	assert_int_equal(claim(s, "b", id, 3, 4), 2);
	/* max_attempts 0 leaves what an earlier claim set */
	json_decref(store_task_release(s, id, NULL, 0, 5, &e));
	assert_int_equal(claim(s, "c", id, 0, 6), 3);
	t = store_task_get(s, id, &e);
	assert_int_equal(int_of(t, "max_attempts"), 3);
	json_decref(t);
}

/* An epoch other than the task's is stale: update, complete and release refuse it. */
static void
test_stale_epoch(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	long long id = create(s, "stale", 1);
	int repeated = -1;
	json_t *t, *ch = json_pack("{s:s}", "progress", "half");

	claim(s, "a", id, 0, 2);
	json_decref(store_task_release(s, id, "a", 1, 3, &e));
	assert_int_equal(claim(s, "b", id, 0, 4), 2);
	assert_null(store_task_update(s, id, ch, "b", 1, 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "epoch 1 is stale"));
	assert_non_null(strstr(e.msg, "epoch is 2"));
	assert_null(store_task_release(s, id, "b", 1, 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_null(store_task_complete(s, id, "b", 1, NULL, 5, &repeated, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "stale"));
	/* nothing changed */
	t = store_task_get(s, id, &e);
	assert_string_equal(str_of(t, "status"), "claimed");
	assert_string_equal(str_of(t, "owner"), "b");
	assert_true(json_is_null(json_object_get(t, "progress")));
	json_decref(t);
	/* the current epoch works */
	t = store_task_update(s, id, ch, "b", 2, 6, &e);
	assert_non_null(t);
	assert_string_equal(str_of(t, "progress"), "half");
	json_decref(t);
	json_decref(ch);
}

/* Completing twice with the same epoch is one completion; anything else stays a conflict. */
static void
test_repeated_completion(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	long long id = create(s, "twice", 1);
	json_t *t, *r1 = json_pack("{s:i}", "n", 1), *r2 = json_pack("{s:i}", "n", 2);
	int repeated = -1;

	claim(s, "a", id, 0, 2);
	t = store_task_complete(s, id, "a", 1, r1, 3, &repeated, &e);
	assert_non_null(t);
	assert_int_equal(repeated, 0);
	assert_string_equal(str_of(t, "status"), "done");
	assert_string_equal(str_of(t, "owner"), "a"); /* a done task keeps its owner */
	json_decref(t);
	/* again, by the owner or with no agent: the task unchanged */
	t = store_task_complete(s, id, "a", 1, r2, 9, &repeated, &e);
	assert_non_null(t);
	assert_int_equal(repeated, 1);
	assert_int_equal(int_of(json_object_get(t, "result"), "n"), 1);
	assert_int_equal(int_of(t, "completed_ms"), 3);
	json_decref(t);
	repeated = -1;
	t = store_task_complete(s, id, NULL, 1, r2, 9, &repeated, &e);
	assert_non_null(t);
	assert_int_equal(repeated, 1);
	json_decref(t);
	/* another agent, another epoch, or no epoch: a conflict */
	assert_null(store_task_complete(s, id, "b", 1, r2, 9, &repeated, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_int_equal(repeated, 0);
	assert_null(store_task_complete(s, id, "a", 2, r2, 9, &repeated, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_null(store_task_complete(s, id, "a", 0, r2, 9, &repeated, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	t = store_task_get(s, id, &e);
	assert_int_equal(int_of(json_object_get(t, "result"), "n"), 1);
	json_decref(t);
	json_decref(r1);
	json_decref(r2);
}

/* A failed run puts the task back with the attempt counted; at max_attempts it is failed. */
static void
test_run_failed(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	long long id = create(s, "flaky", 1);
	json_t *t, *ch;

	assert_int_equal(claim(s, "a", id, 2, 2), 1);
	/* not the claim's agent, not its epoch, no such task: refused, nothing counted */
	assert_null(store_task_run_failed(s, id, "b", 1, "boom", 3, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_null(store_task_run_failed(s, id, "a", 2, "boom", 3, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "stale"));
	assert_null(store_task_run_failed(s, 987654321, "a", 1, "boom", 3, &e));
	assert_string_equal(e.code, ERR_NOT_FOUND);
	t = store_task_get(s, id, &e);
	assert_int_equal(int_of(t, "attempts"), 0);
	assert_string_equal(str_of(t, "status"), "claimed");
	json_decref(t);

	/* the first failure: open again, attempts 1, the reason kept */
	t = store_task_run_failed(s, id, "a", 1, "HTTP 400 from the model", 4, &e);
	assert_non_null(t);
	assert_string_equal(str_of(t, "status"), "open");
	assert_int_equal(int_of(t, "attempts"), 1);
	assert_string_equal(str_of(t, "last_error"), "HTTP 400 from the model");
	assert_true(json_is_null(json_object_get(t, "owner")));
	assert_true(json_is_null(json_object_get(t, "lease_expires_ms")));
	assert_int_equal(int_of(t, "epoch"), 1);
	json_decref(t);
	assert_true(is_ready(s, id));
	/* counted once: the same run failing again is a conflict (no longer claimed) */
	assert_null(store_task_run_failed(s, id, "a", 1, "again", 5, &e));
	assert_string_equal(e.code, ERR_CONFLICT);

	/* the second reaches max_attempts 2: failed, not ready, not claimable */
	assert_int_equal(claim(s, "b", id, 0, 6), 2);
	t = store_task_run_failed(s, id, "b", 2, "exit 1", 7, &e);
	assert_non_null(t);
	assert_string_equal(str_of(t, "status"), "failed");
	assert_int_equal(int_of(t, "attempts"), 2);
	assert_string_equal(str_of(t, "last_error"), "exit 1");
	json_decref(t);
	assert_false(is_ready(s, id));
	assert_null(store_task_claim(s, "c", id, 1000, 0, 8, &e));
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "is failed"));

	/* task-update cannot set failed; reopening starts the attempts over, keeps the error */
	ch = json_pack("{s:s}", "status", "failed");
	assert_null(store_task_update(s, id, ch, NULL, 0, 9, &e));
	assert_string_equal(e.code, ERR_INVALID_ARGUMENT);
	json_decref(ch);
	ch = json_pack("{s:s}", "status", "open");
	t = store_task_update(s, id, ch, NULL, 0, 10, &e);
	json_decref(ch);
	assert_non_null(t);
	assert_string_equal(str_of(t, "status"), "open");
	assert_int_equal(int_of(t, "attempts"), 0);
	assert_string_equal(str_of(t, "last_error"), "exit 1");
	json_decref(t);
	assert_true(is_ready(s, id));
	assert_int_equal(claim(s, "c", id, 0, 11), 3);
}

/* Without max_attempts a task fails after STORE_MAX_ATTEMPTS_DEFAULT (3) failed runs; the
 * reason is cut to 1024 bytes on a UTF-8 boundary. */
static void
test_run_failed_default_limit(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	long long id = create(s, "no limit", 1), epoch;
	char reason[1100];
	json_t *t;
	int i;

	memset(reason, 'x', 1023);
	strcpy(reason + 1023, "\xc3\xa9 and more after the cut");
	for (i = 0; i < 3; i++) {
		epoch = claim(s, "a", id, 0, 10 + i);
		t = store_task_run_failed(s, id, "a", epoch, reason, 20 + i, &e);
		assert_non_null(t);
		assert_true(json_is_null(json_object_get(t, "max_attempts")));
		assert_string_equal(str_of(t, "status"), i < 2 ? "open" : "failed");
		assert_int_equal(int_of(t, "attempts"), i + 1);
		/* 1023 bytes of x, and the two-byte character that would end at 1025 dropped */
		assert_int_equal(strlen(str_of(t, "last_error")), 1023);
		json_decref(t);
	}
	/* NULL agent: whoever holds the claim */
	id = create(s, "another", 1);
	epoch = claim(s, "z", id, 0, 30);
	t = store_task_run_failed(s, id, NULL, epoch, "lost", 31, &e);
	assert_non_null(t);
	assert_int_equal(int_of(t, "attempts"), 1);
	json_decref(t);
}

/* The status counts name failed tasks. */
static void
test_counts_failed(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	long long id = create(s, "counted", 1), before;
	json_t *c, *t;

	c = store_counts(s);
	before = int_of(json_object_get(c, "tasks"), "failed");
	json_decref(c);
	claim(s, "a", id, 1, 2);
	t = store_task_run_failed(s, id, "a", 1, "once is enough", 3, &e);
	assert_non_null(t);
	assert_string_equal(str_of(t, "status"), "failed");
	json_decref(t);
	c = store_counts(s);
	assert_int_equal(int_of(json_object_get(c, "tasks"), "failed"), before + 1);
	json_decref(c);
}

/* Agents carry the task and epoch of a bound run and its last message, null until set. */
static void
test_agent_run_fields(void **state)
{
	struct store *s = store_of(state);
	struct store_err e;
	json_t *a, *f;
	char id[64];

	snprintf(id, sizeof id, "runs-agent-%d", (int)getpid());
	f = json_pack("{s:s, s:s}", "kind", "spawned", "state", "working");
	a = store_agent_put(s, id, f, 1, &e);
	json_decref(f);
	assert_non_null(a);
	assert_true(json_is_null(json_object_get(a, "task")));
	assert_true(json_is_null(json_object_get(a, "epoch")));
	assert_true(json_is_null(json_object_get(a, "last_message")));
	json_decref(a);
	f = json_pack("{s:I, s:I, s:s}", "task", (json_int_t)42, "epoch", (json_int_t)7,
	              "last_message", "all done");
	a = store_agent_put(s, id, f, 2, &e);
	json_decref(f);
	assert_non_null(a);
	assert_int_equal(int_of(a, "task"), 42);
	assert_int_equal(int_of(a, "epoch"), 7);
	assert_string_equal(str_of(a, "last_message"), "all done");
	json_decref(a);
	a = store_agent_get(s, id, &e);
	assert_int_equal(int_of(a, "epoch"), 7);
	json_decref(a);
	assert_int_equal(store_agent_delete(s, id), 1);
}

#define BOTH(fn)                                                                                   \
	cmocka_unit_test_setup_teardown(fn, sqlite_setup, fx_teardown),                            \
	        cmocka_unit_test_setup_teardown(fn, pg_setup, fx_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        BOTH(test_epoch_per_claim),          BOTH(test_stale_epoch),
	        BOTH(test_repeated_completion),      BOTH(test_run_failed),
	        BOTH(test_run_failed_default_limit), BOTH(test_counts_failed),
	        BOTH(test_agent_run_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
