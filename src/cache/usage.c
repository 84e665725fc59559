/*
 * usage.c -- provider usage objects to one record, priced.
 *
 * One small reader per provider shape; each reads counts with usage_count,
 * which accepts a missing or null member as 0 and refuses anything that is
 * not a non-negative integer, so a malformed record is an error and never a
 * silently wrong total.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "usage.h"

struct usage_prices {
	json_t *models;    /* name -> price object, validated */
	json_t *providers; /* name -> price object, validated */
};

static const char *const usage_names[] = {"auto", "deepseek", "openai", "anthropic", "pi", "zot"};

#define USAGE_NPROVIDERS (sizeof usage_names / sizeof usage_names[0])

const char *
usage_provider_name(enum usage_provider p)
{
	if ((unsigned)p >= USAGE_NPROVIDERS)
		return NULL;
	return usage_names[p];
}

int
usage_provider_parse(const char *s, enum usage_provider *out)
{
	size_t i;

	for (i = 0; i < USAGE_NPROVIDERS; i++)
		if (strcmp(s, usage_names[i]) == 0) {
			*out = (enum usage_provider)i;
			return 0;
		}
	return -1;
}

static int
usage_has(const json_t *o, const char *k)
{
	return json_object_get(o, k) != NULL;
}

enum usage_provider
usage_detect(const json_t *u)
{
	if (!json_is_object(u))
		return USAGE_AUTO;
	if (usage_has(u, "prompt_cache_hit_tokens") || usage_has(u, "prompt_cache_miss_tokens"))
		return USAGE_DEEPSEEK;
	if (usage_has(u, "cacheRead") || usage_has(u, "cacheWrite") ||
	    usage_has(u, "totalTokens") || json_is_object(json_object_get(u, "cost")))
		return USAGE_PI;
	if (usage_has(u, "cache_read") || usage_has(u, "cache_write") || usage_has(u, "cost_usd"))
		return USAGE_ZOT;
	if (usage_has(u, "cache_read_input_tokens") || usage_has(u, "cache_creation_input_tokens"))
		return USAGE_ANTHROPIC;
	if (usage_has(u, "prompt_tokens") || usage_has(u, "input_tokens_details") ||
	    usage_has(u, "output_tokens_details"))
		return USAGE_OPENAI;
	if (usage_has(u, "input_tokens"))
		return USAGE_ANTHROPIC;
	if (usage_has(u, "input") || usage_has(u, "output"))
		return USAGE_PI;
	return USAGE_AUTO;
}

/* Read o[k] (or o[k][k2]) as a count; missing or null is 0. */
static int
usage_count(const json_t *o, const char *k, const char *k2, int64_t *out, char **cause)
{
	const json_t *v = json_object_get(o, k);
	double d;

	if (k2 != NULL && v != NULL && !json_is_null(v))
		v = json_object_get(v, k2);
	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = json_integer_value(v);
		return 0;
	}
	d = json_is_real(v) ? json_real_value(v) : -1;
	if (d >= 0 && d < 9.0e15 && floor(d) == d) {
		*out = (int64_t)d;
		return 0;
	}
	xasprintf(cause, "usage %s%s%s must be a non-negative integer", k, k2 ? "." : "",
	          k2 ? k2 : "");
	return -1;
}

static int
usage_read_deepseek(const json_t *u, struct usage *r, char **cause)
{
	int64_t prompt;

	if (usage_count(u, "prompt_cache_hit_tokens", NULL, &r->in_hit, cause) == -1 ||
	    usage_count(u, "prompt_cache_miss_tokens", NULL, &r->in_miss, cause) == -1 ||
	    usage_count(u, "prompt_tokens", NULL, &prompt, cause) == -1 ||
	    usage_count(u, "completion_tokens", NULL, &r->out, cause) == -1 ||
	    usage_count(u, "completion_tokens_details", "reasoning_tokens", &r->reasoning, cause) ==
	            -1)
		return -1;
	if (!usage_has(u, "prompt_cache_miss_tokens") && prompt >= r->in_hit)
		r->in_miss = prompt - r->in_hit;
	return 0;
}

/* Chat Completions (prompt_tokens) or Responses (input_tokens) shape. */
static int
usage_read_openai(const json_t *u, struct usage *r, char **cause)
{
	int responses = !usage_has(u, "prompt_tokens") && usage_has(u, "input_tokens");
	const char *in = responses ? "input_tokens" : "prompt_tokens";
	const char *out = responses ? "output_tokens" : "completion_tokens";
	int64_t prompt;

	if (usage_count(u, in, NULL, &prompt, cause) == -1 ||
	    usage_count(u, responses ? "input_tokens_details" : "prompt_tokens_details",
	                "cached_tokens", &r->in_hit, cause) == -1 ||
	    usage_count(u, out, NULL, &r->out, cause) == -1 ||
	    usage_count(u, responses ? "output_tokens_details" : "completion_tokens_details",
	                "reasoning_tokens", &r->reasoning, cause) == -1)
		return -1;
	if (r->in_hit > prompt) {
		xasprintf(cause, "usage cached_tokens exceeds %s", in);
		return -1;
	}
	r->in_miss = prompt - r->in_hit;
	return 0;
}

