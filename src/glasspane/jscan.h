/*
 * jscan.h -- a bounded, allocation-free scanner for one JSON object line.
 *
 * Agent event streams are dominated by lines (pi's message_update) that
 * repeat a whole partial message, yet the glasspane only needs their "type"
 * and one or two small fields near the front.  jscan walks the top-level
 * members of an object without building a tree: it skips values by matching
 * brackets and strings, and hands back the raw byte span of the members the
 * caller asked for.  It is not a validating parser: it checks framing
 * (balanced brackets, closed strings, nothing after the object), which is
 * enough to reject truncated and garbage lines.
 *
 * Every function reads only inside [p, p + len) and never writes past the
 * output size it is given: it is meant to take arbitrary bytes (and is a
 * fuzz target).
 */
#ifndef COLIBRI_JSCAN_H
#define COLIBRI_JSCAN_H

#include <stddef.h>

/* Nesting deeper than this is refused (the scan itself is iterative). */
#define JSCAN_MAX_DEPTH 256

/* The raw bytes of one JSON value inside the scanned buffer; p is NULL when absent. */
struct jscan_span {
	const char *p;
	size_t len;
};

/* Flags for jscan_object. */
#define JSCAN_FULL  0 /* walk to the end and check the whole object's framing */
#define JSCAN_EARLY 1 /* stop as soon as every requested key was seen */

/*
 * Walk the object in buf[0, len) (surrounding whitespace allowed).  For each
 * keys[i], vals[i] receives the span of the first member whose key is exactly
 * keys[i] (compared on the raw, unescaped bytes), or {NULL, 0}.
 * Returns 0 when the object is well framed (with JSCAN_EARLY: up to the point
 * where the scan stopped), -1 otherwise; vals are meaningful only on 0.
 */
int jscan_object(const char *buf, size_t len, const char *const *keys, struct jscan_span *vals,
                 size_t nkeys, int flags);

/*
 * Decode a string span into out (always NUL-terminated when outsz > 0),
 * truncating on a UTF-8 character boundary.  Escapes, including \uXXXX and
 * surrogate pairs, are decoded; invalid escapes become '?'.
 * Returns the decoded length, or -1 if the span is not a string.
 */
int jscan_string(struct jscan_span v, char *out, size_t outsz);

/* 1 if the span is a string whose raw contents equal s exactly, else 0. */
int jscan_string_is(struct jscan_span v, const char *s);

#endif
