/*
 * test_jsonr.c -- the fast request reader against jansson's json_loadb.
 * Whenever jsonr_loadb builds a value, json_loadb(buf, len, 0) must build
 * the same one: json_equal, and the same json_dumps(JSON_COMPACT) bytes,
 * which also holds the key order.  Where jsonr_loadb gives up (NULL) is
 * pinned down too: never for the common subset of a request, always for
 * input outside it (reals, deep nesting, long escaped strings, long keys,
 * top level not an object) and for every error.  Tables, exhaustive runs
 * over bytes, UTF-8 sequences and \u escapes, and random values dumped by
 * jansson (then mutated) with a fixed seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonr.h"

/* What an input must give. */
enum want {
	ACCEPT,   /* jsonr_loadb builds it (and jansson the same value) */
	FALLBACK, /* jsonr_loadb gives up, json_loadb builds it */
	INVALID,  /* both give up */
};

struct input {
	const char *s;
	size_t n;
	enum want want;
};

#define IN(lit, w)                                                                                 \
	{                                                                                          \
		lit, sizeof lit - 1, w                                                             \
	}

static const struct input table[] = {
        /* Plain requests. */
        IN("{\"id\":1,\"cmd\":\"task-show\",\"args\":{\"id\":1}}", ACCEPT),
        IN("{\"id\":\"abc-1\",\"cmd\":\"ping\"}", ACCEPT),
        IN("{\"id\":\"\",\"cmd\":\"ping\",\"args\":{}}", ACCEPT),
        IN("{\"id\":42,\"cmd\":\"task-create\",\"args\":{\"title\":\"write it\",\"depends_on\":[1,"
           "2,3],\"tags\":[\"a\",\"b\"],\"parent\":null,\"urgent\":true,\"done\":false}}",
           ACCEPT),
        IN("{\"id\":7,\"cmd\":\"subscribe\",\"args\":{\"topics\":[\"task.\",\"agent.\"]}}", ACCEPT),
        /* Empty and nested containers. */
        IN("{}", ACCEPT),
        IN("{\"a\":[]}", ACCEPT),
        IN("{\"a\":{}}", ACCEPT),
        IN("{\"a\":[[],{},[{}],[[[]]]]}", ACCEPT),
        IN("{\"a\":{\"b\":{\"c\":[[[{\"d\":1}]]]}},\"e\":[{\"f\":[{\"g\":{}}]}]}", ACCEPT),
        IN("{\"\":\"\"}", ACCEPT),
        /* Whitespace everywhere. */
        IN(" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n, \"b\""
           ":{ } ,\"c\":[ ] ,\"d\" :\"x\"\t} \t\r\n",
           ACCEPT),
        IN("\n{\"id\":1}\n", ACCEPT),
        IN("{\"id\":1}\r\n", ACCEPT),
        /* Every escape, in values and in keys. */
        IN("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", ACCEPT),
        IN("{\"k\\\"\\\\\\/\\b\\f\\n\\r\\t\":1}", ACCEPT),
        IN("{\"a\":\"\\/\"}", ACCEPT),
        IN("{\"a\":\"x\\\\\"}", ACCEPT),
        IN("{\"a\":\"\\\"quoted\\\" and \\\\back\\\\slash\"}", ACCEPT),
        /* \u escapes: 1-, 2-, 3-byte characters and surrogate pairs. */
        IN("{\"u\":\"\\u0041\"}", ACCEPT),
        IN("{\"u\":\"\\u0001\\u001f\\u007f\"}", ACCEPT),
        IN("{\"u\":\"\\u00e9\\u00E9\\u0080\\u07FF\"}", ACCEPT),
        IN("{\"u\":\"\\u20AC\\u0800\\uFFFF\\uE000\\uD7FF\\u2028\"}", ACCEPT),
        IN("{\"u\":\"\\uD83D\\uDE00\"}", ACCEPT),
        IN("{\"u\":\"\\ud800\\udc00\\uDBFF\\uDFFF\"}", ACCEPT),
        IN("{\"\\u00e9\\uD83D\\uDC26\":\"\\u20ac\"}", ACCEPT),
        IN("{\"m\":\"a\\u00e9b\\nc\xc3\xa9\\uD83D\\uDE00d\"}", ACCEPT),
        /* Raw multi-byte UTF-8: 2, 3 and 4 bytes, first and last of each. */
        IN("{\"s\":\"caf\xc3\xa9\"}", ACCEPT),
        IN("{\"s\":\"\xc2\x80\xdf\xbf\"}", ACCEPT),
        IN("{\"s\":\"\xe2\x82\xac\xe0\xa0\x80\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"}", ACCEPT),
        IN("{\"s\":\"\xf0\x9f\x90\xa6\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}", ACCEPT),
        IN("{\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x90\xa6\":\"k\"}", ACCEPT),
        /* Duplicate keys: the last value, in the first key's place. */
        IN("{\"a\":1,\"b\":2,\"a\":3}", ACCEPT),
        IN("{\"a\":1,\"a\":2,\"a\":3}", ACCEPT),
        IN("{\"a\":{\"x\":1},\"b\":null,\"a\":[2]}", ACCEPT),
        IN("{\"o\":{\"k\":1,\"j\":2,\"k\":{\"k\":3,\"k\":4}},\"o\":{\"z\":0,\"y\":1,\"z\":2}}",
           ACCEPT),
        IN("{\"\\u0061\":1,\"a\":2}", ACCEPT),
        /* Literals and integers. */
        IN("{\"t\":true,\"f\":false,\"n\":null}", ACCEPT),
        IN("{\"a\":[true,false,null,0,-1,\"\"]}", ACCEPT),
        IN("{\"z\":-0}", ACCEPT),
        IN("{\"z\":0,\"o\":1,\"m\":-1,\"t\":10,\"h\":-100}", ACCEPT),
        IN("{\"max\":9223372036854775807}", ACCEPT),
        IN("{\"min\":-9223372036854775808}", ACCEPT),
        IN("{\"u\":1844674407370955160}", ACCEPT),

        /* Outside the subset, but JSON jansson reads. */
        IN("{\"r\":1.5}", FALLBACK),
        IN("{\"r\":0.5}", FALLBACK),
        IN("{\"r\":-0.0}", FALLBACK),
        IN("{\"r\":1e5}", FALLBACK),
        IN("{\"r\":1E5}", FALLBACK),
        IN("{\"r\":1e+5}", FALLBACK),
        IN("{\"r\":1.0e-3}", FALLBACK),
        IN("{\"r\":0e0}", FALLBACK),
        IN("{\"a\":[1,2.5]}", FALLBACK),
        IN("{\"id\":1,\"args\":{\"x\":[{\"y\":-3.25}]}}", FALLBACK),
        IN("[]", FALLBACK),
        IN("[1,2]", FALLBACK),
        IN(" [{\"a\":1}] ", FALLBACK),

        /* Outside the subset and not JSON jansson reads either. */
        IN("{\"big\":9223372036854775808}", INVALID),
        IN("{\"small\":-9223372036854775809}", INVALID),
        IN("{\"big\":18446744073709551615}", INVALID),
        IN("{\"big\":18446744073709551616}", INVALID),
        IN("{\"big\":100000000000000000000000000000}", INVALID),
        IN("{\"a\":01}", INVALID),
        IN("{\"a\":-01}", INVALID),
        IN("{\"a\":00}", INVALID),
        IN("{\"a\":\"\\u0000\"}", INVALID),
        IN("{\"\\u0000\":1}", INVALID),
        IN("{\"a\":\"\\uD800\"}", INVALID),
        IN("{\"a\":\"\\uDC00\"}", INVALID),
        IN("{\"a\":\"\\uDFFF\\uD800\"}", INVALID),
        IN("{\"a\":\"\\uD800\\uD800\"}", INVALID),
        IN("{\"a\":\"\\uD800x\"}", INVALID),
        IN("{\"a\":\"\\uD800\\n\"}", INVALID),
        IN("{\"a\":\"\\uD800\\u00\"}", INVALID),
        IN("\"a\"", INVALID),
        IN("1", INVALID),
        IN("-1", INVALID),
        IN("true", INVALID),
        IN("null", INVALID),

        /* Invalid input. */
        IN("", INVALID),
        IN(" \t\r\n", INVALID),
        IN("\0", INVALID),
        IN("{", INVALID),
        IN("}", INVALID),
        IN("{\"a\"", INVALID),
        IN("{\"a\":", INVALID),
        IN("{\"a\":1", INVALID),
        IN("{\"a\":\"x", INVALID),
        IN("{\"a\":\"x\\", INVALID),
        IN("{\"a\":[1,2}", INVALID),
        IN("{\"a\":{\"b\":1]}", INVALID),
        /* Overlong forms, encoded surrogates, past U+10FFFF, stray bytes. */
        IN("{\"s\":\"\xc0\xaf\"}", INVALID),
        IN("{\"s\":\"\xc1\xbf\"}", INVALID),
        IN("{\"s\":\"\xe0\x80\xaf\"}", INVALID),
        IN("{\"s\":\"\xe0\x9f\xbf\"}", INVALID),
        IN("{\"s\":\"\xf0\x80\x80\xaf\"}", INVALID),
        IN("{\"s\":\"\xf0\x8f\xbf\xbf\"}", INVALID),
        IN("{\"s\":\"\xed\xa0\x80\"}", INVALID),
        IN("{\"s\":\"\xed\xbf\xbf\"}", INVALID),
        IN("{\"s\":\"\xed\xa0\xbd\xed\xb8\x80\"}", INVALID),
        IN("{\"s\":\"\xf4\x90\x80\x80\"}", INVALID),
        IN("{\"s\":\"\xf5\x80\x80\x80\"}", INVALID),
        IN("{\"s\":\"\xf8\x88\x80\x80\x80\"}", INVALID),
        IN("{\"s\":\"\xfe\xff\"}", INVALID),
        IN("{\"s\":\"\x80\"}", INVALID),
        IN("{\"s\":\"\xbf\"}", INVALID),
        IN("{\"\xc0\x80\":1}", INVALID),
        /* Truncated sequences. */
        IN("{\"s\":\"\xc3\"}", INVALID),
        IN("{\"s\":\"\xe2\x82\"}", INVALID),
        IN("{\"s\":\"\xf0\x9f\x90\"}", INVALID),
        IN("{\"s\":\"\xe2\x82x\"}", INVALID),
        IN("{\"s\":\"\xf0\x9f\x90\xa6\xc3", INVALID),
        /* Bad escapes. */
        IN("{\"a\":\"\\x41\"}", INVALID),
        IN("{\"a\":\"\\a\"}", INVALID),
        IN("{\"a\":\"\\'\"}", INVALID),
        IN("{\"a\":\"\\U0041\"}", INVALID),
        IN("{\"a\":\"\\u12\"}", INVALID),
        IN("{\"a\":\"\\u12G4\"}", INVALID),
        IN("{\"a\":\"\\u\"}", INVALID),
        IN("{\"a\":\"\\\xc3\xa9\"}", INVALID),
        IN("{\"a\":\"\\\"}", INVALID),
        /* Control bytes in strings. */
        IN("{\"a\":\"\x01\"}", INVALID),
        IN("{\"a\":\"\x1f\"}", INVALID),
        IN("{\"a\":\"line\nbreak\"}", INVALID),
        IN("{\"a\":\"tab\there\"}", INVALID),
        IN("{\"a\":\"nul\0byte\"}", INVALID),
        IN("{\"a\x01\":1}", INVALID),
        /* Trailing garbage. */
        IN("{\"a\":1}x", INVALID),
        IN("{\"a\":1}{}", INVALID),
        IN("{\"a\":1}}", INVALID),
        IN("{} 1", INVALID),
        IN("{}\0", INVALID),
        IN("{}\xff", INVALID),
        IN("{},", INVALID),
        /* Missing commas and colons, trailing and leading commas. */
        IN("{\"a\":1 \"b\":2}", INVALID),
        IN("{\"a\":[1 2]}", INVALID),
        IN("{\"a\" 1}", INVALID),
        IN("{\"a\"::1}", INVALID),
        IN("{\"a\":1,}", INVALID),
        IN("{\"a\":[1,]}", INVALID),
        IN("{,\"a\":1}", INVALID),
        IN("{\"a\":[,1]}", INVALID),
        IN("{\"a\":1,,\"b\":2}", INVALID),
        /* Keys that are not strings, words that are not literals, bad numbers. */
        IN("{a:1}", INVALID),
        IN("{'a':1}", INVALID),
        IN("{1:1}", INVALID),
        IN("{null:1}", INVALID),
        IN("{\"a\":tru}", INVALID),
        IN("{\"a\":True}", INVALID),
        IN("{\"a\":nul}", INVALID),
        IN("{\"a\":falsey}", INVALID),
        IN("{\"a\":'x'}", INVALID),
        IN("{\"a\":+1}", INVALID),
        IN("{\"a\":-}", INVALID),
        IN("{\"a\":.5}", INVALID),
        IN("{\"a\":1.}", INVALID),
        IN("{\"a\":1e}", INVALID),
        IN("{\"a\":0x10}", INVALID),
        IN("{\"a\":1x}", INVALID),
        IN("{\"a\":NaN}", INVALID),
        IN("{\"a\":-Infinity}", INVALID),
        /* Whitespace jansson does not know, a byte order mark. */
        IN("{\"a\":\v1}", INVALID),
        IN("{\"a\":\f1}", INVALID),
        IN("\xef\xbb\xbf{}", INVALID),
};