static int
usage_read_anthropic(const json_t *u, struct usage *r, char **cause)
{
	if (usage_count(u, "input_tokens", NULL, &r->in_miss, cause) == -1 ||
	    usage_count(u, "cache_read_input_tokens", NULL, &r->in_hit, cause) == -1 ||
	    usage_count(u, "cache_creation_input_tokens", NULL, &r->in_write, cause) == -1 ||
	    usage_count(u, "output_tokens", NULL, &r->out, cause) == -1)
		return -1;
	return 0;
}

/* A provider-given cost: a non-negative number, or -1 with *cause on a bad one. */
static int
usage_read_cost(const json_t *v, const char *name, struct usage *r, char **cause)
{
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v))) {
		xasprintf(cause, "usage %s must be a non-negative number", name);
		return -1;
	}
	r->cost = json_number_value(v);
	r->cost_source = USAGE_COST_PROVIDER;
	return 0;
}

static int
usage_read_pi(const json_t *u, struct usage *r, char **cause)
{
	if (usage_count(u, "input", NULL, &r->in_miss, cause) == -1 ||
	    usage_count(u, "cacheRead", NULL, &r->in_hit, cause) == -1 ||
	    usage_count(u, "cacheWrite", NULL, &r->in_write, cause) == -1 ||
	    usage_count(u, "output", NULL, &r->out, cause) == -1)
		return -1;
	return usage_read_cost(json_object_get(json_object_get(u, "cost"), "total"), "cost.total",
	                       r, cause);
}

static int
usage_read_zot(const json_t *u, struct usage *r, char **cause)
{
	if (usage_count(u, "input", NULL, &r->in_miss, cause) == -1 ||
	    usage_count(u, "cache_read", NULL, &r->in_hit, cause) == -1 ||
	    usage_count(u, "cache_write", NULL, &r->in_write, cause) == -1 ||
	    usage_count(u, "output", NULL, &r->out, cause) == -1)
		return -1;
	return usage_read_cost(json_object_get(u, "cost_usd"), "cost_usd", r, cause);
}

/* Find the usage object in obj (itself, obj.usage or obj.message.usage) and its model. */
static const json_t *
usage_unwrap(const json_t *obj, const char **model)
{
	const json_t *msg = json_object_get(obj, "message");
	const json_t *u;

	if (json_is_object(u = json_object_get(obj, "usage"))) {
		if (*model == NULL)
			*model = json_string_value(json_object_get(obj, "model"));
		return u;
	}
	if (json_is_object(msg) && json_is_object(u = json_object_get(msg, "usage"))) {
		if (*model == NULL)
			*model = json_string_value(json_object_get(msg, "model"));
		return u;
	}
	return obj;
}

int
usage_normalize(const json_t *obj, enum usage_provider provider, const char *model,
                const struct usage_prices *prices, struct usage *out, char **cause)
{
	static int (*const readers[])(const json_t *, struct usage *, char **) = {
	        NULL,          usage_read_deepseek, usage_read_openai, usage_read_anthropic,
	        usage_read_pi, usage_read_zot,
	};
	struct usage_price price;
	const json_t *u;

	memset(out, 0, sizeof *out);
	*cause = NULL;
	if (!json_is_object(obj)) {
		*cause = xstrdup("usage must be an object");
		return -1;
	}
	u = usage_unwrap(obj, &model);
	if (provider == USAGE_AUTO && (provider = usage_detect(u)) == USAGE_AUTO) {
		*cause = xstrdup("unrecognised usage object");
		return -1;
	}
	if ((unsigned)provider >= USAGE_NPROVIDERS || readers[provider](u, out, cause) == -1) {
		if (*cause == NULL)
			*cause = xstrdup("unknown usage provider");
		memset(out, 0, sizeof *out);
		return -1;
	}
	out->calls = 1;
	if (out->cost_source == USAGE_COST_UNKNOWN &&
	    usage_prices_lookup(prices, provider, model, &price) == 0)
		usage_apply_price(out, &price);
	out->unpriced = out->cost_source == USAGE_COST_UNKNOWN;
	return 0;
}

