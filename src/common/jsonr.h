/*
 * jsonr.h -- a fast reader for request lines.
 *
 * jansson's json_loadb reads a byte at a time through a stream layer and
 * costs more than everything else a point read does.  jsonr_loadb parses
 * the common subset of a request -- an object of objects, arrays, strings,
 * integers, true, false and null, nested at most 32 deep, strings with
 * escaped parts up to 256 bytes -- straight into the same jansson values
 * json_loadb(buf, len, 0, ...) would build (same keys in the same order,
 * the last of duplicate keys winning, the same strict UTF-8).  For
 * anything else, valid or not (reals, deep nesting, long escaped strings,
 * every error), it returns NULL and the caller asks json_loadb, whose
 * value or error message is then the answer.  A differential fuzz target
 * (tests/fuzz/fuzz_jsonr.c) holds the two together.
 */
#ifndef COLIBRI_JSONR_H
#define COLIBRI_JSONR_H

#include <jansson.h>
#include <stddef.h>

/* The object in buf[0..len), or NULL: not in the subset (ask json_loadb). */
json_t *jsonr_loadb(const char *buf, size_t len);

#endif