static void
hex(const char *what, const char *s, size_t n)
{
	size_t i;

	print_message("%s (%zu bytes):", what, n);
	for (i = 0; i < n; i++)
		print_message(" %02x", (unsigned char)s[i]);
	print_message("\n");
}

/*
 * jsonr_loadb on buf: if it builds a value, json_loadb must build the same
 * one (same compact dump, so the same key order, and json_equal).  Returns
 * whether jsonr_loadb built it; *jansson_ok says whether json_loadb did.
 */
static int
differential(const char *buf, size_t len, int *jansson_ok)
{
	json_t *got = jsonr_loadb(buf, len);
	json_t *want = json_loadb(buf, len, 0, NULL);
	char *a, *b;

	*jansson_ok = want != NULL;
	if (got == NULL) {
		json_decref(want);
		return 0;
	}
	if (want == NULL) {
		hex("input", buf, len);
		a = json_dumps(got, JSON_COMPACT);
		fail_msg("jsonr_loadb built %s, json_loadb failed", a ? a : "(undumpable)");
	}
	a = json_dumps(got, JSON_COMPACT);
	b = json_dumps(want, JSON_COMPACT);
	assert_non_null(a);
	assert_non_null(b);
	if (strcmp(a, b) != 0 || !json_equal(got, want)) {
		hex("input", buf, len);
		fail_msg("jsonr_loadb: %s\njson_loadb:  %s", a, b);
	}
	free(a);
	free(b);
	json_decref(got);
	json_decref(want);
	return 1;
}

