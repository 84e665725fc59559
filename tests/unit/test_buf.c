/*
 * test_buf.c -- the growable buffer and small utilities.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"

static void
test_buf_grow_and_consume(void **state)
{
	struct buf b;
	int i;

	(void)state;
	buf_init(&b);
	for (i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_int_equal(buf_used(&b), 3890);
	assert_memory_equal(buf_head(&b), "0,1,2,", 6);
	buf_consume(&b, 2);
	assert_memory_equal(buf_head(&b), "1,2,", 4);
	buf_consume(&b, buf_used(&b));
	assert_int_equal(buf_used(&b), 0);
	buf_adds(&b, "x");
	assert_string_equal(buf_cstr(&b), "x");
	buf_free(&b);
}

static void
test_path_helpers(void **state)
{
	char *p;

	(void)state;
	p = path_join("/a/b///", "/c");
	assert_string_equal(p, "/a/b/c");
	free(p);
	p = path_normalize_trailing("/jails/x///");
	assert_string_equal(p, "/jails/x");
	free(p);
	p = path_normalize_trailing("/");
	assert_string_equal(p, "/");
	free(p);
	assert_true(is_shell_identifier("FIRST_PROOF_KEY"));
	assert_true(is_shell_identifier("_x1"));
	assert_false(is_shell_identifier("1abc"));
	assert_false(is_shell_identifier("a-b"));
	assert_false(is_shell_identifier(""));
	assert_false(is_shell_identifier("A B"));
}

static void
test_utf8_scrub(void **state)
{
	char a[] = "caf\xc3\xa9 ok", b[] = "cut \xe2\x82", c[] = "bad \xff\xfe x",
	     d[] = "over \xc0\xaf long", e[] = "surrogate \xed\xa0\x80.";

	(void)state;
	assert_string_equal(utf8_scrub(a), "caf\xc3\xa9 ok");
	assert_string_equal(utf8_scrub(b), "cut ");
	assert_string_equal(utf8_scrub(c), "bad ?? x");
	assert_string_equal(utf8_scrub(d), "over ?? long");
	assert_string_equal(utf8_scrub(e), "surrogate ???.");
}

/* One cut at a UTF-8 boundary for every copy that truncates (util.h). */
static void
test_utf8_cut_len(void **state)
{
	static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a é € 😀 */
	size_t n = sizeof s - 1;

	(void)state;
	assert_int_equal(utf8_cut_len(s, n, 100), n); /* fits */
	assert_int_equal(utf8_cut_len(s, n, n), n);
	assert_int_equal(utf8_cut_len(s, n, 0), 0);
	assert_int_equal(utf8_cut_len(s, n, 1), 1); /* after "a" */
	assert_int_equal(utf8_cut_len(s, n, 2), 1); /* inside é: back to its start */
	assert_int_equal(utf8_cut_len(s, n, 3), 3); /* after é */
	assert_int_equal(utf8_cut_len(s, n, 4), 3); /* inside € */
	assert_int_equal(utf8_cut_len(s, n, 5), 3);
	assert_int_equal(utf8_cut_len(s, n, 6), 6); /* after € */
	assert_int_equal(utf8_cut_len(s, n, 9), 6); /* three bytes of 😀 */
	assert_int_equal(utf8_cut_len(s, n, 10), 10);
	/* a buffer cut by someone else: its incomplete last sequence goes */
	assert_int_equal(utf8_cut_len(s, 8, 8), 6);
	assert_int_equal(utf8_cut_len("x\xe2\x82", 3, 3), 1);
	/* bytes that are not UTF-8 are kept, not eaten */
	assert_int_equal(utf8_cut_len("\x80\x80\x80\x80\x80", 5, 5), 5);
	assert_int_equal(utf8_cut_len("ab\xff", 3, 3), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_buf_grow_and_consume),
	        cmocka_unit_test(test_path_helpers),
	        cmocka_unit_test(test_utf8_scrub),
	        cmocka_unit_test(test_utf8_cut_len),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
