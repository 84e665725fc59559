/*
 * test_store_retention.c -- the events log's compaction through store.h.
 *
 * Retention (src/daemon/retention.c) leans on what store_event_compact
 * promises: it deletes a prefix of the log by seq -- never a hole, even when
 * the events' times are out of order -- of at most a batch, raises the floor
 * (store_event_floor) to where the prefix ended, keeps the newest event
 * always, and honours the row cap; store_reclaim gives free pages back on
 * a database created with auto_vacuum=incremental.  These are the edges
 * the integration tests cannot steer (out-of-order times, batch bounds), on
 * a fresh SQLite database; the PostgreSQL SQL runs under the integration
 * suite's PostgreSQL list (test_retention.py).
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

#include "store/store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct store_err e;

	strcpy(f->dir, "/tmp/colibri-test-retention-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/db.sqlite", f->dir);
	f->s = store_open(f->path, &e);
	if (f->s == NULL)
		fail_msg("store_open: %s", e.msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
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

/* Append one event per ts, in one transaction. */
static void
append(struct store *s, const int64_t *ts, size_t n, const char *data)
{
	struct store_err e;
	size_t i;

	assert_int_equal(store_begin(s, &e), 0);
	for (i = 0; i < n; i++)
		assert_true(store_event_append(s, "task.created", data, ts[i], &e) > 0);
	assert_int_equal(store_commit(s, &e), 0);
}

/* One compaction call in its own transaction. */
static long long
compact(struct store *s, int64_t before, long long keep, long long batch)
{
	struct store_err e;
	long long n;

	assert_int_equal(store_begin(s, &e), 0);
	n = store_event_compact(s, before, keep, batch, &e);
	if (n < 0)
		fail_msg("compact: %s", e.msg);
	assert_int_equal(store_commit(s, &e), 0);
	return n;
}

static void
test_prefix_stops_at_a_young_event(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	const int64_t ts[] = {100, 100, 900, 100, 100, 900};

	append(s, ts, 6, "{}");
	assert_int_equal(store_event_floor(s), 0);
	/* Seq 3 is young: 4 and 5, old as they are, stay behind it (a prefix, no hole). */
	assert_int_equal(compact(s, 500, 0, 1000), 2);
	assert_int_equal(store_event_floor(s), 2);
	assert_int_equal(store_event_oldest(s), 3);
	assert_int_equal(compact(s, 500, 0, 1000), 0);
	/* Everything old: all but the newest go. */
	assert_int_equal(compact(s, 1000, 0, 1000), 3);
	assert_int_equal(store_event_floor(s), 5);
	assert_int_equal(store_event_oldest(s), 6);
	assert_int_equal(store_event_last(s), 6);
	/* The next seq follows the last, never reuses a deleted one. */
	append(s, ts, 1, "{}");
	assert_int_equal(store_event_last(s), 7);
}

static void
test_batches_and_the_newest(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	int64_t ts[10];
	long long n, total = 0, calls = 0;
	size_t i;

	for (i = 0; i < 10; i++)
		ts[i] = 1;
	append(s, ts, 10, "{}");
	while ((n = compact(s, 5, 0, 3)) > 0) {
		assert_true(n <= 3);
		total += n;
		calls++;
		assert_int_equal(store_event_floor(s), total);
	}
	assert_int_equal(total, 9);
	assert_int_equal(calls, 3);
	assert_int_equal(store_event_oldest(s), 10);
	/* Nothing asked: nothing done. */
	assert_int_equal(compact(s, 0, 0, 1000), 0);
}

static void
test_row_cap(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	int64_t ts[10];
	size_t i;

	for (i = 0; i < 10; i++)
		ts[i] = 1000;
	append(s, ts, 10, "{}");
	assert_int_equal(compact(s, 0, 20, 1000), 0); /* under the cap */
	assert_int_equal(compact(s, 0, 4, 1000), 6);
	assert_int_equal(store_event_floor(s), 6);
	assert_int_equal(store_event_oldest(s), 7);
	/* The age limit and the cap together: whichever reaches further. */
	assert_int_equal(compact(s, 1001, 4, 1000), 3);
	assert_int_equal(store_event_oldest(s), 10);
}

static void
test_reclaim_gives_pages_back(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	static char big[4096];
	struct store_err e;
	int64_t ts[50];
	long long before, after, freed = 0, n;
	size_t i;

	memset(big, 'x', sizeof big - 3);
	big[0] = '"';
	big[sizeof big - 3] = '"';
	for (i = 0; i < 50; i++)
		ts[i] = 1;
	append(s, ts, 50, big);
	before = store_db_bytes(s);
	assert_true(before > 50 * 4000);
	while (compact(s, 2, 0, 1000) > 0)
		;
	assert_int_equal(store_event_oldest(s), 50);
	do {
		assert_int_equal(store_begin(s, &e), 0);
		n = store_reclaim(s, 16, &e);
		assert_true(n >= 0 && n <= 16);
		assert_int_equal(store_commit(s, &e), 0);
		freed += n;
	} while (n > 0);
	after = store_db_bytes(s);
	assert_true(freed > 0);
	assert_true(after < before / 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_prefix_stops_at_a_young_event),
	        T(test_batches_and_the_newest),
	        T(test_row_cap),
	        T(test_reclaim_gives_pages_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
