/*
 * cache.c -- the cache subsystem: what prompt-assemble and usage keep
 * between requests.
 *
 * The price table (COLIBRI_PRICES, a JSON file read once at start: a bad
 * file stops start-up) prices usage when an agent reported no cost; the
 * prompt memory keeps the last assembled prompt of the PROMPT_SESSIONS
 * most recently used sessions, so prompt-assemble can report where the
 * next one drifts.  The commands themselves live in cmd-cache.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/prompt.h"
#include "cache/usage.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cache.h"

#define PROMPT_SESSIONS 256

struct last_prompt {
	char *session;
	struct prompt p;
	int64_t used;
};

static struct last_prompt last[PROMPT_SESSIONS];
static struct usage_prices *prices;

struct prompt *
cache_last_prompt(const char *session)
{
	struct last_prompt *oldest = &last[0];
	size_t i;

	for (i = 0; i < PROMPT_SESSIONS; i++) {
		if (last[i].session != NULL && strcmp(last[i].session, session) == 0) {
			last[i].used = now_ms();
			return &last[i].p;
		}
		if (last[i].used < oldest->used)
			oldest = &last[i];
	}
	if (oldest->session != NULL) {
		free(oldest->session);
		prompt_free(&oldest->p);
	}
	memset(oldest, 0, sizeof *oldest);
	oldest->session = xstrdup(session);
	oldest->used = now_ms();
	return &oldest->p;
}

const struct usage_prices *
cache_prices(void)
{
	return prices;
}

int
cache_init(char **cause)
{
	const char *v = getenv("COLIBRI_PRICES");
	json_error_t jerr;
	json_t *cfg;

	if (v == NULL || *v == '\0')
		return 0;
	if ((cfg = json_load_file(v, 0, &jerr)) == NULL) {
		xasprintf(cause, "COLIBRI_PRICES %s: %s", v, jerr.text);
		return -1;
	}
	prices = usage_prices_load(cfg, cause);
	json_decref(cfg);
	return prices == NULL ? -1 : 0;
}

void
cache_close(void)
{
	size_t i;

	for (i = 0; i < PROMPT_SESSIONS; i++) {
		if (last[i].session != NULL) {
			free(last[i].session);
			prompt_free(&last[i].p);
		}
	}
	memset(last, 0, sizeof last);
	usage_prices_free(prices);
	prices = NULL;
}
