/*
 * test_jsonw.c -- the compact writer against jansson's json_dumps: the same
 * bytes for every kind of value, every escaped byte, nesting and key order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"

static void
same_as_jansson(json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	struct buf b;

	buf_init(&b);
	assert_int_equal(jsonw_dump(&b, v), 0);
	assert_non_null(want);
	assert_string_equal(buf_cstr(&b), want);
	free(want);
	buf_free(&b);
	json_decref(v);
}

static void
test_scalars(void **state)
{
	(void)state;
	same_as_jansson(json_null());
	same_as_jansson(json_true());
	same_as_jansson(json_false());
	same_as_jansson(json_integer(0));
	same_as_jansson(json_integer(-9223372036854775807LL - 1));
	same_as_jansson(json_integer(9223372036854775807LL));
	same_as_jansson(json_real(0.0));
	same_as_jansson(json_real(1e20));
	same_as_jansson(json_real(-1.5e-7));
	same_as_jansson(json_real(0.1));
	same_as_jansson(json_string(""));
}

static void
test_every_byte_escapes_as_jansson(void **state)
{
	char s[2];
	int c;

	(void)state;
	for (c = 1; c < 0x80; c++) {
		s[0] = (char)c;
		s[1] = '\0';
		same_as_jansson(json_string(s));
	}
	same_as_jansson(json_stringn("a\0b", 3));
	same_as_jansson(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa6 / \xe2\x80\xa8"));
	same_as_jansson(json_string("say \"hi\"\\n\t\r\b\f\x01\x1f\x7f end"));
}

static void
test_nesting_and_order(void **state)
{
	json_t *v;

	(void)state;
	same_as_jansson(json_object());
	same_as_jansson(json_array());
	v = json_pack("{s:i, s:s, s:[i, {s:n, s:b}, []], s:{}, s:f}", "z", 1, "a", "x\ny", "m", 2,
	              "q", "t", 1, "e", "r", 2.5);
	same_as_jansson(v);
	v = json_loads("{\"id\":7,\"ok\":true,\"result\":{\"items\":[{\"id\":1,\"title\":"
	               "\"write \\\"it\\\"\",\"depends_on\":[],\"result\":null}]}}",
	               0, NULL);
	assert_non_null(v);
	same_as_jansson(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_scalars),
	        cmocka_unit_test(test_every_byte_escapes_as_jansson),
	        cmocka_unit_test(test_nesting_and_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
