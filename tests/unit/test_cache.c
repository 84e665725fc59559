/*
 * test_cache.c -- SHA-256 and the three-region prompt assembler.
 *
 * Byte stability is checked three ways: the same value built with keys
 * inserted in different orders, across repeated assemblies, and across
 * processes (this program re-executes itself with --emit, so each run gets
 * its own jansson hash seed).  The drift finder is checked on a deliberate
 * one-byte change at a known offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/prompt.h"
#include "cache/sha256.h"

static const char *test_argv0;

static void
test_sha256_vectors(void **state)
{
	char hex[SHA256_HEX_LEN + 1];
	struct sha256_ctx c;
	uint8_t d[SHA256_DIGEST_LEN];
	char *million;
	int i;

	(void)state;
	sha256_hex("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	assert_string_equal(hex,
	                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* 64 bytes: padding needs a second block */
	sha256_hex("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 64, hex);
	assert_string_equal(hex,
	                    "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
	million = malloc(1000000);
	memset(million, 'a', 1000000);
	sha256_hex(million, 1000000, hex);
	assert_string_equal(hex,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* the same in odd-sized pieces through the streaming interface */
	sha256_init(&c);
	for (i = 0; i < 1000000; i += 997)
		sha256_update(&c, million + i, 1000000 - i < 997 ? (size_t)(1000000 - i) : 997);
	sha256_final(&c, d);
	assert_int_equal(d[0], 0xcd);
	assert_int_equal(d[31], 0xd0);
	free(million);
}

/* One prompt input, its keys inserted forwards or backwards. */
static json_t *
test_input(int reverse)
{
	const char *tool_json =
	        "{\"type\":\"function\",\"function\":{\"name\":\"task_claim\",\"description\":"
	        "\"Claim a task\",\"parameters\":{\"type\":\"object\",\"properties\":{\"task_id\":"
	        "{\"type\":\"integer\"},\"agent\":{\"type\":\"string\"}},\"required\":[\"task_id\"]"
	        "}}}";
	json_t *in = json_object(), *tool = json_loads(tool_json, 0, NULL);
	json_t *s1 = json_pack("{s:s, s:s, s:[s,s]}", "name", "zeta", "description", "Z skill",
	                       "tags", "a", "b");
	json_t *s2 = json_pack("{s:s, s:s}", "name", "alpha", "description", "A skill: é ü");
	json_t *ctx = json_object();

	if (!reverse) {
		json_object_set_new(ctx, "repo", json_string("colibri"));
		json_object_set_new(ctx, "branch", json_string("main"));
		json_object_set_new(in, "system", json_string("You are careful.\nBe brief."));
		json_object_set_new(in, "tools", json_pack("[o]", tool));
		json_object_set_new(in, "skills", json_pack("[o,o]", s1, s2));
		json_object_set_new(in, "context", ctx);
		json_object_set_new(in, "turn", json_pack("{s:s, s:f}", "user", "hi", "t", 0.5));
	} else {
		json_object_set_new(in, "turn", json_pack("{s:f, s:s}", "t", 0.5, "user", "hi"));
		json_object_set_new(ctx, "branch", json_string("main"));
		json_object_set_new(ctx, "repo", json_string("colibri"));
		json_object_set_new(in, "context", ctx);
		json_object_set_new(in, "skills", json_pack("[o,o]", s2, s1));
		json_object_set_new(in, "tools", json_pack("[o]", tool));
		json_object_set_new(in, "system", json_string("You are careful.\nBe brief."));
	}
	return in;
}

static char *
test_emit_string(int reverse)
{
	struct prompt p;
	char *cause, *out;
	json_t *in = test_input(reverse);

	if (prompt_assemble(in, 0, &p, &cause) == -1) {
		json_decref(in);
		return cause;
	}
	if (asprintf(&out, "%s %s %s\n%s", p.region[0].sha256, p.region[1].sha256,
	             p.region[2].sha256, p.bytes) == -1)
		out = NULL;
	prompt_free(&p);
	json_decref(in);
	return out;
}

static void
test_prompt_insertion_order(void **state)
{
	char *a, *b;

	(void)state;
	a = test_emit_string(0);
	b = test_emit_string(1);
	assert_non_null(a);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void
test_prompt_layout(void **state)
{
	struct prompt p;
	char *cause = NULL;
	json_t *in = test_input(0);
	char hex[SHA256_HEX_LEN + 1];
	int i;

	(void)state;
	assert_int_equal(prompt_assemble(in, 0, &p, &cause), 0);
	assert_null(cause);
	assert_string_equal(p.region[0].bytes,
	                    "{\"system\":\"You are careful.\\nBe brief.\",\"tools\":[{\"function\":"
	                    "{\"description\":\"Claim a task\",\"name\":\"task_claim\","
	                    "\"parameters\":{\"properties\":{\"agent\":{\"type\":\"string\"},"
	                    "\"task_id\":{\"type\":\"integer\"}},\"required\":[\"task_id\"],"
	                    "\"type\":\"object\"}},\"type\":\"function\"}]}\n");
	/* skills sorted by name: alpha before zeta */
	assert_string_equal(p.region[1].bytes,
	                    "{\"context\":{\"branch\":\"main\",\"repo\":\"colibri\"},\"skills\":["
	                    "{\"description\":\"A skill: é ü\",\"name\":\"alpha\"},"
	                    "{\"description\":\"Z skill\",\"name\":\"zeta\",\"tags\":[\"a\",\"b\"]}"
	                    "]}\n");
	assert_string_equal(p.region[2].bytes, "{\"turn\":{\"t\":0.5,\"user\":\"hi\"}}\n");
	for (i = 0; i < PROMPT_NREGIONS; i++) {
		sha256_hex(p.region[i].bytes, p.region[i].len, hex);
		assert_string_equal(hex, p.region[i].sha256);
		assert_memory_equal(p.bytes + p.region[i].offset, p.region[i].bytes,
		                    p.region[i].len);
	}
	assert_int_equal(p.len, p.region[0].len + p.region[1].len + p.region[2].len);
	prompt_free(&p);
	json_decref(in);
}

/* Run this program with --emit and return its stdout. */
static char *
test_run_emit(const char *mode)
{
	char cmd[4096], *out = NULL;
	size_t len = 0, cap = 0, n;
	FILE *f;

	snprintf(cmd, sizeof cmd, "'%s' --emit %s", test_argv0, mode);
	f = popen(cmd, "r");
	assert_non_null(f);
	for (;;) {
		if (cap - len < 4096)
			out = realloc(out, cap = cap * 2 + 4096);
		if ((n = fread(out + len, 1, cap - len - 1, f)) == 0)
			break;
		len += n;
	}
	out[len] = '\0';
	assert_int_equal(pclose(f), 0);
	return out;
}

static void
test_prompt_across_processes(void **state)
{
	char *a, *b, *c, *here;

	(void)state;
	a = test_run_emit("forward");
	b = test_run_emit("reverse");
	c = test_run_emit("forward");
	here = test_emit_string(1);
	assert_true(strlen(a) > 200);
	assert_string_equal(a, b);
	assert_string_equal(a, c);
	assert_string_equal(a, here);
	free(a);
	free(b);
	free(c);
	free(here);
}

static void
test_prompt_volatile_rejected(void **state)
{
	json_t *in = json_pack("{s:s, s:[{s:s, s:s}]}", "system", "x", "tools", "name", "t",
	                       "created_at", "2026-01-01");
	struct prompt p;
	char *cause = NULL;

	(void)state;
	assert_int_equal(prompt_assemble(in, 0, &p, &cause), -1);
	assert_string_equal(cause, "tools[0].created_at: volatile field not allowed in a stable "
	                           "region");
	assert_null(p.bytes);
	free(cause);
	json_decref(in);

	in = json_pack("{s:{s:s, s:i}}", "context", "repo", "r", "id", 7);
	assert_int_equal(prompt_assemble(in, 0, &p, &cause), -1);
	assert_string_equal(cause, "context.id: volatile field not allowed in a stable region");
	free(cause);
	/* with stripping, the field goes and the rest stays */
	assert_int_equal(prompt_assemble(in, PROMPT_STRIP_VOLATILE, &p, &cause), 0);
	assert_int_equal(p.stripped, 1);
	assert_string_equal(p.region[1].bytes, "{\"context\":{\"repo\":\"r\"}}\n");
	prompt_free(&p);
	json_decref(in);

	/* the volatile turn may carry anything */
	in = json_pack("{s:{s:s, s:I}}", "turn", "id", "msg-1", "createdAt", (json_int_t)1);
	assert_int_equal(prompt_assemble(in, 0, &p, &cause), 0);
	assert_string_equal(p.region[0].bytes, "{}\n");
	prompt_free(&p);
	json_decref(in);
}

static void
test_prompt_bad_input(void **state)
{
	const char *bad[] = {
	        "[]", "{\"system\": 3}", "{\"tools\": [1]}", "{\"context\": [1]}", "{\"extra\": 1}",
	        NULL};
	struct prompt p;
	char *cause;
	int i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		json_t *in = json_loads(bad[i], 0, NULL);

		assert_non_null(in);
		cause = NULL;
		assert_int_equal(prompt_assemble(in, 0, &p, &cause), -1);
		assert_non_null(cause);
		free(cause);
		json_decref(in);
	}
}

static void
test_drift_one_byte(void **state)
{
	char prev[200], cur[200];
	struct prompt_drift d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof prev; i++)
		prev[i] = (char)('a' + i % 26);
	memcpy(cur, prev, sizeof cur);
	cur[137] = 'Z';
	assert_int_equal(prompt_drift_find(prev, sizeof prev, cur, sizeof cur, 24, &d), 1);
	assert_int_equal(d.offset, 137);
	assert_int_equal(strlen(d.before), 24);
	assert_memory_equal(d.before, prev + 113, 24);
	assert_int_equal(d.prev_after[0], prev[137]);
	assert_int_equal(d.cur_after[0], 'Z');
	assert_int_equal(strlen(d.cur_after), 24);
	prompt_drift_free(&d);

	assert_int_equal(prompt_drift_find(prev, sizeof prev, prev, sizeof prev, 24, &d), 0);
	assert_null(d.before);
	prompt_drift_free(&d);

	/* one a prefix of the other: the offset is the shorter length */
	assert_int_equal(prompt_drift_find(prev, 50, prev, 60, 8, &d), 1);
	assert_int_equal(d.offset, 50);
	assert_string_equal(d.prev_after, "");
	prompt_drift_free(&d);
}

static void
test_drift_regions(void **state)
{
	json_t *a = test_input(0), *b = test_input(1), *r;
	struct prompt pa, pb;
	char *cause;
	const char *base;

	(void)state;
	/* change one character of the system text: "careful" -> "carefuL" */
	json_object_set_new(b, "system", json_string("You are carefuL.\nBe brief."));
	assert_int_equal(prompt_assemble(a, 0, &pa, &cause), 0);
	assert_int_equal(prompt_assemble(b, 0, &pb, &cause), 0);
	base = strstr(pa.region[0].bytes, "careful");
	r = prompt_drift_regions(&pa, &pb, PROMPT_DRIFT_CONTEXT);
	assert_true(json_is_true(json_object_get(json_object_get(r, "stable"), "differs")));
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(r, "stable"), "offset")),
	        (base - pa.region[0].bytes) + 6);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(r, "stable"), "cur_after")),
	        "L.\\\\nBe brief.\",\"tools\":[");
	assert_true(json_is_false(json_object_get(json_object_get(r, "semi_stable"), "differs")));
	json_decref(r);
	prompt_free(&pa);
	prompt_free(&pb);
	json_decref(a);
	json_decref(b);
}