static void
expect(const char *buf, size_t len, enum want w)
{
	int jansson_ok, ours = differential(buf, len, &jansson_ok);
	enum want got = ours ? ACCEPT : jansson_ok ? FALLBACK : INVALID;
	static const char *const names[] = {"ACCEPT", "FALLBACK", "INVALID"};

	if (got != w) {
		hex("input", buf, len);
		fail_msg("want %s, got %s", names[w], names[got]);
	}
}

/* For inputs in the subset or invalid: jsonr_loadb builds a value where json_loadb does. */
static void
same_verdict(const char *buf, size_t len)
{
	int jansson_ok, ours = differential(buf, len, &jansson_ok);

	if (ours != jansson_ok) {
		hex("input", buf, len);
		fail_msg("jsonr_loadb %s, json_loadb %s", ours ? "built it" : "gave up",
		         jansson_ok ? "built it" : "failed");
	}
}

static void
test_table(void **state)
{
	size_t i, n[3] = {0, 0, 0};

	(void)state;
	for (i = 0; i < sizeof table / sizeof table[0]; i++) {
		expect(table[i].s, table[i].n, table[i].want);
		n[table[i].want]++;
	}
	assert_true(n[ACCEPT] >= 40);
	assert_true(n[FALLBACK] >= 10);
	assert_true(n[INVALID] >= 60);
}

