/*
 * buf.c -- growable byte buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xmalloc.h"

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof *b);
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

char *
buf_reserve(struct buf *b, size_t n)
{
	size_t need;

	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= n + 1)
		return b->data + b->len;
	if (b->off > 0 && b->off >= b->cap / 2) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n + 1)
			return b->data + b->len;
	}
	need = b->len + n + 1;
	if (need < 256)
		need = 256;
	if (need < b->cap * 2)
		need = b->cap * 2;
	b->data = xrealloc(b->data, need);
	b->cap = need;
	return b->data + b->len;
}

void
buf_add_slow(struct buf *b, const void *p, size_t n)
{
	memcpy(buf_reserve(b, n), p, n);
	b->len += n;
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	char probe[1];

	if (fmt == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(probe, sizeof probe, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf_reserve(b, (size_t)n), (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= buf_used(b))
		b->off = b->len = 0;
	else
		b->off += n;
}

char *
buf_cstr(struct buf *b)
{
	buf_reserve(b, 0);
	b->data[b->len] = '\0';
	return b->data + b->off;
}