void
usage_apply_price(struct usage *r, const struct usage_price *p)
{
	r->cost = ((double)r->in_miss * p->miss + (double)r->in_hit * p->hit +
	           (double)r->in_write * p->write + (double)r->out * p->out) /
	          1e6;
	r->cost_source = USAGE_COST_TABLE;
}

static enum usage_cost_source
usage_merge_source(enum usage_cost_source a, enum usage_cost_source b)
{
	if (a == b || b == USAGE_COST_UNKNOWN)
		return a;
	if (a == USAGE_COST_UNKNOWN)
		return b;
	return USAGE_COST_MIXED;
}

void
usage_add(struct usage *sum, const struct usage *r)
{
	sum->in_miss += r->in_miss;
	sum->in_hit += r->in_hit;
	sum->in_write += r->in_write;
	sum->out += r->out;
	sum->reasoning += r->reasoning;
	sum->cost += r->cost;
	sum->cost_source = usage_merge_source(sum->cost_source, r->cost_source);
	sum->calls += r->calls;
	sum->unpriced += r->unpriced;
}

double
usage_hit_share(const struct usage *r)
{
	int64_t in = r->in_hit + r->in_miss + r->in_write;

	return in > 0 ? (double)r->in_hit / (double)in : 0.0;
}

json_t *
usage_to_json(const struct usage *r)
{
	static const char *const sources[] = {"unknown", "provider", "table", "mixed"};

	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:f, s:I, s:I}", "in_miss",
	                 (json_int_t)r->in_miss, "in_hit", (json_int_t)r->in_hit, "in_write",
	                 (json_int_t)r->in_write, "out", (json_int_t)r->out, "reasoning",
	                 (json_int_t)r->reasoning, "cost",
	                 r->cost_source == USAGE_COST_UNKNOWN ? json_null() : json_real(r->cost),
	                 "cost_source", sources[r->cost_source], "hit_share", usage_hit_share(r),
	                 "calls", (json_int_t)r->calls, "unpriced", (json_int_t)r->unpriced);
}

/* Check one price object: an object whose members are non-negative numbers. */
static int
usage_price_check(const char *name, const json_t *p, char **cause)
{
	static const char *const keys[] = {"miss", "hit", "write", "out"};
	const json_t *v;
	size_t i;

	if (!json_is_object(p)) {
		xasprintf(cause, "price for '%s' must be an object", name);
		return -1;
	}
	for (i = 0; i < 4; i++) {
		v = json_object_get(p, keys[i]);
		if (v != NULL && (!json_is_number(v) || json_number_value(v) < 0 ||
		                  !isfinite(json_number_value(v)))) {
			xasprintf(cause, "price %s.%s must be a non-negative number", name,
			          keys[i]);
			return -1;
		}
	}
	return 0;
}

static json_t *
usage_price_map(const json_t *config, const char *key, char **cause)
{
	const json_t *m = json_object_get(config, key);
	const char *name;
	json_t *p;

	if (m == NULL)
		return json_object();
	if (!json_is_object(m)) {
		xasprintf(cause, "price table '%s' must be an object", key);
		return NULL;
	}
	json_object_foreach((json_t *)m, name,
	                    p) if (usage_price_check(name, p, cause) == -1) return NULL;
	return json_deep_copy(m);
}

struct usage_prices *
usage_prices_load(const json_t *config, char **cause)
{
	struct usage_prices *t;

	*cause = NULL;
	if (!json_is_object(config)) {
		*cause = xstrdup("price table must be an object");
		return NULL;
	}
	t = xcalloc(1, sizeof *t);
	if ((t->models = usage_price_map(config, "models", cause)) == NULL ||
	    (t->providers = usage_price_map(config, "providers", cause)) == NULL) {
		usage_prices_free(t);
		return NULL;
	}
	return t;
}

void
usage_prices_free(struct usage_prices *t)
{
	if (t == NULL)
		return;
	json_decref(t->models);
	json_decref(t->providers);
	free(t);
}

static double
usage_price_member(const json_t *p, const char *k)
{
	const json_t *v = json_object_get(p, k);

	return v != NULL ? json_number_value(v) : 0.0;
}

int
usage_prices_lookup(const struct usage_prices *t, enum usage_provider provider, const char *model,
                    struct usage_price *out)
{
	const json_t *p = NULL;
	const char *pname = usage_provider_name(provider);

	if (t == NULL)
		return -1;
	if (model != NULL)
		p = json_object_get(t->models, model);
	if (p == NULL && pname != NULL)
		p = json_object_get(t->providers, pname);
	if (p == NULL)
		return -1;
	out->miss = usage_price_member(p, "miss");
	out->hit = usage_price_member(p, "hit");
	out->write = usage_price_member(p, "write");
	out->out = usage_price_member(p, "out");
	return 0;
}