/* {"a":"<b>"} and {"a":"\<b>"} for every byte b. */
static void
test_every_byte_and_escape(void **state)
{
	char s[16];
	int b;

	(void)state;
	for (b = 0; b < 256; b++) {
		memcpy(s, "{\"a\":\"?\"}", 9);
		s[6] = (char)b;
		same_verdict(s, 9);
		memcpy(s, "{\"a\":\"\\?\"}", 10);
		s[7] = (char)b;
		same_verdict(s, 10);
		memcpy(s, "{\"?\":1}", 7);
		s[2] = (char)b;
		same_verdict(s, 7);
		memcpy(s, "{\"a\":?}", 7);
		s[5] = (char)b;
		expect(s, 7, b >= '0' && b <= '9' ? ACCEPT : INVALID);
	}
}

/* Every two-byte sequence after a lead byte, and the three- and four-byte
 * leads with the continuation bytes at and around each boundary. */
static void
test_utf8_sequences(void **state)
{
	static const unsigned char cont[] = {0x00, 0x22, 0x7f, 0x80, 0x8f, 0x90,
	                                     0x9f, 0xa0, 0xbf, 0xc0, 0xff};
	char s[16];
	int b1, b2;
	size_t i, j;

	(void)state;
	for (b1 = 0x80; b1 < 0x100; b1++)
		for (b2 = 0; b2 < 0x100; b2++) {
			memcpy(s, "{\"a\":\"??\"}", 10);
			s[6] = (char)b1;
			s[7] = (char)b2;
			same_verdict(s, 10);
		}
	for (b1 = 0xe0; b1 < 0x100; b1++)
		for (b2 = 0; b2 < 0x100; b2++)
			for (i = 0; i < sizeof cont; i++) {
				memcpy(s, "{\"a\":\"???\"}", 11);
				s[6] = (char)b1;
				s[7] = (char)b2;
				s[8] = (char)cont[i];
				same_verdict(s, 11);
				if (b1 < 0xf0)
					continue;
				for (j = 0; j < sizeof cont; j++) {
					memcpy(s, "{\"a\":\"????\"}", 12);
					s[6] = (char)b1;
					s[7] = (char)b2;
					s[8] = (char)cont[i];
					s[9] = (char)cont[j];
					same_verdict(s, 12);
				}
			}
}

