/*
 * test_cache_usage.c -- provider usage objects into one record, priced.
 *
 * DeepSeek, OpenAI, Anthropic and zot shapes are recorded responses as
 * those APIs document them; the pi records come straight from the real pi
 * captures in $COLIBRI_FIXTURES/pi.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/usage.h"

static json_t *
test_json(const char *s)
{
	json_error_t err;
	json_t *v = json_loads(s, 0, &err);

	if (v == NULL)
		fail_msg("bad test JSON: %s", err.text);
	return v;
}

/* Normalise text with the given provider; fails the test on error. */
static struct usage
test_norm(const char *text, enum usage_provider p, const struct usage_prices *prices)
{
	json_t *v = test_json(text);
	struct usage u;
	char *cause = NULL;

	if (usage_normalize(v, p, NULL, prices, &u, &cause) == -1)
		fail_msg("usage_normalize: %s", cause);
	json_decref(v);
	return u;
}

static const char deepseek_warm[] =
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"deepseek-chat\","
        "\"choices\":[],\"usage\":{\"prompt_tokens\":1606,\"completion_tokens\":11,"
        "\"total_tokens\":1617,\"prompt_tokens_details\":{\"cached_tokens\":1536},"
        "\"prompt_cache_hit_tokens\":1536,\"prompt_cache_miss_tokens\":70}}";
static const char deepseek_reasoner[] =
        "{\"prompt_tokens\":20,\"completion_tokens\":410,\"total_tokens\":430,"
        "\"completion_tokens_details\":{\"reasoning_tokens\":380},\"prompt_cache_hit_tokens\":0,"
        "\"prompt_cache_miss_tokens\":20}";
static const char openai_chat[] =
        "{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1920,\"audio_tokens\":0},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":64,\"audio_tokens\":0,"
        "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}";
static const char openai_responses[] =
        "{\"input_tokens\":5000,\"input_tokens_details\":{\"cached_tokens\":4096},"
        "\"output_tokens\":120,\"output_tokens_details\":{\"reasoning_tokens\":100},"
        "\"total_tokens\":5120}";
static const char anthropic_write[] =
        "{\"input_tokens\":21,\"cache_creation_input_tokens\":188086,"
        "\"cache_read_input_tokens\":0,\"output_tokens\":393,\"service_tier\":\"standard\"}";
static const char anthropic_read[] =
        "{\"type\":\"message\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":21,"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":188086,"
        "\"output_tokens\":393}}";
static const char zot_usage[] = "{\"type\":\"usage\",\"input\":1200,\"output\":85,"
                                "\"cache_read\":1024,\"cache_write\":0,\"cost_usd\":0.00123}";

static void
test_usage_deepseek(void **state)
{
	struct usage u;

	(void)state;
	u = test_norm(deepseek_warm, USAGE_AUTO, NULL);
	assert_int_equal(u.in_hit, 1536);
	assert_int_equal(u.in_miss, 70);
	assert_int_equal(u.in_write, 0);
	assert_int_equal(u.out, 11);
	assert_int_equal(u.calls, 1);
	assert_int_equal(u.unpriced, 1);
	assert_int_equal(u.cost_source, USAGE_COST_UNKNOWN);
	assert_true(fabs(usage_hit_share(&u) - 1536.0 / 1606.0) < 1e-12);
	u = test_norm(deepseek_reasoner, USAGE_DEEPSEEK, NULL);
	assert_int_equal(u.reasoning, 380);
	assert_int_equal(u.out, 410);
	assert_int_equal(u.in_miss, 20);
	assert_true(usage_hit_share(&u) == 0.0);
}

static void
test_usage_openai(void **state)
{
	struct usage u;

	(void)state;
	u = test_norm(openai_chat, USAGE_AUTO, NULL);
	assert_int_equal(u.in_hit, 1920);
	assert_int_equal(u.in_miss, 86);
	assert_int_equal(u.out, 300);
	assert_int_equal(u.reasoning, 64);
	u = test_norm(openai_responses, USAGE_OPENAI, NULL);
	assert_int_equal(u.in_hit, 4096);
	assert_int_equal(u.in_miss, 904);
	assert_int_equal(u.out, 120);
	assert_int_equal(u.reasoning, 100);
}