static void
test_escape_and_json(void **state)
{
	char *e = prompt_escape("a\\b\n\t\x01\xc3\xa9", 8);
	struct prompt p;
	char *cause;
	json_t *in = test_input(0), *j;

	(void)state;
	assert_string_equal(e, "a\\\\b\\n\\t\\x01\\xc3\\xa9");
	free(e);
	assert_int_equal(prompt_assemble(in, 0, &p, &cause), 0);
	j = prompt_to_json(&p);
	assert_int_equal(json_integer_value(json_object_get(j, "bytes")), p.len);
	assert_int_equal(json_array_size(json_object_get(j, "regions")), 3);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(j, "regions"), 1), "sha256")),
	                    p.region[1].sha256);
	assert_string_equal(json_string_value(json_object_get(j, "prompt")), p.bytes);
	json_decref(j);
	prompt_free(&p);
	json_decref(in);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sha256_vectors),
	        cmocka_unit_test(test_prompt_insertion_order),
	        cmocka_unit_test(test_prompt_layout),
	        cmocka_unit_test(test_prompt_across_processes),
	        cmocka_unit_test(test_prompt_volatile_rejected),
	        cmocka_unit_test(test_prompt_bad_input),
	        cmocka_unit_test(test_drift_one_byte),
	        cmocka_unit_test(test_drift_regions),
	        cmocka_unit_test(test_escape_and_json),
	};
	char *s;

	test_argv0 = argv[0];
	if (argc == 3 && strcmp(argv[1], "--emit") == 0) {
		s = test_emit_string(strcmp(argv[2], "reverse") == 0);
		fputs(s != NULL ? s : "error", stdout);
		free(s);
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
