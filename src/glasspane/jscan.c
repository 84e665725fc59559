/*
 * jscan.c -- the bounded JSON object scanner (see jscan.h).
 *
 * A cursor (p, end) moves forward only; every read is preceded by a p < end
 * check.  Nested values are skipped with a bit stack of open brackets, so a
 * hostile line cannot recurse the scanner into the ground, and mismatched
 * brackets ("{]") are caught.
 */
#include <stdint.h>
#include <string.h>

#include "common/util.h"
#include "jscan.h"

struct jcur {
	const char *p;
	const char *end;
};

static void
jscan_ws(struct jcur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* At an opening quote: move past the closing one.  Raw control bytes are refused. */
static int
jscan_skip_string(struct jcur *c)
{
	unsigned char ch;

	c->p++;
	while (c->p < c->end) {
		ch = (unsigned char)*c->p++;
		if (ch == '"')
			return 0;
		if (ch < 0x20)
			return -1;
		if (ch == '\\') {
			if (c->p >= c->end)
				return -1;
			c->p++;
		}
	}
	return -1;
}

static int
jscan_scalar_byte(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || ch == '-' || ch == '+' ||
	       ch == '.' || ch == 'E';
}

static int
jscan_skip_scalar(struct jcur *c)
{
	const char *start = c->p;

	while (c->p < c->end && jscan_scalar_byte(*c->p))
		c->p++;
	return c->p > start ? 0 : -1;
}

/* At '{' or '[': move past the matching bracket. */
static int
jscan_skip_nested(struct jcur *c)
{
	uint64_t stack[JSCAN_MAX_DEPTH / 64] = {0}; /* bit set: the open bracket is '[' */
	size_t depth = 0;
	char ch;

	while (c->p < c->end) {
		ch = *c->p;
		if (ch == '"') {
			if (jscan_skip_string(c) < 0)
				return -1;
			continue;
		}
		c->p++;
		if (ch == '{' || ch == '[') {
			if (depth >= JSCAN_MAX_DEPTH)
				return -1;
			if (ch == '[')
				stack[depth / 64] |= (uint64_t)1 << (depth % 64);
			else
				stack[depth / 64] &= ~((uint64_t)1 << (depth % 64));
			depth++;
		} else if (ch == '}' || ch == ']') {
			if (depth == 0)
				return -1;
			depth--;
			if (((stack[depth / 64] >> (depth % 64)) & 1) != (ch == ']'))
				return -1;
			if (depth == 0)
				return 0;
		}
	}
	return -1;
}

static int
jscan_skip_value(struct jcur *c)
{
	if (c->p >= c->end)
		return -1;
	if (*c->p == '"')
		return jscan_skip_string(c);
	if (*c->p == '{' || *c->p == '[')
		return jscan_skip_nested(c);
	return jscan_skip_scalar(c);
}

/* Record the value span if the raw key [k, k + klen) is one of the wanted keys. */
static size_t
jscan_record(const char *k, size_t klen, struct jscan_span v, const char *const *keys,
             struct jscan_span *vals, size_t nkeys)
{
	size_t i;

	for (i = 0; i < nkeys; i++) {
		if (vals[i].p == NULL && strlen(keys[i]) == klen && memcmp(keys[i], k, klen) == 0) {
			vals[i] = v;
			return 1;
		}
	}
	return 0;
}

/* One "key": value member; the cursor is at the key's quote. */
static int
jscan_member(struct jcur *c, const char *const *keys, struct jscan_span *vals, size_t nkeys,
             size_t *found)
{
	const char *k;
	size_t klen;
	struct jscan_span v;

	if (c->p >= c->end || *c->p != '"')
		return -1;
	k = c->p + 1;
	if (jscan_skip_string(c) < 0)
		return -1;
	klen = (size_t)(c->p - 1 - k);
	jscan_ws(c);
	if (c->p >= c->end || *c->p != ':')
		return -1;
	c->p++;
	jscan_ws(c);
	v.p = c->p;
	if (jscan_skip_value(c) < 0)
		return -1;
	v.len = (size_t)(c->p - v.p);
	*found += jscan_record(k, klen, v, keys, vals, nkeys);
	return 0;
}

int
jscan_object(const char *buf, size_t len, const char *const *keys, struct jscan_span *vals,
             size_t nkeys, int flags)
{
	struct jcur c = {buf, buf + len};
	size_t found = 0;

	memset(vals, 0, nkeys * sizeof(*vals));
	if (buf == NULL)
		return -1;
	jscan_ws(&c);
	if (c.p >= c.end || *c.p++ != '{')
		return -1;
	jscan_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto tail;
	}
	for (;;) {
		if (jscan_member(&c, keys, vals, nkeys, &found) < 0)
			return -1;
		if ((flags & JSCAN_EARLY) && found == nkeys)
			return 0;
		jscan_ws(&c);
		if (c.p >= c.end)
			return -1;
		if (*c.p == '}') {
			c.p++;
			break;
		}
		if (*c.p++ != ',')
			return -1;
		jscan_ws(&c);
	}
tail:
	jscan_ws(&c);
	return c.p == c.end ? 0 : -1;
}

