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
void buf_add(struct buf *, const void *, size_t);
void buf_adds(struct buf *, const char *);
void buf_addc(struct buf *, char);
void buf_printf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
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