/* Every \u escape alone, and high surrogates followed by every kind of escape. */
static void
test_u_escapes(void **state)
{
	static const unsigned lows[] = {0x0041, 0x00e9, 0xd7ff, 0xd800, 0xdbff, 0xdc00,
	                                0xdc01, 0xdfff, 0xe000, 0xffff, 0x0000};
	char s[64];
	unsigned v, hi;
	size_t i;
	int n;

	(void)state;
	for (v = 0; v < 0x10000; v++) {
		n = snprintf(s, sizeof s, "{\"a\":\"\\u%04x\"}", v);
		same_verdict(s, (size_t)n);
		n = snprintf(s, sizeof s, "{\"\\u%04X\":0}", v);
		same_verdict(s, (size_t)n);
	}
	for (hi = 0xd7f0; hi < 0xdc10; hi++)
		for (i = 0; i < sizeof lows / sizeof lows[0]; i++) {
			n = snprintf(s, sizeof s, "{\"a\":\"\\u%04X\\u%04x\"}", hi, lows[i]);
			same_verdict(s, (size_t)n);
		}
	for (v = 0xdc00; v < 0xe000; v++) {
		n = snprintf(s, sizeof s, "{\"a\":\"x\\uD83D\\u%04X!\"}", v);
		expect(s, (size_t)n, ACCEPT);
	}
	for (v = 0; v < 0x10000; v += 0x111) {
		n = snprintf(s, sizeof s, "{\"a\":\"\\u%04X", v);
		same_verdict(s, (size_t)n);
		n = snprintf(s, sizeof s, "{\"a\":\"\\u%03X\"}", v & 0xfff);
		same_verdict(s, (size_t)n);
	}
}

static size_t
nested(char *s, int depth, int arrays)
{
	size_t n = 0;
	int i;

	s[n++] = '{';
	memcpy(s + n, "\"k\":", 4);
	n += 4;
	for (i = 1; i < depth; i++) {
		if (arrays && i % 2 == 1) {
			s[n++] = '[';
		} else {
			memcpy(s + n, "{\"k\":", 5);
			n += 5;
		}
	}
	s[n++] = '1';
	for (i = depth - 1; i >= 1; i--)
		s[n++] = arrays && i % 2 == 1 ? ']' : '}';
	s[n++] = '}';
	return n;
}

