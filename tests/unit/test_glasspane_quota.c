/*
 * test_glasspane_quota.c -- rate-limit and quota errors: the parser and the glasspane's use of it.
 *
 * The parser (glasspane/quota.h) is checked against a table of texts in the
 * words real providers use (OpenAI, Anthropic, Gemini, DeepSeek, plain HTTP,
 * pi's own retry messages) and of texts that must NOT count: other errors,
 * and times the parser cannot be sure of (no zone, in the past, absurdly
 * far).  Then the machine: a pi run whose final assistant message is a 429
 * leaves quota set with the reset, a successful retry clears it, pi giving up
 * keeps it, a zot error counts too, the real http400 capture does not; and
 * glasspane_park / glasspane_gave_up do what the spawner needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glasspane/glasspane.h"
#include "glasspane/quota.h"

/* 2026-12-03T15:00:00Z */
#define NOW 1796310000000LL
#define S   1000LL

struct qcase {
	const char *text;
	int is_quota;
	int64_t after_ms; /* -1: none */
	int64_t at_ms;    /* 0: none */
};

static const struct qcase cases[] = {
        /* plain HTTP, and the shapes the test agent and the fake LLM write */
        {"429 Too Many Requests", 1, -1, 0},
        {"429 Too Many Requests (Retry-After: 2)", 1, 2 * S, 0},
        {"HTTP 429: Too Many Requests; retry-after=30", 1, 30 * S, 0},
        {"rate limited, retry-after-ms: 1500", 1, 1500, 0},
        {"429 rate limit; Retry-After: Thu, 03 Dec 2026 15:04:05 GMT", 1, -1, 1796310245000LL},
        {"\"retry-after\":\"7\" 429", 1, 7 * S, 0},
        /* OpenAI */
        {"429 Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): "
         "Limit 30000, Used 29000, Requested 2000. Please try again in 2.5s. Visit "
         "https://platform.openai.com/account/rate-limits to learn more.",
         1, 2500, 0},
        {"Rate limit reached for requests. Please try again in 1m20s.", 1, 80 * S, 0},
        {"Please try again in 6ms. rate limit", 1, 6, 0},
        {"429 You exceeded your current quota, please check your plan and billing details.", 1, -1,
         0},
        {"rate limit: x-ratelimit-reset-requests: 6m0s", 1, 360 * S, 0},
        /* Anthropic */
        {"429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"This "
         "request would exceed the rate limit for your organization of 50,000 input tokens "
         "per minute.\"}}",
         1, -1, 0},
        {"rate_limit_error: anthropic-ratelimit-tokens-reset: 2026-12-03T15:04:05Z", 1, -1,
         1796310245000LL},
        {"usage limit reached, resets at 1796310245", 1, -1, 1796310245000LL},
        /* Gemini, DeepSeek */
        {"429 RESOURCE_EXHAUSTED: Quota exceeded for metric generate_content_free_tier_requests. "
         "Please retry in 32.5s.",
         1, 32500, 0},
        {"429 Rate Limit Reached", 1, -1, 0},
        /* absolute resets in other spellings */
        {"quota exceeded, resets at 2026-12-03T16:04:05+01:00", 1, -1, 1796310245000LL},
        {"quota exceeded, reset at 2026-12-03 15:04:05.250Z", 1, -1, 1796310245000LL},
        {"quota exceeded; reset at 15:04 UTC", 1, -1, 1796310240000LL},
        {"quota exceeded; reset at 14:00 GMT", 1, -1, 1796392800000LL}, /* tomorrow's */
        {"quota exceeded; try again at 00:00Z", 1, -1, 1796342400000LL},
        {"rate limit; resets in 5 minutes", 1, 300 * S, 0},
        {"rate limit. Try again in 2 days 3 hours", 1, (2 * 24 + 3) * 3600 * S, 0},
        {"rate limit. Try again in 1 hour and 30 minutes", 1, 90 * 60 * S, 0},
        /* both given: both kept */
        {"429 retry after 30s, resets at 2026-12-03T15:04:05Z", 1, 30 * S, 1796310245000LL},
        /* quota words without a time that can be trusted: nothing invented */
        {"quota exceeded; reset at 15:04", 1, -1, 0},                      /* no zone */
        {"rate limit; resets at 2026-12-03T15:04:05", 1, -1, 0},           /* no zone */
        {"rate limit; resets at 2026-12-02T15:04:05Z", 1, -1, 0},          /* yesterday */
        {"rate limit; resets at 2031-12-02T15:04:05Z", 1, -1, 0},          /* years away */
        {"rate limit; Retry-After: 99999999999", 1, -1, 0},                /* absurd */
        {"rate limit; try again in 30", 1, -1, 0},                         /* no unit */
        {"rate limit; try again in a few minutes", 1, -1, 0},              /* no number */
        {"rate limit; reset at 25:61 UTC", 1, -1, 0},                      /* no clock */
        {"rate limit; resets at Thu, 33 Dec 2026 15:04:05 GMT", 1, -1, 0}, /* no date */
        {"rate limit; connection reset by peer", 1, -1, 0},
        /* not a quota */
        {"400 fake bad request: model refuses", 0, -1, 0},
        {"500 Internal Server Error; Retry-After: 3", 0, -1, 0},
        {"529 overloaded_error", 0, -1, 0},
        {"error 4290: something", 0, -1, 0},
        {"request 14291 failed", 0, -1, 0},
        {"", 0, -1, 0},
};