/* Decode \uXXXX (and a following low surrogate) at p (just after the 'u'). */
static unsigned
jscan_unicode(const char **pp, const char *end)
{
	unsigned hi, lo;

	if (hex4_decode(*pp, end, &hi) < 0)
		return '?';
	*pp += 4;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return '?';
	if (hi < 0xd800 || hi > 0xdbff)
		return hi;
	if (end - *pp < 6 || (*pp)[0] != '\\' || (*pp)[1] != 'u' ||
	    hex4_decode(*pp + 2, end, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
		return '?';
	*pp += 6;
	return 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
}

/* Decode one character (escape or raw byte) at *pp into tmp; returns its byte count. */
static size_t
jscan_char(const char **pp, const char *end, char *tmp)
{
	char ch = *(*pp)++;

	if (ch != '\\') {
		tmp[0] = ch;
		return 1;
	}
	if (*pp >= end) {
		tmp[0] = '?';
		return 1;
	}
	ch = *(*pp)++;
	switch (ch) {
	case 'n':
		tmp[0] = '\n';
		return 1;
	case 't':
		tmp[0] = '\t';
		return 1;
	case 'r':
		tmp[0] = '\r';
		return 1;
	case 'b':
		tmp[0] = '\b';
		return 1;
	case 'f':
		tmp[0] = '\f';
		return 1;
	case '"':
	case '\\':
	case '/':
		tmp[0] = ch;
		return 1;
	case 'u':
		return utf8_encode(jscan_unicode(pp, end), tmp);
	default:
		tmp[0] = '?';
		return 1;
	}
}

int
jscan_string(struct jscan_span v, char *out, size_t outsz)
{
	const char *p, *end;
	size_t n = 0, k;
	char tmp[4];
	int truncated = 0;

	if (v.p == NULL || v.len < 2 || v.p[0] != '"' || v.p[v.len - 1] != '"')
		return -1;
	if (outsz == 0)
		return 0;
	p = v.p + 1;
	end = v.p + v.len - 1;
	while (p < end) {
		k = jscan_char(&p, end, tmp);
		if (n + k > outsz - 1) {
			truncated = 1;
			break;
		}
		memcpy(out + n, tmp, k);
		n += k;
	}
	if (truncated)
		n = utf8_cut_len(out, n, n); /* drop a sequence the truncation split */
	out[n] = '\0';
	return (int)n;
}

int
jscan_string_is(struct jscan_span v, const char *s)
{
	size_t n = strlen(s);

	return v.p != NULL && v.len == n + 2 && v.p[0] == '"' && memcmp(v.p + 1, s, n) == 0 &&
	       v.p[n + 1] == '"';
}