/* A {"k":"<n bytes of string>"} with an escape in it when escaped. */
static size_t
long_string(char *s, size_t bytes, int escaped, int as_key)
{
	size_t n = 0, i;

	memcpy(s, as_key ? "{\"" : "{\"k\":\"", as_key ? 2 : 6);
	n = as_key ? 2 : 6;
	for (i = 0; i < bytes; i++)
		s[n++] = (char)('a' + i % 26);
	if (escaped)
		memcpy(s + n - 2, "\\n", 2);
	memcpy(s + n, as_key ? "\":1}" : "\"}", as_key ? 4 : 2);
	return n + (as_key ? 4 : 2);
}

static void
test_limits(void **state)
{
	char s[4096];
	size_t n;
	int arrays;

	(void)state;
	/* Nested at most 32 deep. */
	for (arrays = 0; arrays < 2; arrays++) {
		expect(s, nested(s, 1, arrays), ACCEPT);
		expect(s, nested(s, 31, arrays), ACCEPT);
		expect(s, nested(s, 32, arrays), ACCEPT);
		expect(s, nested(s, 33, arrays), FALLBACK);
		expect(s, nested(s, 200, arrays), FALLBACK);
	}
	/* Escaped strings up to 256 input bytes; unescaped ones of any length. */
	expect(s, long_string(s, 255, 1, 0), ACCEPT);
	expect(s, long_string(s, 256, 1, 0), ACCEPT);
	expect(s, long_string(s, 257, 1, 0), FALLBACK);
	expect(s, long_string(s, 3000, 1, 0), FALLBACK);
	expect(s, long_string(s, 257, 0, 0), ACCEPT);
	expect(s, long_string(s, 3000, 0, 0), ACCEPT);
	/* Keys shorter than 256 bytes, escaped ones of at most 256 input bytes. */
	expect(s, long_string(s, 255, 0, 1), ACCEPT);
	expect(s, long_string(s, 256, 0, 1), FALLBACK);
	expect(s, long_string(s, 1000, 0, 1), FALLBACK);
	expect(s, long_string(s, 256, 1, 1), ACCEPT); /* decodes to 255 */
	expect(s, long_string(s, 257, 1, 1), FALLBACK);
	/* 64 \u escapes of 3-byte characters: 384 input bytes. */
	memcpy(s, "{\"k\":\"", 6);
	n = 6;
	for (int i = 0; i < 64; i++) {
		memcpy(s + n, "\\u20ac", 6);
		n += 6;
	}
	memcpy(s + n, "\"}", 2);
	expect(s, n + 2, FALLBACK);
	/* 42 of them, 252 input bytes, decode to 126. */
	memcpy(s + 6 + 42 * 6, "\"}", 2);
	expect(s, 6 + 42 * 6 + 2, ACCEPT);
	/* 21 surrogate pairs, 252 input bytes, decode to 84. */
	n = 6;
	for (int i = 0; i < 21; i++) {
		memcpy(s + n, "\\uD83D\\uDE00", 12);
		n += 12;
	}
	memcpy(s + n, "\"}", 2);
	expect(s, n + 2, ACCEPT);
}

/* The integers at every power of ten and both ends of the int64 range. */
static void
test_integers(void **state)
{
	char s[64];
	long long v = 1;
	int n, i;

	(void)state;
	for (i = 0; i < 19; i++) {
		n = snprintf(s, sizeof s, "{\"a\":%lld,\"b\":%lld}", v, -v);
		expect(s, (size_t)n, ACCEPT);
		n = snprintf(s, sizeof s, "{\"a\":%lld,\"b\":%lld}", v - 1, 1 - v);
		expect(s, (size_t)n, ACCEPT);
		if (i < 18)
			v *= 10;
	}
	n = snprintf(s, sizeof s, "{\"a\":[%lld,%lld]}", (long long)INT64_MAX,
	             (long long)INT64_MIN);
	expect(s, (size_t)n, ACCEPT);
	n = snprintf(s, sizeof s, "{\"a\":%llu}", (unsigned long long)INT64_MAX + 1);
	expect(s, (size_t)n, INVALID);
	n = snprintf(s, sizeof s, "{\"a\":-%llu}", (unsigned long long)INT64_MAX + 2);
	expect(s, (size_t)n, INVALID);
	n = snprintf(s, sizeof s, "{\"a\":%llu0}", (unsigned long long)UINT64_MAX);
	expect(s, (size_t)n, INVALID);
}

