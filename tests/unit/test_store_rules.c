/*
 * test_store_rules.c -- the task board's rules, below both backends, and
 * the loading of the PostgreSQL module.
 *
 * store-rules.c decides, as pure functions of rows, what both backends
 * allow: who may touch a claimed task, which status changes task-update
 * makes, what a dependency may be, when a task can be claimed, completed
 * or released; and it escapes the skills search's LIKE pattern.  Each rule
 * is shown allowing what it must and refusing the rest with the protocol
 * error code a client sees; task tags are checked and written in their
 * canonical form.  The module half shows that a module from
 * another build (a wrong ABI number) is refused with a clear error and
 * never called.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "store/store-rules.h"
#include "store/store.h"

static json_t *
task(const char *status, const char *owner)
{
	return json_pack("{s:s, s:s?}", "status", status, "owner", owner);
}

static void
test_owner(void **state)
{
	json_t *t = task("claimed", "a1");
	struct store_err e = {0};

	(void)state;
	assert_int_equal(store_rule_owner(t, "a1", 7, &e), 0);
	assert_int_equal(store_rule_owner(t, NULL, 7, &e), 0); /* no agent: an admin's change */
	assert_int_equal(store_rule_owner(t, "a2", 7, &e), -1);
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_string_equal(e.msg, "task 7 is not claimed by a2");
	json_decref(t);
	t = task("open", NULL);
	assert_int_equal(store_rule_owner(t, "a1", 8, &e), -1);
	json_decref(t);
}

static void
test_claimable_and_claimed(void **state)
{
	json_t *open = task("open", NULL), *claimed = task("claimed", "a1"),
	       *done = task("done", "a1");
	struct store_err e = {0};

	(void)state;
	assert_int_equal(store_rule_claimable(open, 1, &e), 0);
	assert_int_equal(store_rule_claimable(claimed, 1, &e), -1);
	assert_string_equal(e.msg, "task 1 is claimed");
	assert_int_equal(store_rule_claimed(claimed, "a1", 2, &e), 0);
	assert_int_equal(store_rule_claimed(claimed, NULL, 2, &e), 0);
	assert_int_equal(store_rule_claimed(claimed, "a2", 2, &e), -1);
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_int_equal(store_rule_claimed(open, NULL, 3, &e), -1);
	assert_string_equal(e.msg, "task 3 is open, not claimed");
	assert_int_equal(store_rule_claimed(done, "a1", 4, &e), -1);
	assert_string_equal(e.msg, "task 4 is done, not claimed");
	json_decref(open);
	json_decref(claimed);
	json_decref(done);
}

static void
test_status_change(void **state)
{
	struct store_err e = {0};

	(void)state;
	assert_int_equal(store_rule_status_change("open", "cancelled", 1, &e), 0);
	assert_int_equal(store_rule_status_change("claimed", "cancelled", 1, &e), 0);
	assert_int_equal(store_rule_status_change("cancelled", "open", 1, &e), 0);
	assert_int_equal(store_rule_status_change("open", "done", 1, &e), -1);
	assert_string_equal(e.code, ERR_INVALID_ARGUMENT);
	assert_int_equal(store_rule_status_change("open", NULL, 1, &e), -1);
	assert_string_equal(e.code, ERR_INVALID_ARGUMENT);
	assert_int_equal(store_rule_status_change("done", "cancelled", 5, &e), -1);
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_string_equal(e.msg, "task 5 is done");
	assert_int_equal(store_rule_status_change("claimed", "open", 6, &e), -1);
	assert_string_equal(e.msg, "task 6 is claimed; only a cancelled or failed task reopens");
}

/* A board of tasks 1..3 where 2 depends on 1 (so 1 -> 2 would close a cycle). */
static int
probe_exists(void *ctx, long long id)
{
	(void)ctx;
	return id >= 1 && id <= 3;
}

static int
probe_cycles(void *ctx, long long task_id, long long dep)
{
	int *asked = ctx;

	(*asked)++;
	return task_id == 1 && dep == 2;
}