static void
test_usage_anthropic(void **state)
{
	struct usage u;

	(void)state;
	u = test_norm(anthropic_write, USAGE_AUTO, NULL);
	assert_int_equal(u.in_miss, 21);
	assert_int_equal(u.in_write, 188086);
	assert_int_equal(u.in_hit, 0);
	assert_int_equal(u.out, 393);
	u = test_norm(anthropic_read, USAGE_AUTO, NULL);
	assert_int_equal(u.in_hit, 188086);
	assert_true(fabs(usage_hit_share(&u) - 188086.0 / 188107.0) < 1e-12);
}

static void
test_usage_zot(void **state)
{
	struct usage u;

	(void)state;
	u = test_norm(zot_usage, USAGE_AUTO, NULL);
	assert_int_equal(u.in_miss, 1200);
	assert_int_equal(u.in_hit, 1024);
	assert_int_equal(u.out, 85);
	assert_int_equal(u.cost_source, USAGE_COST_PROVIDER);
	assert_true(fabs(u.cost - 0.00123) < 1e-15);
	assert_int_equal(u.unpriced, 0);
}

/* Every pi event in the captures that carries message.usage normalises to it. */
static void
test_usage_pi_fixtures(void **state)
{
	const char *names[] = {"text", "tool", "toolslow", "http400", "rpc-text", NULL};
	const char *dir = getenv("COLIBRI_FIXTURES");
	char path[4096], line[1 << 16];
	int i, seen = 0, final = 0;

	(void)state;
	if (dir == NULL)
		skip();
	for (i = 0; names[i] != NULL; i++) {
		FILE *f;

		snprintf(path, sizeof path, "%s/pi/%s.jsonl", dir, names[i]);
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof line, f) != NULL) {
			json_t *ev = json_loads(line, 0, NULL), *u;
			struct usage r;
			char *cause = NULL;

			u = json_object_get(json_object_get(ev, "message"), "usage");
			if (u == NULL) {
				json_decref(ev);
				continue;
			}
			assert_int_equal(usage_detect(u), USAGE_PI);
			assert_int_equal(usage_normalize(ev, USAGE_AUTO, NULL, NULL, &r, &cause),
			                 0);
			assert_int_equal(r.in_miss,
			                 json_integer_value(json_object_get(u, "input")));
			assert_int_equal(r.out, json_integer_value(json_object_get(u, "output")));
			assert_int_equal(r.in_hit,
			                 json_integer_value(json_object_get(u, "cacheRead")));
			assert_int_equal(r.cost_source, USAGE_COST_PROVIDER);
			if (strcmp(names[i], "text") == 0 &&
			    strcmp(json_string_value(json_object_get(ev, "type")), "message_end") ==
			            0 &&
			    r.out > 0) {
				assert_int_equal(r.in_miss, 42);
				assert_int_equal(r.out, 6);
				final++;
			}
			seen++;
			json_decref(ev);
		}
		fclose(f);
	}
	assert_true(seen > 20);
	assert_int_equal(final, 1);
}