/* Random values, built with jansson, dumped by jansson, read by both. */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

struct gen {
	int real;       /* holds a real: jsonr gives up */
	int long_esc;   /* holds an escaped string over 256 bytes */
	int long_key;   /* holds a key of 256 bytes or more */
	char str[2048]; /* scratch */
};

static size_t
put_cp(char *o, uint32_t v)
{
	if (v < 0x80) {
		o[0] = (char)v;
		return 1;
	}
	if (v < 0x800) {
		o[0] = (char)(0xc0 | (v >> 6));
		o[1] = (char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		o[0] = (char)(0xe0 | (v >> 12));
		o[1] = (char)(0x80 | ((v >> 6) & 0x3f));
		o[2] = (char)(0x80 | (v & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (v >> 18));
	o[1] = (char)(0x80 | ((v >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((v >> 6) & 0x3f));
	o[3] = (char)(0x80 | (v & 0x3f));
	return 4;
}

static uint32_t
random_cp(void)
{
	static const uint32_t edges[] = {0x7f,   0x80,    0x7ff,   0x800,    0xd7ff, 0xe000, 0xfffd,
	                                 0xffff, 0x10000, 0x1f426, 0x10ffff, 0x2028, 0x2029, 0xe9};
	uint32_t v;

	switch (rnd(12)) {
	case 0:
		return "\"\\/"[rnd(3)];
	case 1:
		return 1 + rnd(0x1f); /* control characters, dumped as escapes */
	case 2:
		return 0x80 + rnd(0x800 - 0x80);
	case 3:
		do
			v = 0x800 + rnd(0x10000 - 0x800);
		while (v >= 0xd800 && v <= 0xdfff);
		return v;
	case 4:
		return 0x10000 + rnd(0x110000 - 0x10000);
	case 5:
		return edges[rnd(sizeof edges / sizeof edges[0])];
	default:
		return 0x20 + rnd(0x5f);
	}
}

/* Up to 20 code points: at most 240 bytes dumped, whatever the flags. */
static const char *
random_string(struct gen *g, size_t *len)
{
	size_t n = 0, i, cps = rnd(21);

	for (i = 0; i < cps; i++)
		n += put_cp(g->str + n, random_cp());
	g->str[n] = '\0';
	*len = n;
	return g->str;
}

static json_t *
random_scalar(struct gen *g)
{
	static const json_int_t ints[] = {
	        0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, 1000000};
	const char *s;
	size_t n, i;

	switch (rnd(12)) {
	case 0:
		return json_true();
	case 1:
		return json_false();
	case 2:
		return json_null();
	case 3:
		return json_integer(ints[rnd(sizeof ints / sizeof ints[0])]);
	case 4:
		return json_integer(
		        (json_int_t)(((uint64_t)rnd(0xffffffff) << 32) | rnd(0xffffffff)));
	case 5:
		return json_integer((json_int_t)rnd(100000) - 50000);
	case 6:
		if (rnd(8) == 0) {
			g->real = 1;
			return json_real((double)rnd(100000) / 64.0 - 300.0);
		}
		return json_integer((json_int_t)rnd(1000));
	default:
		break;
	}
	if (rnd(20) == 0) {
		/* A long string: plain is read, with an escape it is not. */
		n = 257 + rnd(300);
		for (i = 0; i < n; i++)
			g->str[i] = (char)('a' + rnd(26));
		if (rnd(2) == 0) {
			g->str[rnd((uint32_t)n)] = '\n';
			g->long_esc = 1;
		}
		return json_stringn(g->str, n);
	}
	s = random_string(g, &n);
	return json_stringn(s, n);
}

static json_t *
random_value(struct gen *g, int depth)
{
	json_t *v;
	const char *k;
	size_t n, kn, i;

	if (depth >= 5 || rnd(3) != 0)
		return random_scalar(g);
	if (rnd(2) == 0) {
		v = json_array();
		for (n = rnd(6), i = 0; i < n; i++)
			json_array_append_new(v, random_value(g, depth + 1));
		return v;
	}
	v = json_object();
	for (n = rnd(6), i = 0; i < n; i++) {
		char key[512];

		if (rnd(40) == 0) {
			/* A long plain key: up to 255 bytes are read. */
			kn = 250 + rnd(12);
			for (size_t j = 0; j < kn; j++)
				key[j] = (char)('A' + rnd(26));
		} else if (rnd(4) == 0) {
			key[0] = (char)('a' + rnd(3)); /* a few short ones */
			kn = 1;
		} else {
			k = random_string(g, &kn);
			memcpy(key, k, kn);
		}
		key[kn] = '\0';
		/* Keys are unique: a replaced value must not leave its marks in g. */
		if (json_object_getn(v, key, kn) != NULL)
			continue;
		if (kn >= 256)
			g->long_key = 1;
		json_object_setn_new(v, key, kn, random_value(g, depth + 1));
	}
	return v;
}

static void
mutate(char *s, size_t *n, size_t cap)
{
	static const char bytes[] = "\"\\{}[],:0-.eE ut\x80\xc3\xed\xf4\xbf\x01";
	size_t at = rnd((uint32_t)*n + 1);
	char c = rnd(3) == 0 ? (char)rnd(256) : bytes[rnd(sizeof bytes - 1)];

	switch (rnd(3)) {
	case 0:
		if (at < *n)
			s[at] = c;
		break;
	case 1:
		if (at < *n) {
			memmove(s + at, s + at + 1, *n - at - 1);
			(*n)--;
		}
		break;
	default:
		if (*n < cap) {
			memmove(s + at + 1, s + at, *n - at);
			s[at] = c;
			(*n)++;
		}
		break;
	}
}

static void
test_random(void **state)
{
	static const size_t flags[] = {JSON_COMPACT,
	                               0,
	                               JSON_INDENT(2),
	                               JSON_INDENT(1) | JSON_ENSURE_ASCII,
	                               JSON_COMPACT | JSON_ESCAPE_SLASH,
	                               JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH};
	static struct gen g;
	char m[1 << 16];
	int iter, k, jansson_ok;
	unsigned accepted = 0, fell_back = 0, mutants_read = 0;

	(void)state;
	for (iter = 0; iter < 4000; iter++) {
		json_t *v = json_object();
		char *text;
		size_t n, i;
		int ours;

		g.real = g.long_esc = g.long_key = 0;
		for (n = rnd(6), i = 0; i < n; i++) {
			const char *k0;
			char key[256];
			size_t kn;

			k0 = random_string(&g, &kn);
			memcpy(key, k0, kn);
			key[kn] = '\0';
			if (json_object_getn(v, key, kn) == NULL)
				json_object_setn_new(v, key, kn, random_value(&g, 1));
		}
		text = json_dumps(v, flags[iter % (sizeof flags / sizeof flags[0])]);
		assert_non_null(text);
		n = strlen(text);
		ours = differential(text, n, &jansson_ok);
		assert_true(jansson_ok);
		if (ours != !(g.real || g.long_esc || g.long_key)) {
			hex("input", text, n);
			fail_msg("jsonr_loadb %s (real %d, long escaped string %d, long key %d)",
			         ours ? "built it" : "gave up", g.real, g.long_esc, g.long_key);
		}
		if (ours)
			accepted++;
		else
			fell_back++;
		/* Mutants: whatever jsonr_loadb builds, jansson must build the same. */
		for (k = 0; k < 8 && n < sizeof m; k++) {
			size_t mn = n;
			int r;

			memcpy(m, text, n);
			for (r = 1 + (int)rnd(3); r > 0; r--)
				mutate(m, &mn, sizeof m);
			if (differential(m, mn, &jansson_ok))
				mutants_read++;
		}
		free(text);
		json_decref(v);
	}
	print_message("random: %u read, %u given to jansson, %u mutants read\n", accepted,
	              fell_back, mutants_read);
	assert_true(accepted > 2000);
	assert_true(fell_back > 100);
	assert_true(mutants_read > 100);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_table),          cmocka_unit_test(test_every_byte_and_escape),
	        cmocka_unit_test(test_utf8_sequences), cmocka_unit_test(test_u_escapes),
	        cmocka_unit_test(test_limits),         cmocka_unit_test(test_integers),
	        cmocka_unit_test(test_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
