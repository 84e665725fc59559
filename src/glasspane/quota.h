/*
 * quota.h -- is an agent's error a provider's rate limit or quota, and when does it lift?
 *
 * Providers word a refusal for volume in a handful of ways, and agents pass
 * the text through in their error events (pi's errorMessage and
 * auto_retry_* messages, zot's error events):
 *
 *   OpenAI     "429 Rate limit reached for gpt-4o in organization org-x on
 *              tokens per min (TPM): ... Please try again in 1m20s."
 *              "429 You exceeded your current quota, please check your plan"
 *   Anthropic  "429 {"type":"error","error":{"type":"rate_limit_error",...}}"
 *   Gemini     "429 RESOURCE_EXHAUSTED ... Please retry in 32.5s."
 *   DeepSeek   "429 Rate Limit Reached"
 *   HTTP       "429 Too Many Requests", "Retry-After: 3", a Retry-After
 *              HTTP date, "x-ratelimit-reset: 2026-12-03T15:04:05Z"
 *
 * gp_quota_parse says whether a text is such an error and what it says
 * about the reset: a wait ("Retry-After: 3", "retry after 30s", "try again
 * in 1m20s", "retry-after-ms: 1500") or an absolute time ("resets at
 * 2026-12-03T15:04:05Z", "reset at Thu, 03 Dec 2026 15:04:05 GMT",
 * "reset at 15:04 UTC").  It never invents one: a text without a time
 * leaves both fields unset, and so does a time it cannot read for sure (a
 * clock time without a zone, a date in the past, a wait beyond
 * GP_QUOTA_MAX_WAIT_MS).
 *
 * Pure: no I/O, no clock of its own, no heap.
 */
#ifndef COLIBRI_GLASSPANE_QUOTA_H
#define COLIBRI_GLASSPANE_QUOTA_H

#include <stdint.h>

/* The longest wait or reset horizon believed (a month covers every published window). */
#define GP_QUOTA_MAX_WAIT_MS (31LL * 24 * 3600 * 1000)

struct gp_quota {
	int64_t after_ms; /* a wait from when the text was written; -1: none given */
	int64_t at_ms;    /* an absolute reset, ms since the epoch (UTC); 0: none given */
};

/*
 * Is text (NUL-terminated, any bytes) a rate-limit or quota error?  1 with *q
 * filled, 0 when it is not (*q then says nothing either).  now_ms is the wall
 * clock (ms since the epoch): it anchors a reset given as a time of day
 * ("15:04 UTC" is the next such time after now) and rejects resets in the
 * past.  When a text gives both a wait and a time, both are filled: the
 * caller takes the later.
 */
int gp_quota_parse(const char *text, int64_t now_ms, struct gp_quota *q);

/* The reset q names as an absolute time for a text seen at seen_ms (0: none). */
int64_t gp_quota_until(const struct gp_quota *q, int64_t seen_ms);

#endif