static void
test_usage_prices(void **state)
{
	json_t *cfg = test_json("{\"models\":{\"deepseek-chat\":{\"miss\":0.27,\"hit\":0.07,"
	                        "\"out\":1.10}},\"providers\":{\"anthropic\":{\"miss\":3,"
	                        "\"hit\":0.3,\"write\":3.75,\"out\":15}}}");
	struct usage_prices *t;
	struct usage_price p;
	struct usage u;
	char *cause;

	(void)state;
	assert_non_null(t = usage_prices_load(cfg, &cause));
	/* the model comes from the response object beside the usage */
	u = test_norm(deepseek_warm, USAGE_AUTO, t);
	assert_int_equal(u.cost_source, USAGE_COST_TABLE);
	assert_true(fabs(u.cost - (70 * 0.27 + 1536 * 0.07 + 11 * 1.10) / 1e6) < 1e-15);
	/* no model: the provider's price */
	u = test_norm(anthropic_write, USAGE_ANTHROPIC, t);
	assert_true(fabs(u.cost - (21 * 3 + 188086 * 3.75 + 393 * 15.0) / 1e6) < 1e-12);
	/* a provider-given cost wins over the table */
	u = test_norm(zot_usage, USAGE_ZOT, t);
	assert_int_equal(u.cost_source, USAGE_COST_PROVIDER);
	/* nothing known */
	u = test_norm(openai_chat, USAGE_OPENAI, t);
	assert_int_equal(u.cost_source, USAGE_COST_UNKNOWN);
	assert_int_equal(usage_prices_lookup(t, USAGE_OPENAI, "gpt-x", &p), -1);
	usage_prices_free(t);
	json_decref(cfg);

	cfg = test_json("{\"models\":{\"m\":{\"miss\":-1}}}");
	assert_null(usage_prices_load(cfg, &cause));
	assert_string_equal(cause, "price m.miss must be a non-negative number");
	free(cause);
	json_decref(cfg);
}

static void
test_usage_totals(void **state)
{
	struct usage total, a, b, c;
	json_t *j;

	(void)state;
	memset(&total, 0, sizeof total);
	a = test_norm(deepseek_warm, USAGE_AUTO, NULL);
	b = test_norm(anthropic_read, USAGE_AUTO, NULL);
	c = test_norm(zot_usage, USAGE_AUTO, NULL);
	usage_add(&total, &a);
	usage_add(&total, &b);
	usage_add(&total, &c);
	assert_int_equal(total.calls, 3);
	assert_int_equal(total.unpriced, 2);
	assert_int_equal(total.in_hit, 1536 + 188086 + 1024);
	assert_int_equal(total.in_miss, 70 + 21 + 1200);
	assert_int_equal(total.out, 11 + 393 + 85);
	assert_int_equal(total.cost_source, USAGE_COST_PROVIDER);
	j = usage_to_json(&total);
	assert_int_equal(json_integer_value(json_object_get(j, "calls")), 3);
	assert_true(fabs(json_real_value(json_object_get(j, "hit_share")) -
	                 usage_hit_share(&total)) < 1e-12);
	assert_string_equal(json_string_value(json_object_get(j, "cost_source")), "provider");
	json_decref(j);
	j = usage_to_json(&a);
	assert_true(json_is_null(json_object_get(j, "cost")));
	json_decref(j);
}

static void
test_usage_errors(void **state)
{
	const char *bad[] = {
	        "{\"prompt_tokens\":-1}",
	        "{\"prompt_tokens\":1.5}",
	        "{\"prompt_tokens\":\"7\"}",
	        "{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":11}}",
	        "{\"input\":1,\"cost_usd\":\"free\"}",
	        "{\"hello\":1}",
	        "[1]",
	        NULL};
	enum usage_provider p;
	struct usage u;
	char *cause;
	int i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		json_t *v = test_json(bad[i]);

		cause = NULL;
		assert_int_equal(usage_normalize(v, USAGE_AUTO, NULL, NULL, &u, &cause), -1);
		assert_non_null(cause);
		assert_int_equal(u.calls, 0);
		free(cause);
		json_decref(v);
	}
	assert_int_equal(usage_provider_parse("anthropic", &p), 0);
	assert_int_equal(p, USAGE_ANTHROPIC);
	assert_int_equal(usage_provider_parse("gemini", &p), -1);
	assert_string_equal(usage_provider_name(USAGE_ZOT), "zot");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_usage_deepseek),    cmocka_unit_test(test_usage_openai),
	        cmocka_unit_test(test_usage_anthropic),   cmocka_unit_test(test_usage_zot),
	        cmocka_unit_test(test_usage_pi_fixtures), cmocka_unit_test(test_usage_prices),
	        cmocka_unit_test(test_usage_totals),      cmocka_unit_test(test_usage_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