static void
test_dep(void **state)
{
	int asked = 0;
	struct store_dep_probe p = {probe_exists, probe_cycles, &asked};
	struct store_err e = {0};
	json_t *v;
	long long dep = 0;

	(void)state;
	v = json_integer(3);
	assert_int_equal(store_rule_dep(2, v, &p, &dep, &e), 0);
	assert_int_equal(dep, 3);
	json_decref(v);
	v = json_string("3");
	assert_int_equal(store_rule_dep(2, v, &p, &dep, &e), -1);
	assert_string_equal(e.code, ERR_INVALID_ARGUMENT);
	json_decref(v);
	v = json_integer(9);
	asked = 0;
	assert_int_equal(store_rule_dep(2, v, &p, &dep, &e), -1);
	assert_string_equal(e.code, ERR_NOT_FOUND);
	assert_string_equal(e.msg, "no task 9 (in depends_on)");
	assert_int_equal(asked, 0); /* no cycle query for a task that does not exist */
	json_decref(v);
	v = json_integer(2);
	assert_int_equal(store_rule_dep(1, v, &p, &dep, &e), -1);
	assert_string_equal(e.code, ERR_CONFLICT);
	assert_string_equal(e.msg, "task 1 depending on 2 makes a cycle");
	json_decref(v);
	v = json_integer(3);
	assert_int_equal(store_rule_dep(3, v, &p, &dep, &e), -1); /* on itself */
	assert_string_equal(e.code, ERR_CONFLICT);
	json_decref(v);
}

/* Tags: the column's canonical text, or invalid_argument naming what is wrong. */
static void
tags_bad(const char *json, const char *want)
{
	struct store_err e;
	json_t *t = json_loads(json, JSON_DECODE_ANY, NULL);

	assert_non_null(t);
	assert_null(store_rule_tags(t, &e));
	assert_string_equal(e.code, ERR_INVALID_ARGUMENT);
	if (strstr(e.msg, want) == NULL)
		fail_msg("%s: %s (wanted %s)", json, e.msg, want);
	json_decref(t);
}

static void
test_tags(void **state)
{
	struct store_err e;
	json_t *t = json_pack("[s,s,s]", "a", "B.c:d-e_9", "x");
	char *s;
	int i;

	(void)state;
	s = store_rule_tags(NULL, &e);
	assert_string_equal(s, "[]");
	free(s);
	s = store_rule_tags(t, &e);
	assert_string_equal(s, "[\"a\",\"B.c:d-e_9\",\"x\"]");
	free(s);
	json_array_clear(t);
	for (i = 0; i < STORE_TAGS_MAX; i++)
		json_array_append_new(t, json_sprintf("t%d", i));
	s = store_rule_tags(t, &e); /* 16: the most */
	assert_non_null(s);
	free(s);
	json_decref(t);
	tags_bad("\"a\"", "tags must be an array");
	tags_bad("[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\","
	         "\"m\",\"n\",\"o\",\"p\",\"q\"]",
	         "at most 16");
	tags_bad("[\"\"]", "tags[0]");
	tags_bad("[\"ok\", \"sp ace\"]", "tags[1]");
	tags_bad("[\"x/y\"]", "tags[0]");
	tags_bad("[\"\\u00e9\"]", "tags[0]");
	tags_bad("[1]", "tags[0]");
	tags_bad("[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]",
	         "tags[0]");
	tags_bad("[\"d\", \"d\"]", "tag d is given twice");
	assert_int_equal(
	        store_rule_tag_ok(
	                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
	        1);
}

static void
test_like_substring(void **state)
{
	char *l;

	(void)state;
	l = store_like_substring("a%b_c\\d");
	assert_string_equal(l, "%a\\%b\\_c\\\\d%");
	free(l);
	l = store_like_substring("");
	assert_string_equal(l, "%%");
	free(l);
}

static void
test_module_of_another_build_is_refused(void **state)
{
	struct store_err e = {0};

	(void)state;
	/* The fake module's directory comes first in the search (store-module.h). */
	assert_int_equal(setenv("COLIBRI_STORE_MODULE_DIR", FAKE_STORE_MODULE_DIR, 1), 0);
	assert_null(store_open("postgresql:///nowhere", &e));
	assert_string_equal(e.code, ERR_INVALID_ARGUMENT);
	assert_non_null(strstr(e.msg, "no PostgreSQL backend"));
	assert_non_null(strstr(e.msg, "from another build"));
	assert_string_equal(store_backends_built(), "sqlite");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_owner),
	        cmocka_unit_test(test_claimable_and_claimed),
	        cmocka_unit_test(test_status_change),
	        cmocka_unit_test(test_dep),
	        cmocka_unit_test(test_like_substring),
	        cmocka_unit_test(test_tags),
	        cmocka_unit_test(test_module_of_another_build_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
