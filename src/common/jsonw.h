/*
 * jsonw.h -- a fast compact JSON writer for jansson values.
 *
 * Serialising a reply is the largest single cost of a read request when
 * jansson's json_dumps does it (its writer checks and escapes byte by
 * byte through many small appends).  jsonw_dump writes the same bytes as
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) -- object keys in their
 * stored order, strings escaped as jansson does ("\"", "\\", \b \f \n \r
 * \t, other control bytes as \u00XX, everything else verbatim), integers
 * in decimal, reals through jansson itself -- straight into a struct buf,
 * copying runs of plain bytes at once.  A differential test and a fuzz
 * target hold it to jansson's output.
 */
#ifndef COLIBRI_JSONW_H
#define COLIBRI_JSONW_H

#include <jansson.h>

#include "common/buf.h"

/* Append v's compact serialisation to b.  Returns 0, or -1 for a value jansson could not dump. */
int jsonw_dump(struct buf *b, const json_t *v);
/* A string (n bytes, escaped as above, quotes added) and an integer, for writers that
 * build JSON without a jansson value (a task straight from its row). */
void jsonw_str(struct buf *b, const char *s, size_t n);
void jsonw_int(struct buf *b, json_int_t i);
/* The serialisation as a new NUL-terminated string (caller frees), or NULL. */
char *jsonw_dumps(const json_t *v);

#endif
