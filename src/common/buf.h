/*
 * buf.h -- a growable byte buffer with a read offset.
 *
 * Used for socket input/output and for building text.  buf_reserve grows
 * geometrically; buf_consume drops bytes from the front lazily.
 */
#ifndef COLIBRI_BUF_H
#define COLIBRI_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t off; /* first unread byte */
	size_t len; /* end of valid data */
	size_t cap;
};

void buf_init(struct buf *);
void buf_free(struct buf *);
void buf_reset(struct buf *);
/* Make room for n more bytes; returns a pointer to the free space. */
char *buf_reserve(struct buf *, size_t n);
void buf_add_slow(struct buf *, const void *, size_t);
void buf_adds(struct buf *, const char *);
void buf_printf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
/*
 * Appends are inline when the bytes fit (the reply writers append a few
 * bytes at a time); buf_add_slow grows the buffer.  One byte is always
 * kept free past len, for buf_cstr's NUL.
 */
static inline void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->cap - b->len > n) {
		__builtin_memcpy(b->data + b->len, p, n);
		b->len += n;
	} else
		buf_add_slow(b, p, n);
}
static inline void
buf_addc(struct buf *b, char c)
{
	if (b->cap - b->len > 1)
		b->data[b->len++] = c;
	else
		buf_add_slow(b, &c, 1);
}
/* Unread bytes. */
static inline size_t
buf_used(const struct buf *b)
{
	return b->len - b->off;
}
static inline char *
buf_head(const struct buf *b)
{
	return b->data + b->off;
}
void buf_consume(struct buf *, size_t);
/* NUL-terminate without counting the NUL; returns the unread bytes as a string. */
char *buf_cstr(struct buf *);

#endif
