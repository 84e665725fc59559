/*
 * prompt.h -- three-region prompt assembly and prefix-drift finding.
 *
 * Provider prompt caches (DeepSeek, OpenAI, Anthropic) bill a cached prefix
 * at a fraction of the price, but only while the prefix is byte-identical to
 * the one they saw before.  A prompt is therefore assembled from three
 * regions, most stable first:
 *
 *   region 1 "stable"      {"system": str, "tools": [..]}
 *   region 2 "semi_stable" {"context": str|obj, "skills": [..]}
 *   region 3 "volatile"    {"turn": ..}
 *
 * Each region is serialised canonically: JSON with keys sorted bytewise, no
 * whitespace at all, reals as "%.17g", UTF-8 kept as is, and one '\n' at the
 * end.  Skills are ordered by their "name" (then by their own canonical bytes)
 * so directory order cannot move the prefix; tools keep the caller's order.
 * The prompt is the three regions concatenated.  The same input value gives
 * the same bytes in every process, whatever order its keys were inserted in.
 *
 * Volatile fields (timestamps and ids) break a cache prefix silently, so
 * regions 1 and 2 are checked for them.  By default such a field is an error
 * naming its JSON path; with PROMPT_STRIP_VOLATILE it is removed and counted.
 * A key is volatile when it is one of id, uuid, nonce, seq, timestamp, time,
 * date, datetime, now, mtime, ctime, atime, request_id, session_id, turn_id,
 * message_id, trace_id, or ends in "_at", "_time", "_timestamp" or a
 * camel-case "At" (createdAt).  Keys of a JSON Schema "properties",
 * "patternProperties", "$defs" or "definitions" object are parameter names,
 * not fields, and are not checked (a tool may well take a "task_id").
 */
#ifndef COLIBRI_PROMPT_H
#define COLIBRI_PROMPT_H

#include <stddef.h>

#include <jansson.h>

#include "sha256.h"

enum prompt_region_id { PROMPT_STABLE, PROMPT_SEMI_STABLE, PROMPT_VOLATILE, PROMPT_NREGIONS };

#define PROMPT_STRIP_VOLATILE 0x1 /* strip volatile fields from regions 1-2 instead of failing */

struct prompt_region {
	char *bytes; /* canonical serialisation, '\n'-terminated, NUL after len */
	size_t len;
	size_t offset; /* where the region starts in the assembled prompt */
	char sha256[SHA256_HEX_LEN + 1];
};

struct prompt {
	struct prompt_region region[PROMPT_NREGIONS];
	char *bytes; /* all regions concatenated, NUL after len */
	size_t len;
	size_t stripped; /* volatile fields removed (PROMPT_STRIP_VOLATILE) */
};

/*
 * Assemble a prompt from a JSON object with the optional keys system
 * (string), tools (array of objects), skills (array of objects), context
 * (string or object) and turn (any value).  Other keys are refused.
 * Returns 0 and fills *out (release with prompt_free), or -1 with *cause set
 * to an allocated message (caller frees) and *out zeroed.
 */
int prompt_assemble(const json_t *input, int flags, struct prompt *out, char **cause);
void prompt_free(struct prompt *);
/* "stable", "semi_stable", "volatile"; NULL for an out-of-range id. */
const char *prompt_region_name(enum prompt_region_id);
/*
 * The result of a prompt-assemble command: {"prompt": str, "bytes": n,
 * "stripped": n, "regions": [{"name", "offset", "bytes", "sha256"}, ..]}.
 * New reference.
 */
json_t *prompt_to_json(const struct prompt *);

/* Where two versions of a region first differ. */
struct prompt_drift {
	int differs;   /* 0: the bytes are identical */
	size_t offset; /* first differing byte (the shorter length if one is a prefix) */
	size_t prev_len;
	size_t cur_len;
	char *before;     /* escaped bytes just before offset (shared by both) */
	char *prev_after; /* escaped previous bytes from offset on */
	char *cur_after;  /* escaped current bytes from offset on */
};

#define PROMPT_DRIFT_CONTEXT 24

/*
 * Compare prev and cur and fill *out with the first differing offset and up
 * to context bytes on each side, escaped to printable ASCII (\\ \n \r \t
 * \xHH).  Returns out->differs.  Release with prompt_drift_free.
 */
int prompt_drift_find(const void *prev, size_t prev_len, const void *cur, size_t cur_len,
                      size_t context, struct prompt_drift *out);
void prompt_drift_free(struct prompt_drift *);
/* {"differs": bool, "offset", "prev_len", "cur_len", "before", "prev_after", "cur_after"}. */
json_t *prompt_drift_to_json(const struct prompt_drift *);
/*
 * Drift of regions 1 and 2 between two assemblies of one session:
 * {"stable": drift, "semi_stable": drift}.  New reference.
 */
json_t *prompt_drift_regions(const struct prompt *prev, const struct prompt *cur, size_t context);
/* Escape bytes as the drift finder does; returns an allocated string. */
char *prompt_escape(const void *data, size_t len);

#endif
