/*
 * usage.h -- one token-usage record for every provider, and what it cost.
 *
 * Each provider reports usage in its own shape, and they disagree on what
 * "input" means: OpenAI's prompt_tokens include the cached tokens, DeepSeek
 * splits them into hit and miss, Anthropic reports cache reads and writes
 * beside an input count that excludes both; pi and zot (the agents) already
 * normalise to input/cacheRead/cacheWrite with input excluding the cache.
 * usage_normalize maps all of them onto one record:
 *
 *   in_miss   input tokens billed at the full price
 *   in_hit    input tokens served from the prompt cache
 *   in_write  input tokens written to the cache (Anthropic-style billing)
 *   out       output tokens (reasoning included, as every provider bills them)
 *   reasoning the part of out spent on reasoning, when reported
 *   cost      USD, from the record when the provider gives it (pi, zot),
 *             else from a price table, else unknown
 *
 * Records add up (usage_add) into session or daemon totals; calls counts the
 * records added and unpriced those whose cost was unknown, so a total never
 * pretends to be complete.
 */
#ifndef COLIBRI_USAGE_H
#define COLIBRI_USAGE_H

#include <stdint.h>

#include <jansson.h>

enum usage_provider {
	USAGE_AUTO,
	USAGE_DEEPSEEK,
	USAGE_OPENAI,
	USAGE_ANTHROPIC,
	USAGE_PI,
	USAGE_ZOT,
};

/* Where cost came from; a total mixing provider and table costs is USAGE_COST_MIXED. */
enum usage_cost_source {
	USAGE_COST_UNKNOWN,
	USAGE_COST_PROVIDER,
	USAGE_COST_TABLE,
	USAGE_COST_MIXED
};

struct usage {
	int64_t in_miss;
	int64_t in_hit;
	int64_t in_write;
	int64_t out;
	int64_t reasoning;
	double cost; /* USD; 0 when cost_source is USAGE_COST_UNKNOWN */
	enum usage_cost_source cost_source;
	int64_t calls;    /* records summed into this one (1 for a fresh record) */
	int64_t unpriced; /* of those, records without a known cost */
};

/* Per-million-token prices in USD. */
struct usage_price {
	double miss;
	double hit;
	double write;
	double out;
};

struct usage_prices;

/* "deepseek", "openai", "anthropic", "pi", "zot" ("auto" for USAGE_AUTO). */
const char *usage_provider_name(enum usage_provider);
/* Parse a provider name (including "auto"); returns -1 if unknown. */
int usage_provider_parse(const char *, enum usage_provider *);
/* Guess the provider from the keys of a usage object; USAGE_AUTO if none fits. */
enum usage_provider usage_detect(const json_t *usage);

/*
 * Load a price table from {"models": {NAME: PRICE}, "providers": {NAME: PRICE}}
 * where PRICE is {"miss": n, "hit": n, "write": n, "out": n} in USD per
 * million tokens (missing members are 0).  Returns a table (free with
 * usage_prices_free) or NULL with *cause allocated.
 */
struct usage_prices *usage_prices_load(const json_t *config, char **cause);
void usage_prices_free(struct usage_prices *);
/* The price for model, else for provider; returns 0 if found, -1 if not.  Either may be NULL. */
int usage_prices_lookup(const struct usage_prices *, enum usage_provider, const char *model,
                        struct usage_price *out);

/*
 * Normalise one usage object.  obj is the usage object itself or any object
 * holding it under "usage" (an API response, a pi message); a "model" string
 * beside it is used for pricing when model is NULL.  provider USAGE_AUTO
 * detects the shape.  prices may be NULL.  Returns 0 and fills *out (calls 1),
 * or -1 with *cause allocated (caller frees) on a shape it cannot read or a
 * negative or non-integer count.
 */
int usage_normalize(const json_t *obj, enum usage_provider provider, const char *model,
                    const struct usage_prices *prices, struct usage *out, char **cause);
/* Price a record from p (overwrites cost, sets USAGE_COST_TABLE). */
void usage_apply_price(struct usage *, const struct usage_price *p);
/* sum += r.  A zeroed struct usage is the empty total. */
void usage_add(struct usage *sum, const struct usage *r);
/* in_hit / (in_hit + in_miss + in_write); 0 when there was no input. */
double usage_hit_share(const struct usage *);
/*
 * {"in_miss", "in_hit", "in_write", "out", "reasoning", "cost" (number or
 * null), "cost_source", "hit_share", "calls", "unpriced"}.  New reference.
 */
json_t *usage_to_json(const struct usage *);

#endif