static void
test_parse_table(void **state)
{
	struct gp_quota q;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = gp_quota_parse(cases[i].text, NOW, &q);

		if (got != cases[i].is_quota || q.after_ms != cases[i].after_ms ||
		    q.at_ms != cases[i].at_ms)
			fail_msg("case %zu %s: got quota %d after %lld at %lld", i, cases[i].text,
			         got, (long long)q.after_ms, (long long)q.at_ms);
	}
	assert_int_equal(gp_quota_parse(NULL, NOW, &q), 0);
}

static void
test_until(void **state)
{
	struct gp_quota q = {-1, 0};

	(void)state;
	assert_int_equal(gp_quota_until(&q, NOW), 0);
	q.after_ms = 3000;
	assert_int_equal(gp_quota_until(&q, NOW), NOW + 3000);
	q.at_ms = NOW + 10000; /* the later of the two */
	assert_int_equal(gp_quota_until(&q, NOW), NOW + 10000);
	q.after_ms = 20000;
	assert_int_equal(gp_quota_until(&q, NOW), NOW + 20000);
}

/* Bytes that end mid-token must not be read past their end. */
static void
test_truncated(void **state)
{
	static const char *const cut[] = {"429 retry-after:",      "429 reset at 2026-12-03T1",
	                                  "429 reset at Thu",      "429 reset at Th",
	                                  "429 try again in 1.",   "429 reset at 15:0",
	                                  "429 resets at 12:00 +1"};
	struct gp_quota q;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		assert_int_equal(gp_quota_parse(cut[i], NOW, &q), 1);
		assert_int_equal(q.after_ms, -1);
		assert_int_equal(q.at_ms, 0);
	}
}

/* ---- the machine ---- */

#define PI_ERR(msg)                                                                                \
	"{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":[],"            \
	"\"stopReason\":\"error\",\"errorMessage\":\"" msg "\"}}"
