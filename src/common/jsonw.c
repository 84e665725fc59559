/*
 * jsonw.c -- the compact JSON writer.  See jsonw.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"

void
jsonw_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *end = p + n, *run;
	char esc[7];

	buf_addc(b, '"');
	while (p < end) {
		run = p;
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			buf_add(b, run, (size_t)(p - run));
		if (p == end)
			break;
		switch (*p) {
		case '"':
			buf_add(b, "\\\"", 2);
			break;
		case '\\':
			buf_add(b, "\\\\", 2);
			break;
		case '\b':
			buf_add(b, "\\b", 2);
			break;
		case '\f':
			buf_add(b, "\\f", 2);
			break;
		case '\n':
			buf_add(b, "\\n", 2);
			break;
		case '\r':
			buf_add(b, "\\r", 2);
			break;
		case '\t':
			buf_add(b, "\\t", 2);
			break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			buf_add(b, esc, 6);
			break;
		}
		p++;
	}
	buf_addc(b, '"');
}

/* Decimal digits without printf (which is most of a reply's cost otherwise). */
void
jsonw_int(struct buf *b, json_int_t i)
{
	char tmp[24], *p = tmp + sizeof tmp;
	unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (i < 0)
		*--p = '-';
	buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

int
jsonw_dump(struct buf *b, const json_t *v)
{
	const char *key;
	json_t *x;
	size_t i, first = 1;
	char *s;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		buf_addc(b, '{');
		json_object_foreach((json_t *)v, key, x)
		{
			if (!first)
				buf_addc(b, ',');
			first = 0;
			jsonw_str(b, key, strlen(key));
			buf_addc(b, ':');
			if (jsonw_dump(b, x) == -1)
				return -1;
		}
		buf_addc(b, '}');
		return 0;
	case JSON_ARRAY:
		buf_addc(b, '[');
		json_array_foreach((json_t *)v, i, x)
		{
			if (i > 0)
				buf_addc(b, ',');
			if (jsonw_dump(b, x) == -1)
				return -1;
		}
		buf_addc(b, ']');
		return 0;
	case JSON_STRING:
		jsonw_str(b, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		jsonw_int(b, json_integer_value(v));
		return 0;
	case JSON_REAL:
		/* Rare (costs): jansson's own formatting, so the bytes stay its. */
		if ((s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) == NULL)
			return -1;
		buf_adds(b, s);
		free(s);
		return 0;
	case JSON_TRUE:
		buf_add(b, "true", 4);
		return 0;
	case JSON_FALSE:
		buf_add(b, "false", 5);
		return 0;
	case JSON_NULL:
		buf_add(b, "null", 4);
		return 0;
	}
	return -1;
}

char *
jsonw_dumps(const json_t *v)
{
	struct buf b;

	buf_init(&b);
	if (jsonw_dump(&b, v) == -1) {
		buf_free(&b);
		return NULL;
	}
	buf_cstr(&b);
	return b.data; /* the offset is 0: nothing was consumed */
}
