/*
 * harness-json.h -- small helpers the harness decoders share (internal).
 *
 * Reading optional fields out of a jansson tree without caring whether a
 * number came as an integer or a real, and copying strings into the fixed
 * buffers of struct gp_event with truncation on a character boundary.
 */
#ifndef COLIBRI_GLASSPANE_HARNESS_JSON_H
#define COLIBRI_GLASSPANE_HARNESS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* Append s to ev's text (a newline between parts), cut on a UTF-8 boundary when full. */
void gp_text_add(struct gp_event *ev, const char *s);
/* Copy src into dst[n] (n > 0), truncated on a UTF-8 boundary; src NULL gives "". */
void gp_copy(char *dst, size_t n, const char *src);
/* o[key] as a string copied into dst[n]; "" when absent or not a string. Returns 1 if found. */
int gp_json_str(json_t *o, const char *key, char *dst, size_t n);
/* o[key] as an integer (reals truncated, out-of-range and absent give 0). */
int64_t gp_json_i64(json_t *o, const char *key);
/* o[key] as a double (absent or not a number gives 0). */
double gp_json_num(json_t *o, const char *key);
/* o[key] as a boolean: 1 true, 0 anything else. */
int gp_json_true(json_t *o, const char *key);
/* Parse a line into a tree; NULL on any error (the caller treats the line as garbage). */
json_t *gp_json_load(const char *line, size_t len);

#endif