#define PI_OK                                                                                      \
	"{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":[{\"type\":"    \
	"\"text\",\"text\":\"hi\"}],\"stopReason\":\"stop\"}}"

static void
feed(struct glasspane *gp, const char *line, int64_t now)
{
	struct glasspane_transition t;

	glasspane_feed(gp, line, strlen(line), now, &t);
}

static void
test_pi_quota_then_exit(void **state)
{
	struct glasspane gp;
	struct glasspane_transition t;

	(void)state;
	glasspane_init(&gp, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0, NOW);
	feed(&gp, "{\"type\":\"agent_start\"}", NOW);
	feed(&gp, PI_ERR("429 Too Many Requests (Retry-After: 2)"), NOW + 100);
	assert_int_equal(gp.quota, 1);
	assert_int_equal(gp.quota_until_ms, NOW + 100 + 2000);
	feed(&gp, "{\"type\":\"agent_end\",\"messages\":[]}", NOW + 110);
	assert_int_equal(glasspane_exit(&gp, 0, 0, NOW + 120, &t), 1);
	assert_int_equal(gp.state, GLASSPANE_ERROR);
	assert_int_equal(gp.quota, 1);
	/* The spawner parks it: blocked with its reason, cause quota. */
	assert_int_equal(glasspane_park(&gp, "quota until 15:00:02", NOW + 130, &t), 1);
	assert_int_equal(t.from, GLASSPANE_ERROR);
	assert_int_equal(t.to, GLASSPANE_BLOCKED);
	assert_string_equal(t.reason, "quota until 15:00:02");
	assert_string_equal(t.cause, "quota");
	/* Parked is not error: no second park, no give-up. */
	assert_int_equal(glasspane_park(&gp, "again", NOW + 140, &t), 0);
	assert_int_equal(glasspane_gave_up(&gp, 3), 0);
	/* The next run forgets it. */
	glasspane_restart(&gp, NOW + 2200, &t);
	assert_int_equal(gp.state, GLASSPANE_IDLE);
	assert_int_equal(gp.quota, 0);
	assert_int_equal(gp.quota_until_ms, 0);
}

static void
test_pi_retry_clears_and_gives_up(void **state)
{
	struct glasspane gp;

	(void)state;
	glasspane_init(&gp, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0, NOW);
	feed(&gp, "{\"type\":\"agent_start\"}", NOW);
	feed(&gp, PI_ERR("429 rate limit"), NOW + 10);
	feed(&gp,
	     "{\"type\":\"auto_retry_start\",\"attempt\":1,\"maxAttempts\":3,\"delayMs\":2000,"
	     "\"errorMessage\":\"429 rate limit, try again in 20s\"}",
	     NOW + 20);
	assert_int_equal(gp.quota, 1);
	assert_int_equal(gp.quota_until_ms, NOW + 20 + 20000);
	assert_int_equal(gp.state, GLASSPANE_BLOCKED); /* pi's own wait */
	feed(&gp, "{\"type\":\"agent_start\"}", NOW + 2100);
	feed(&gp, PI_OK, NOW + 2200);
	assert_int_equal(gp.quota, 0); /* the retry worked */
	feed(&gp, PI_ERR("429 rate limit"), NOW + 3000);
	feed(&gp,
	     "{\"type\":\"auto_retry_end\",\"success\":false,\"attempt\":3,"
	     "\"finalError\":\"429 Too Many Requests; Retry-After: 60\"}",
	     NOW + 4000);
	assert_int_equal(gp.quota, 1);
	assert_int_equal(gp.quota_until_ms, NOW + 4000 + 60000);
	/* A later failure of another kind is not a quota. */
	feed(&gp, PI_ERR("400 fake bad request: model refuses"), NOW + 5000);
	assert_int_equal(gp.quota, 0);
	assert_int_equal(gp.quota_until_ms, 0);
}

static void
test_zot_error(void **state)
{
	struct glasspane gp;

	(void)state;
	glasspane_init(&gp, GLASSPANE_HARNESS_ZOT, GLASSPANE_MODE_JSON, 0, NOW);
	feed(&gp, "{\"type\":\"turn_start\"}", NOW);
	feed(&gp, "{\"type\":\"error\",\"message\":\"rate_limit_error: resets at 15:04:05Z\"}",
	     NOW + 10);
	assert_int_equal(gp.quota, 1);
	assert_int_equal(gp.quota_until_ms, 1796310245000LL);
}

static void
test_gave_up(void **state)
{
	struct glasspane gp;
	struct glasspane_transition t;

	(void)state;
	glasspane_init(&gp, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_JSON, 0, NOW);
	glasspane_start(&gp, NOW, &t);
	assert_int_equal(glasspane_gave_up(&gp, 2), 0); /* working: nothing to give up */
	glasspane_exit(&gp, 3, 0, NOW + 10, &t);
	assert_int_equal(glasspane_gave_up(&gp, 2), 1);
	assert_string_equal(gp.reason, "gave up after 2 restarts: exited with status 3");
	assert_int_equal(gp.state, GLASSPANE_ERROR);
	assert_int_equal(gp.quota, 0);
}

/* The real http400 capture: a model error, not a quota. */
static void
test_fixture_http400(void **state)
{
	const char *dir = getenv("COLIBRI_FIXTURES");
	char path[4096], line[65536];
	struct glasspane gp;
	FILE *f;

	(void)state;
	if (dir == NULL)
		skip();
	snprintf(path, sizeof path, "%s/pi/http400.jsonl", dir);
	assert_non_null(f = fopen(path, "r"));
	glasspane_init(&gp, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0, NOW);
	while (fgets(line, sizeof line, f) != NULL)
		feed(&gp, line, NOW);
	fclose(f);
	assert_int_equal(gp.failed, 1);
	assert_int_equal(gp.quota, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_table),
	        cmocka_unit_test(test_until),
	        cmocka_unit_test(test_truncated),
	        cmocka_unit_test(test_pi_quota_then_exit),
	        cmocka_unit_test(test_pi_retry_clears_and_gives_up),
	        cmocka_unit_test(test_zot_error),
	        cmocka_unit_test(test_gave_up),
	        cmocka_unit_test(test_fixture_http400),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
