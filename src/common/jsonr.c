/*
 * jsonr.c -- the request reader's fast path.  See jsonr.h.
 *
 * A recursive descent over the bytes with no lexer layer: each value is
 * recognised by its first byte and built at once with jansson's
 * constructors (strings unchecked: they were validated here).  Anything
 * outside the common subset gives up with NULL, and the caller asks
 * jansson, whose answer -- the value or the error -- is then the answer.
 */
#include <stdint.h>
#include <string.h>

#include "common/jsonr.h"
#include "common/util.h"

#define MAX_DEPTH 32

struct rd {
	const unsigned char *p, *end;
	int depth;
	char small[256]; /* decoded escaped strings up to this size */
};

static json_t *value(struct rd *);

static void
skip_ws(struct rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* Length of the well-formed UTF-8 sequence at p (strict, as jansson: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n, i;
	uint32_t v;

	if (c < 0xC2 || c > 0xF4)
		return 0;
	n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	if ((size_t)(end - p) < n)
		return 0;
	v = c & (0x7F >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || (v >= 0xD800 && v <= 0xDFFF) ||
	    v > 0x10FFFF)
		return 0;
	return n;
}

/*
 * The closing quote of the string at r->p (just past its opening quote),
 * its bytes validated on the way and *escaped set if it has a backslash;
 * NULL if it is not a well-formed string.
 */
static inline const unsigned char *
string_scan(const struct rd *r, int *escaped)
{
	const unsigned char *q = r->p;
	size_t k;

	while (q < r->end && *q != '"') {
		if (*q < 0x20)
			return NULL;
		if (*q == '\\') {
			*escaped = 1;
			if (q + 1 >= r->end)
				return NULL;
			q += 2;
			if (q[-1] == 'u')
				q += 4;
			continue;
		}
		if (*q < 0x80)
			q++;
		else if ((k = utf8_len(q, r->end)) == 0)
			return NULL;
		else
			q += k;
	}
	return q < r->end ? q : NULL;
}

/*
 * The \u escape at q, joined with the low surrogate after it when it is a
 * high one: the code point in *v.  Returns the input bytes taken (6 or 12),
 * or 0 where jansson gives an error.
 */
static inline size_t
string_u_escape(const unsigned char *q, const unsigned char *end, unsigned *v)
{
	unsigned lo;

	if (q + 6 > end || hex4_decode((const char *)q + 2, (const char *)end, v) == -1 || *v == 0)
		return 0; /* \u0000 and bad hex: jansson's errors */
	if (*v >= 0xDC00 && *v <= 0xDFFF)
		return 0;
	if (*v < 0xD800 || *v > 0xDBFF)
		return 6;
	if (q + 12 > end || q[6] != '\\' || q[7] != 'u' ||
	    hex4_decode((const char *)q + 8, (const char *)end, &lo) == -1 || lo < 0xDC00 ||
	    lo > 0xDFFF)
		return 0;
	*v = 0x10000 + ((*v - 0xD800) << 10) + (lo - 0xDC00);
	return 12;
}

/*
 * Decode the string from q (validated by string_scan, short enough for
 * r->small) up to its closing quote into r->small; its length in *n.
 * Returns 0 or -1.
 */
static inline int
string_decode(struct rd *r, const unsigned char *q, size_t *n)
{
	size_t len = 0, k;
	unsigned v;

	while (*q != '"') {
		if (*q != '\\') {
			r->small[len++] = (char)*q++;
			continue;
		}
		switch (q[1]) {
		case '"':
		case '\\':
		case '/':
			r->small[len++] = (char)q[1];
			break;
		case 'b':
			r->small[len++] = '\b';
			break;
		case 'f':
			r->small[len++] = '\f';
			break;
		case 'n':
			r->small[len++] = '\n';
			break;
		case 'r':
			r->small[len++] = '\r';
			break;
		case 't':
			r->small[len++] = '\t';
			break;
		case 'u':
			if ((k = string_u_escape(q, r->end, &v)) == 0)
				return -1;
			/* each \u escape is 6 input bytes for at most 4 output bytes */
			len += utf8_encode(v, r->small + len);
			q += k;
			continue;
		default:
			return -1;
		}
		q += 2;
	}
	*n = len;
	return 0;
}

/*
 * A string at r->p (just past its opening quote).  Sets *s, *n to its
 * bytes: in the input when it has no escapes, else decoded into r->small
 * (longer escaped strings give up).  Returns 0 or -1.
 */
static int
string(struct rd *r, const char **s, size_t *n)
{
	const unsigned char *start = r->p, *q;
	int escaped = 0;

	if ((q = string_scan(r, &escaped)) == NULL)
		return -1;
	r->p = q + 1;
	if (!escaped) {
		*s = (const char *)start;
		*n = (size_t)(q - start);
		return 0;
	}
	if ((size_t)(q - start) > sizeof r->small)
		return -1; /* decoded is never longer than encoded */
	if (string_decode(r, start, n) == -1)
		return -1;
	*s = r->small;
	return 0;
}

static json_t *
number(struct rd *r)
{
	const unsigned char *p = r->p;
	int neg = 0;
	uint64_t u = 0;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (p >= r->end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0') {
		p++;
	} else {
		while (p < r->end && *p >= '0' && *p <= '9') {
			if (u > (UINT64_MAX - 9) / 10)
				return NULL;
			u = u * 10 + (uint64_t)(*p++ - '0');
		}
	}
	/* Reals, exponents, leading zeros and out-of-range integers are jansson's. */
	if (p < r->end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E'))
		return NULL;
	if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX)
		return NULL;
	r->p = p;
	return json_integer(neg ? (json_int_t)(0 - u) : (json_int_t)u);
}

static int
word(struct rd *r, const char *w, size_t n)
{
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
		return -1;
	r->p += n;
	return 0;
}

static json_t *
object(struct rd *r)
{
	json_t *o = json_object(), *v;
	const char *k;
	size_t kn;
	char key[256];

	r->p++; /* { */
	skip_ws(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return o;
	}
	for (;;) {
		if (r->p >= r->end || *r->p != '"')
			goto fail;
		r->p++;
		if (string(r, &k, &kn) == -1 || kn >= sizeof key)
			goto fail;
		memcpy(key, k, kn); /* r->small is reused by the value */
		key[kn] = '\0';
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':')
			goto fail;
		r->p++;
		skip_ws(r);
		if ((v = value(r)) == NULL)
			goto fail;
		if (json_object_setn_new_nocheck(o, key, kn, v) == -1)
			goto fail;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_ws(r);
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return o;
		}
		goto fail;
	}
fail:
	json_decref(o);
	return NULL;
}

static json_t *
array(struct rd *r)
{
	json_t *a = json_array(), *v;

	r->p++; /* [ */
	skip_ws(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return a;
	}
	for (;;) {
		if ((v = value(r)) == NULL || json_array_append_new(a, v) == -1)
			goto fail;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_ws(r);
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return a;
		}
		goto fail;
	}
fail:
	json_decref(a);
	return NULL;
}

static json_t *
value(struct rd *r)
{
	const char *s;
	size_t n;
	json_t *v = NULL;

	if (r->p >= r->end)
		return NULL;
	switch (*r->p) {
	case '{':
	case '[':
		if (++r->depth > MAX_DEPTH)
			return NULL;
		v = *r->p == '{' ? object(r) : array(r);
		r->depth--;
		return v;
	case '"':
		r->p++;
		if (string(r, &s, &n) == -1)
			return NULL; /* no NUL can be in it: raw ones and \\u0000 give up */
		return json_stringn_nocheck(s, n);
	case 't':
		return word(r, "true", 4) == 0 ? json_true() : NULL;
	case 'f':
		return word(r, "false", 5) == 0 ? json_false() : NULL;
	case 'n':
		return word(r, "null", 4) == 0 ? json_null() : NULL;
	default:
		return number(r);
	}
}

json_t *
jsonr_loadb(const char *buf, size_t len)
{
	struct rd r;
	json_t *v;

	r.p = (const unsigned char *)buf;
	r.end = r.p + len;
	r.depth = 0;
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		return NULL;
	if ((v = value(&r)) == NULL)
		return NULL;
	skip_ws(&r);
	if (r.p != r.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}
