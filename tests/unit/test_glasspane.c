/*
 * test_glasspane.c -- the glasspane decoders and state machine.
 *
 * The real pi captures in $COLIBRI_FIXTURES/pi/ are replayed line by line
 * through harness_pi_decode + the machine, then the process exit from the
 * capture's .rc file (128+N means signal N), and the final state, reason and
 * usage totals are checked.  Usage is checked against an independent oracle:
 * the assistant message_end lines summed with a full jansson parse.
 * Synthetic pi and zot lines (in the fixtures' shapes) cover what the
 * captures do not: retries, stalls, UI waits, RPC failures, garbage.
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
#include "glasspane/harness.h"
#include "glasspane/jscan.h"

#define MAX_TR 64

struct replay {
	struct glasspane gp;
	struct glasspane_transition tr[MAX_TR];
	char reasons[MAX_TR][GLASSPANE_REASON_MAX];
	char causes[MAX_TR][GP_TYPE_MAX];
	int ntr;
	int64_t now;
};

static void
record(struct replay *r, int changed, const struct glasspane_transition *t)
{
	if (!changed)
		return;
	assert_true(r->ntr < MAX_TR);
	r->tr[r->ntr] = *t;
	snprintf(r->reasons[r->ntr], sizeof(r->reasons[0]), "%s", t->reason);
	snprintf(r->causes[r->ntr], sizeof(r->causes[0]), "%s", t->cause);
	r->ntr++;
}

static void
start(struct replay *r, enum glasspane_harness h, enum glasspane_mode m, int64_t stall_ms)
{
	memset(r, 0, sizeof(*r));
	r->now = 1000;
	glasspane_init(&r->gp, h, m, stall_ms, r->now);
}

/* Feed one line 10 ms after the previous one. */
static int
feed(struct replay *r, const char *line)
{
	struct glasspane_transition t;
	int c;

	r->now += 10;
	c = glasspane_feed(&r->gp, line, strlen(line), r->now, &t);
	record(r, c, &t);
	return c;
}

static int
tick(struct replay *r, int64_t at)
{
	struct glasspane_transition t;
	int c;

	r->now = at;
	c = glasspane_tick(&r->gp, r->now, &t);
	record(r, c, &t);
	return c;
}

static int
do_exit(struct replay *r, int status, int signo)
{
	struct glasspane_transition t;
	int c;

	r->now += 10;
	c = glasspane_exit(&r->gp, status, signo, r->now, &t);
	record(r, c, &t);
	return c;
}

static char *
fixture_path(const char *name)
{
	const char *dir = getenv("COLIBRI_FIXTURES");
	char *p;

	assert_non_null(dir);
	assert_true(asprintf(&p, "%s/pi/%s", dir, name) > 0);
	return p;
}

static void
feed_file(struct replay *r, const char *name)
{
	char *path = fixture_path(name), *line = NULL;
	FILE *f = fopen(path, "r");
	size_t cap = 0;
	ssize_t n;

	assert_non_null(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		r->now += 10;
		struct glasspane_transition t;
		int c = glasspane_feed(&r->gp, line, (size_t)n, r->now, &t);
		record(r, c, &t);
	}
	free(line);
	fclose(f);
	free(path);
}

/* The capture's .rc: exit status, or 128+N for signal N. */
static void
exit_from_rc(struct replay *r, const char *name)
{
	char *path = fixture_path(name);
	FILE *f = fopen(path, "r");
	int rc = -1;

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &rc), 1);
	fclose(f);
	free(path);
	if (rc > 128)
		do_exit(r, 0, rc - 128);
	else
		do_exit(r, rc, 0);
}

/* Oracle: usage summed over assistant message_end lines with a full parse. */
static void
oracle_usage(const char *name, struct gp_usage *u)
{
	char *path = fixture_path(name), *line = NULL;
	FILE *f = fopen(path, "r");
	size_t cap = 0;
	ssize_t n;

	memset(u, 0, sizeof(*u));
	assert_non_null(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		json_t *o = json_loadb(line, (size_t)n, 0, NULL), *m, *us;
		const char *type = json_string_value(json_object_get(o, "type"));
		m = json_object_get(o, "message");
		us = json_object_get(m, "usage");
		if (type != NULL && strcmp(type, "message_end") == 0 && us != NULL) {
			u->input += json_integer_value(json_object_get(us, "input"));
			u->output += json_integer_value(json_object_get(us, "output"));
			u->cache_read += json_integer_value(json_object_get(us, "cacheRead"));
			u->cache_write += json_integer_value(json_object_get(us, "cacheWrite"));
			u->total_tokens += json_integer_value(json_object_get(us, "totalTokens"));
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
	free(path);
}

static void
replay_fixture(struct replay *r, const char *scenario, enum glasspane_mode mode)
{
	char name[64];
	struct gp_usage want;

	start(r, GLASSPANE_HARNESS_PI, mode, 30000);
	snprintf(name, sizeof(name), "%s.jsonl", scenario);
	feed_file(r, name);
	oracle_usage(name, &want);
	assert_int_equal(r->gp.usage.input, want.input);
	assert_int_equal(r->gp.usage.output, want.output);
	assert_int_equal(r->gp.usage.cache_read, want.cache_read);
	assert_int_equal(r->gp.usage.cache_write, want.cache_write);
	assert_int_equal(r->gp.usage.total_tokens, want.total_tokens);
	assert_int_equal(r->gp.ignored_lines, 0);
	snprintf(name, sizeof(name), "%s.rc", scenario);
	exit_from_rc(r, name);
}

static void
test_fixture_text(void **state)
{
	struct replay r;

	(void)state;
	replay_fixture(&r, "text", GLASSPANE_MODE_JSON);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_string_equal(r.gp.reason, "exited cleanly");
	assert_int_equal(r.ntr, 2);
	assert_int_equal(r.tr[0].from, GLASSPANE_IDLE);
	assert_int_equal(r.tr[0].to, GLASSPANE_WORKING);
	assert_string_equal(r.causes[0], "agent_start");
	assert_string_equal(r.causes[1], "exit");
	assert_int_equal(r.gp.usage.input, 42);
	assert_int_equal(r.gp.usage.output, 6);
	assert_int_equal(r.gp.usage.total_tokens, 48);
	assert_int_equal(r.gp.turns, 1);
	assert_int_equal(r.gp.tool_calls, 0);
}

static void
test_fixture_tool(void **state)
{
	struct replay r;

	(void)state;
	replay_fixture(&r, "tool", GLASSPANE_MODE_JSON);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_int_equal(r.gp.tool_calls, 1);
	assert_int_equal(r.gp.turns, 2);
	assert_int_equal(r.gp.usage.input, 50 + 42);
	assert_int_equal(r.gp.usage.total_tokens, 60 + 48);
}

static void
test_fixture_toolslow(void **state)
{
	struct replay r;
	char *path = fixture_path("toolslow.jsonl"), *line = NULL;
	FILE *f = fopen(path, "r");
	size_t cap = 0;
	ssize_t n;
	int saw_tool = 0;

	(void)state;
	/* Watch the activity while the tool runs, then replay for the final state. */
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 30000);
	assert_non_null(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		glasspane_feed(&r.gp, line, (size_t)n, 2000, NULL);
		if (strcmp(r.gp.activity, "tool bash") == 0)
			saw_tool++;
	}
	free(line);
	fclose(f);
	free(path);
	assert_true(saw_tool >= 4); /* start + several updates */
	replay_fixture(&r, "toolslow", GLASSPANE_MODE_JSON);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_int_equal(r.gp.tool_calls, 1);
}

static void
test_fixture_http400(void **state)
{
	struct replay r;

	(void)state;
	replay_fixture(&r, "http400", GLASSPANE_MODE_JSON);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.reason, "400 fake bad request: model refuses");
	assert_string_equal(r.gp.cause, "exit");
	assert_string_equal(r.gp.last_error, "400 fake bad request: model refuses");
}

static void
test_fixture_kill_term(void **state)
{
	struct replay r;

	(void)state;
	replay_fixture(&r, "kill-term", GLASSPANE_MODE_JSON);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.reason, "killed by signal 15 (SIGTERM)");
	assert_string_equal(r.gp.cause, "signal");
	assert_int_equal(r.tr[r.ntr - 1].from, GLASSPANE_WORKING);
}

/*
 * rpc-text: the prompt's response leaves the agent idle, agent_start makes it
 * work, agent_end (no failure, so no retry can follow) returns it to idle,
 * get_state's response changes nothing, and exit 0 after stdin's EOF is a
 * clean end: done.
 */
static void
test_fixture_rpc_text(void **state)
{
	struct replay r;

	(void)state;
	replay_fixture(&r, "rpc-text", GLASSPANE_MODE_RPC);
	assert_int_equal(r.ntr, 3);
	assert_int_equal(r.tr[0].to, GLASSPANE_WORKING);
	assert_int_equal(r.tr[1].from, GLASSPANE_WORKING);
	assert_int_equal(r.tr[1].to, GLASSPANE_IDLE);
	assert_string_equal(r.reasons[1], "prompt finished");
	assert_string_equal(r.causes[1], "agent_end");
	assert_int_equal(r.tr[2].to, GLASSPANE_DONE);
	assert_int_equal(r.gp.usage.total_tokens, 48);
}

#define ASSISTANT_END(stop, extra)                                                                 \
	"{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":[],\"api\":"    \
	"\"openai-completions\",\"usage\":{\"input\":10,\"output\":2,\"cacheRead\":3,"             \
	"\"cacheWrite\":1,\"totalTokens\":16,\"cost\":{\"total\":0.25}},\"stopReason\":\"" stop    \
	"\"" extra "}}"
#define ERR_503 ",\"errorMessage\":\"503 service unavailable\""

static void
failing_attempt(struct replay *r)
{
	feed(r, "{\"type\":\"turn_start\"}");
	feed(r, ASSISTANT_END("error", ERR_503));
	feed(r, "{\"type\":\"turn_end\"}");
	feed(r, "{\"type\":\"agent_end\",\"messages\":[]}");
}

static void
test_retry_then_success(void **state)
{
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 1000);
	feed(&r, "{\"type\":\"agent_start\"}");
	failing_attempt(&r);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
	assert_int_equal(feed(&r, "{\"type\":\"auto_retry_start\",\"attempt\":1,\"maxAttempts\":3,"
	                          "\"delayMs\":2000,\"errorMessage\":\"503 service unavailable\"}"),
	                 1);
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
	assert_string_equal(r.gp.reason, "retry 1/3 in 2000ms: 503 service unavailable");
	assert_string_equal(r.gp.activity, "retry 1/3 in 2000ms");
	/* The retry delay is silence but not a stall, and noise does not end it. */
	assert_int_equal(tick(&r, r.now + 1900), 0);
	assert_int_equal(feed(&r, "{\"type\":\"queue_update\",\"steering\":[]}"), 0);
	assert_int_equal(feed(&r, "{\"type\":\"agent_start\"}"), 1);
	assert_string_equal(r.gp.reason, "retry started");
	feed(&r, "{\"type\":\"turn_start\"}");
	feed(&r, ASSISTANT_END("stop", ""));
	assert_int_equal(feed(&r, "{\"type\":\"auto_retry_end\",\"success\":true,\"attempt\":1}"),
	                 0);
	feed(&r, "{\"type\":\"agent_end\",\"messages\":[]}");
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_int_equal(r.gp.usage.input, 20);
	assert_int_equal(r.gp.usage.total_tokens, 32);
	assert_true(r.gp.usage.cost > 0.49 && r.gp.usage.cost < 0.51);
}

static void
test_retry_exhausted(void **state)
{
	struct replay r;
	char line[256];
	int i;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	feed(&r, "{\"type\":\"agent_start\"}");
	for (i = 1; i <= 3; i++) {
		failing_attempt(&r);
		snprintf(line, sizeof(line),
		         "{\"type\":\"auto_retry_start\",\"attempt\":%d,\"maxAttempts\":3,"
		         "\"delayMs\":%d,\"errorMessage\":\"503 service unavailable\"}",
		         i, 2000 << (i - 1));
		feed(&r, line);
		assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
		feed(&r, "{\"type\":\"agent_start\"}");
		assert_int_equal(r.gp.state, GLASSPANE_WORKING);
	}
	failing_attempt(&r);
	assert_int_equal(feed(&r, "{\"type\":\"auto_retry_end\",\"success\":false,\"attempt\":3,"
	                          "\"finalError\":\"503 service unavailable\"}"),
	                 1);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.reason, "503 service unavailable (gave up after 3 retries)");
	/* pi then exits 0: the first cause stays. */
	assert_int_equal(do_exit(&r, 0, 0), 0);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.cause, "auto_retry_end");
}

static void
test_stall_and_resume(void **state)
{
	struct replay r;
	int64_t t0;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 30000);
	feed(&r, "{\"type\":\"agent_start\"}");
	t0 = r.gp.last_event_ms;
	assert_int_equal(tick(&r, t0 + 29999), 0);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
	assert_int_equal(tick(&r, t0 + 30000), 1);
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
	assert_string_equal(r.gp.reason, "stalled 30s");
	assert_string_equal(r.gp.cause, "stall");
	assert_int_equal(tick(&r, t0 + 45000), 0);
	assert_string_equal(r.gp.activity, "stalled 45s");
	/* Unknown types and garbage do not count as the agent coming back. */
	assert_int_equal(feed(&r, "{\"type\":\"from_the_future\"}"), 0);
	assert_int_equal(feed(&r, "garbage"), 0);
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
	assert_int_equal(feed(&r, "{\"type\":\"turn_start\"}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
	assert_string_equal(r.gp.reason, "resumed");
	assert_string_equal(r.gp.cause, "turn_start");
}

static void
test_unknown_types_ignored(void **state)
{
	struct replay r;
	json_t *before, *after;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 1000);
	feed(&r, "{\"type\":\"agent_start\"}");
	before = glasspane_to_json(&r.gp);
	assert_int_equal(feed(&r, "{\"type\":\"session_tree\",\"x\":[1,{\"y\":null}]}"), 0);
	assert_int_equal(feed(&r, "{\"type\":\"model_select\"}"), 0);
	assert_int_equal(feed(&r, "{\"id\":\"r9\",\"kind\":\"no type at all\"}"), 0);
	after = glasspane_to_json(&r.gp);
	assert_true(json_equal(before, after));
	assert_int_equal(r.gp.ignored_lines, 3);
	json_decref(before);
	json_decref(after);
}

static const char *const garbage[] = {
        "",
        "{",
        "}",
        "not json",
        "[1,2,3]",
        "{\"type\":5}",
        "{\"type\":\"agent_start\"",
        "{\"type\":\"agent_start\"}x",
        "{\"type\":\"agent_start\"}{}",
        "{\"type\":\"agent_start\",}",
        "{\"type\" \"agent_start\"}",
        "{\"type\":\"agent_start\",\"x\":[}",
        "{\"type\":\"agent_start\",\"x\":{]}",
        "{\"type\":\"agent_start\",\"x\":\"unterminated}",
        "{\"type\":\"agent_\x01start\"}",
        "{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"stopReason\":\"error\"",
        "{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"stopReason\":nope}}",
        "{\"type\":\"auto_retry_start\",\"attempt\":01x}",
        "\xff\xfe\xfd",
};

static void
test_garbage_ignored(void **state)
{
	struct replay r;
	size_t i;
	char nested[2100];

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		assert_int_equal(feed(&r, garbage[i]), 0);
	assert_int_equal(r.gp.state, GLASSPANE_IDLE);
	assert_int_equal(r.gp.events, 0);
	assert_int_equal(r.gp.ignored_lines, sizeof(garbage) / sizeof(garbage[0]));
	/* Nesting past the scanner's limit is refused, not recursed into. */
	memset(nested, '[', sizeof(nested));
	memcpy(nested, "{\"type\":\"agent_start\",\"x\":", 26);
	assert_int_equal(glasspane_feed(&r.gp, nested, sizeof(nested), 5000, NULL), 0);
	/* An embedded NUL ends nothing: the length decides. */
	assert_int_equal(glasspane_feed(&r.gp, "{\"type\":\"agent_start\"}\0junk", 27, 5000, NULL),
	                 0);
	assert_int_equal(r.gp.state, GLASSPANE_IDLE);
}

/* Every strict prefix of every real line is rejected. */
static void
test_truncated_lines(void **state)
{
	char *path = fixture_path("tool.jsonl"), *line = NULL;
	FILE *f = fopen(path, "r");
	struct gp_event ev;
	size_t cap = 0, k;
	ssize_t n;

	(void)state;
	assert_non_null(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		assert_int_equal(harness_pi_decode(line, (size_t)n, &ev), 0);
		assert_int_not_equal(ev.kind, GP_EV_UNKNOWN);
		for (k = 0; k + 2 < (size_t)n; k++)
			assert_int_equal(harness_pi_decode(line, k, &ev), -1);
	}
	free(line);
	fclose(f);
	free(path);
}

static void
test_decode_fields(void **state)
{
	struct gp_event ev;
	const char *l;

	(void)state;
	l = "{\"type\":\"message_update\",\"assistantMessageEvent\":{\"type\":\"thinking_delta\"},"
	    "\"message\":{\"role\":\"assistant\"}}";
	assert_int_equal(harness_pi_decode(l, strlen(l), &ev), 0);
	assert_int_equal(ev.kind, GP_EV_MESSAGE_UPDATE);
	assert_int_equal(ev.delta, GP_DELTA_THINKING);
	l = "{\"type\":\"tool_execution_start\",\"toolCallId\":\"c\",\"toolName\":\"r\\u00e9ad\"}";
	assert_int_equal(harness_pi_decode(l, strlen(l), &ev), 0);
	assert_string_equal(ev.name, "r\xc3\xa9"
	                             "ad");
	l = "{\"type\":\"extension_ui_request\",\"id\":\"u1\",\"method\":\"confirm\",\"title\":"
	    "\"Delete?\"}";
	assert_int_equal(harness_pi_decode(l, strlen(l), &ev), 0);
	assert_true(ev.blocking);
	assert_string_equal(ev.message, "Delete?");
	l = "{\"type\":\"extension_ui_request\",\"id\":\"u2\",\"method\":\"notify\"}";
	assert_int_equal(harness_pi_decode(l, strlen(l), &ev), 0);
	assert_false(ev.blocking);
	l = "{\"id\":\"r1\",\"type\":\"response\",\"command\":\"prompt\",\"success\":false,"
	    "\"error\":\"busy\"}";
	assert_int_equal(harness_pi_decode(l, strlen(l), &ev), 0);
	assert_int_equal(ev.kind, GP_EV_RESPONSE);
	assert_string_equal(ev.name, "prompt");
	assert_false(ev.success);
}

static void
test_jscan_strings(void **state)
{
	static const char *const keys[] = {"s"};
	struct jscan_span v;
	char out[8];
	const char *l;

	(void)state;
	l = "{\"s\":\"a\\n\\\"\\\\\\/\\ud83d\\ude00\"}";
	assert_int_equal(jscan_object(l, strlen(l), keys, &v, 1, JSCAN_FULL), 0);
	assert_int_equal(jscan_string(v, out, sizeof(out)), 5);
	assert_memory_equal(out, "a\n\"\\/", 5);
	{
		char big[16];
		assert_int_equal(jscan_string(v, big, sizeof(big)), 9);
		assert_memory_equal(big + 5, "\xf0\x9f\x98\x80", 4);
	}
	/* Truncation never splits a character: "é" is two bytes. */
	l = "{\"s\":\"abcdef\xc3\xa9\"}";
	assert_int_equal(jscan_object(l, strlen(l), keys, &v, 1, JSCAN_FULL), 0);
	assert_int_equal(jscan_string(v, out, sizeof(out)), 6);
	assert_string_equal(out, "abcdef");
	/* A lone low surrogate and a bad escape become '?'. */
	l = "{\"s\":\"\\udc00\\q\"}";
	assert_int_equal(jscan_object(l, strlen(l), keys, &v, 1, JSCAN_FULL), 0);
	assert_int_equal(jscan_string(v, out, sizeof(out)), 2);
	assert_string_equal(out, "??");
	l = "{\"s\":12}";
	assert_int_equal(jscan_object(l, strlen(l), keys, &v, 1, JSCAN_FULL), 0);
	assert_int_equal(jscan_string(v, out, sizeof(out)), -1);
	assert_int_equal(jscan_object("  {}  ", 6, keys, &v, 1, JSCAN_FULL), 0);
	assert_null(v.p);
}

static void
test_zot_done(void **state)
{
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_ZOT, GLASSPANE_MODE_JSON, 30000);
	assert_int_equal(feed(&r, "{\"type\":\"turn_start\"}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
	feed(&r, "{\"type\":\"text_delta\",\"delta\":\"Hi\"}");
	assert_string_equal(r.gp.activity, "answering");
	feed(&r, "{\"type\":\"tool_call\",\"id\":\"t1\",\"name\":\"bash\",\"args\":{}}");
	assert_string_equal(r.gp.activity, "tool bash");
	feed(&r, "{\"type\":\"tool_result\",\"id\":\"t1\",\"output\":\"hi\"}");
	feed(&r, "{\"type\":\"turn_end\"}");
	assert_int_equal(feed(&r, "{\"type\":\"turn_start\"}"), 0);
	feed(&r, "{\"type\":\"assistant_message\",\"text\":\"Hi\"}");
	feed(&r, "{\"type\":\"usage\",\"input\":10,\"output\":5,\"cache_read\":2,"
	         "\"cache_write\":1,\"cost_usd\":0.01}");
	feed(&r, "{\"type\":\"usage\",\"usage\":{\"input\":1,\"output\":1,\"cache_read\":0,"
	         "\"cache_write\":0,\"cost_usd\":0.01}}");
	feed(&r, "{\"type\":\"turn_end\"}");
	assert_int_equal(feed(&r, "{\"type\":\"done\"}"), 0);
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_int_equal(r.gp.turns, 2);
	assert_int_equal(r.gp.tool_calls, 1);
	assert_int_equal(r.gp.usage.input, 11);
	assert_int_equal(r.gp.usage.total_tokens, 20);
	assert_true(r.gp.usage.cost > 0.0199 && r.gp.usage.cost < 0.0201);
}

/*
 * last_message: the text parts of the last assistant message that had text
 * (pi's message_end, zot's assistant_message), joined by newlines, cut on a
 * UTF-8 boundary at GP_TEXT_MAX; a tool-only message or a user's leaves it;
 * a restart forgets it.
 */
static void
test_last_message(void **state)
{
	struct replay r;
	struct glasspane_transition t;
	char *big, *line;
	size_t n = GP_TEXT_MAX + 100, i;
	uint64_t seq;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 30000);
	assert_string_equal(r.gp.last_message, "");
	feed_file(&r, "text.jsonl");
	assert_string_equal(r.gp.last_message, "Hello from the fake model.");
	/* The session header's id is the agent's own session, kept across a restart. */
	assert_string_equal(r.gp.session, "01a2033f-4293-743d-a2bb-cfd2cdcd0bc3");
	seq = r.gp.last_message_seq;
	assert_true(seq > 0);
	/* Text parts joined; thinking and tool calls are not text. */
	feed(&r, "{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":["
	         "{\"type\":\"thinking\",\"thinking\":\"hmm\"},{\"type\":\"text\",\"text\":"
	         "\"one\"},{\"type\":\"toolCall\",\"name\":\"bash\"},{\"type\":\"text\","
	         "\"text\":\"two\"}],\"stopReason\":\"stop\"}}");
	assert_string_equal(r.gp.last_message, "one\ntwo");
	assert_true(r.gp.last_message_seq > seq);
	seq = r.gp.last_message_seq;
	/* A message with no text, and a user's, leave it. */
	feed(&r, "{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":["
	         "{\"type\":\"toolCall\",\"name\":\"bash\"}],\"stopReason\":\"toolUse\"}}");
	feed(&r, "{\"type\":\"message_end\",\"message\":{\"role\":\"user\",\"content\":["
	         "{\"type\":\"text\",\"text\":\"not mine\"}]}}");
	assert_string_equal(r.gp.last_message, "one\ntwo");
	assert_true(r.gp.last_message_seq == seq);
	/* Over the bound: cut, never past a character. */
	big = malloc(n + 1);
	line = malloc(n + 200);
	assert_non_null(big);
	assert_non_null(line);
	for (i = 0; i + 1 < n; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[i] = '\0';
	snprintf(line, n + 200,
	         "{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":"
	         "\"%s\",\"stopReason\":\"stop\"}}",
	         big);
	feed(&r, line);
	assert_true(strlen(r.gp.last_message) < GP_TEXT_MAX);
	assert_true(strlen(r.gp.last_message) >= GP_TEXT_MAX - 2);
	assert_int_equal(strlen(r.gp.last_message) % 2, 0);
	free(big);
	free(line);
	glasspane_restart(&r.gp, 9000, &t);
	assert_string_equal(r.gp.last_message, "");
	assert_string_equal(r.gp.session, "01a2033f-4293-743d-a2bb-cfd2cdcd0bc3");
	assert_true(r.gp.last_message_seq > seq);

	start(&r, GLASSPANE_HARNESS_ZOT, GLASSPANE_MODE_JSON, 30000);
	feed(&r, "{\"type\":\"turn_start\"}");
	feed(&r, "{\"type\":\"assistant_message\",\"text\":\"Hello from zot.\"}");
	assert_string_equal(r.gp.last_message, "Hello from zot.");
}

static void
test_zot_error(void **state)
{
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_ZOT, GLASSPANE_MODE_JSON, 30000);
	feed(&r, "{\"type\":\"turn_start\"}");
	assert_int_equal(feed(&r, "{\"type\":\"error\",\"message\":\"429 rate limited\"}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.reason, "429 rate limited");
	assert_int_equal(do_exit(&r, 1, 0), 0);
	assert_string_equal(r.gp.reason, "429 rate limited");
	/* zot rpc: done without error returns to idle. */
	start(&r, GLASSPANE_HARNESS_ZOT, GLASSPANE_MODE_RPC, 30000);
	feed(&r, "{\"type\":\"turn_start\"}");
	assert_int_equal(feed(&r, "{\"type\":\"done\"}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_IDLE);
	feed(&r, "{\"type\":\"turn_start\"}");
	assert_int_equal(feed(&r, "{\"type\":\"error\",\"error\":{\"message\":\"boom\"}}"), 1);
	assert_string_equal(r.gp.reason, "boom");
}

static void
test_rpc_failure_settles(void **state)
{
	struct replay r;
	int64_t end;

	(void)state;
	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_RPC, 30000);
	feed(&r, "{\"type\":\"agent_start\"}");
	feed(&r, ASSISTANT_END("aborted", ""));
	assert_int_equal(feed(&r, "{\"type\":\"agent_end\",\"messages\":[]}"), 0);
	end = r.now;
	/* The settle will judge the third line fed: its cause's line. */
	assert_int_equal(r.gp.lines, 3);
	assert_int_equal(r.gp.settle_line, 3);
	assert_int_equal(tick(&r, end + GLASSPANE_SETTLE_MS - 1), 0);
	assert_int_equal(tick(&r, end + GLASSPANE_SETTLE_MS), 1);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.reason, "run aborted");
	assert_string_equal(r.gp.cause, "settle");
	/* The next prompt starts over; its success then a clean exit is done. */
	assert_int_equal(feed(&r, "{\"type\":\"agent_start\"}"), 1);
	feed(&r, ASSISTANT_END("stop", ""));
	assert_int_equal(feed(&r, "{\"type\":\"agent_end\",\"messages\":[]}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_IDLE);
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	/* A retry right after a failed agent_end blocks instead of settling. */
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_RPC, 30000);
	feed(&r, "{\"type\":\"agent_start\"}");
	failing_attempt(&r);
	feed(&r,
	     "{\"type\":\"auto_retry_start\",\"attempt\":1,\"maxAttempts\":3,\"delayMs\":2000}");
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
	assert_int_equal(tick(&r, r.now + 1000), 0);
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
}

static void
test_ui_wait(void **state)
{
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_RPC, 1000);
	feed(&r, "{\"type\":\"agent_start\"}");
	assert_int_equal(feed(&r, "{\"type\":\"extension_ui_request\",\"id\":\"u\",\"method\":"
	                          "\"confirm\",\"title\":\"Run rm?\"}"),
	                 1);
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
	assert_string_equal(r.gp.reason, "waiting for extension UI: confirm Run rm?");
	assert_int_equal(tick(&r, r.now + 60000), 0);
	assert_int_equal(feed(&r, "{\"type\":\"extension_ui_request\",\"id\":\"n\",\"method\":"
	                          "\"notify\",\"message\":\"hi\"}"),
	                 0);
	assert_int_equal(feed(&r, "{\"type\":\"tool_execution_start\",\"toolName\":\"bash\"}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
}

static void
test_exits(void **state)
{
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	feed(&r, "{\"type\":\"agent_start\"}");
	assert_int_equal(do_exit(&r, 3, 0), 1);
	assert_string_equal(r.gp.reason, "exited with status 3");
	assert_int_equal(do_exit(&r, 0, 9), 0);
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	feed(&r, "{\"type\":\"agent_start\"}");
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_string_equal(r.gp.reason, "exited with status 0 before the run ended");
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	assert_int_equal(do_exit(&r, 0, 9), 1);
	assert_string_equal(r.gp.reason, "killed by signal 9 (SIGKILL)");
	assert_int_equal(r.tr[0].from, GLASSPANE_IDLE);
	/* After the exit, late lines change no state. */
	assert_int_equal(feed(&r, "{\"type\":\"agent_start\"}"), 0);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
}

/* The spawner's faults go through glasspane_fault: error from any state; the exit after it changes
 * nothing. */
static void
test_fault(void **state)
{
	struct glasspane_transition t;
	char longer[GLASSPANE_REASON_MAX * 2];
	struct replay r;
	size_t i;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	feed(&r, "{\"type\":\"agent_start\"}");
	assert_int_equal(glasspane_fault(&r.gp, "output flood", "spawner", 5000, &t), 1);
	assert_int_equal(t.from, GLASSPANE_WORKING);
	assert_int_equal(t.to, GLASSPANE_ERROR);
	assert_string_equal(t.reason, "output flood");
	assert_string_equal(t.cause, "spawner");
	assert_int_equal(t.at_ms, 5000);
	assert_string_equal(r.gp.last_error, "output flood");
	assert_int_equal(r.gp.since_ms, 5000);
	assert_int_equal(do_exit(&r, 0, 0), 0);
	assert_string_equal(r.gp.reason, "output flood");
	assert_int_equal(feed(&r, "{\"type\":\"agent_start\"}"), 0);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	/* A clean exit is final, but not for a fault found after it. */
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_int_equal(glasspane_fault(&r.gp, "stage lost", "spawner", 6000, &t), 1);
	assert_int_equal(t.from, GLASSPANE_DONE);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	/* A long reason is cut, on a UTF-8 boundary. */
	for (i = 0; i + 2 < sizeof(longer); i += 2)
		memcpy(longer + i, "\xc3\xa9", 2);
	longer[i] = '\0';
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	assert_int_equal(glasspane_fault(&r.gp, longer, "spawner", 7000, &t), 1);
	assert_true(strlen(r.gp.reason) < GLASSPANE_REASON_MAX);
	assert_int_equal(strlen(r.gp.reason) % 2, 0);
	assert_int_equal(t.from, GLASSPANE_IDLE);
}

/* A restart starts a new run (idle, per-run facts gone) and keeps the agent's totals. */
static void
test_restart(void **state)
{
	struct glasspane_transition t;
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	feed(&r, "{\"type\":\"agent_start\"}");
	feed(&r, "{\"type\":\"tool_execution_start\",\"toolName\":\"bash\"}");
	feed(&r, "not an event");
	assert_int_equal(do_exit(&r, 2, 0), 1);
	assert_int_equal(r.gp.tool_calls, 1);
	assert_int_equal(glasspane_restart(&r.gp, 9000, &t), 1);
	/* Totals over the agent's life: lines fed, and those no rule knew. */
	assert_int_equal(r.gp.lines, 3);
	assert_int_equal(r.gp.ignored_lines, 1);
	assert_int_equal(t.from, GLASSPANE_ERROR);
	assert_int_equal(t.to, GLASSPANE_IDLE);
	assert_string_equal(t.reason, "restarted");
	assert_string_equal(t.cause, "restart");
	assert_int_equal(t.at_ms, 9000);
	assert_int_equal(r.gp.tool_calls, 1);
	assert_int_equal(r.gp.since_ms, 9000);
	/* The new run is judged afresh: its exit counts again. */
	assert_int_equal(feed(&r, "{\"type\":\"agent_start\"}"), 1);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
}

static int
proc_start(struct replay *r)
{
	struct glasspane_transition t;
	int c;

	r->now += 10;
	c = glasspane_start(&r->gp, r->now, &t);
	record(r, c, &t);
	return c;
}

/*
 * A local program in JSON mode is supervised by its process: working from its
 * start, lines that are no events change nothing (and never stall it), done
 * on exit 0, error with the status otherwise.  Its pi events still count.
 */
static void
test_local_plain(void **state)
{
	struct replay r;

	(void)state;
	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_JSON, 200);
	assert_int_equal(proc_start(&r), 1);
	assert_int_equal(r.tr[0].from, GLASSPANE_IDLE);
	assert_int_equal(r.tr[0].to, GLASSPANE_WORKING);
	assert_string_equal(r.reasons[0], "process started");
	assert_string_equal(r.causes[0], "start");
	assert_string_equal(r.gp.activity, "running");
	assert_int_equal(proc_start(&r), 0);
	assert_int_equal(feed(&r, "hello"), 0);
	assert_int_equal(feed(&r, "{\"type\":\"not-an-event\"}"), 0);
	assert_int_equal(r.gp.ignored_lines, 2);
	/* Silence is not a stall for a program that spoke no event. */
	assert_int_equal(tick(&r, r.now + 60000), 0);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_int_equal(r.gp.state, GLASSPANE_DONE);
	assert_string_equal(r.gp.reason, "exited cleanly");
	assert_int_equal(r.ntr, 2);

	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_JSON, 0);
	proc_start(&r);
	feed(&r, "not json");
	assert_int_equal(do_exit(&r, 3, 0), 1);
	assert_int_equal(r.tr[1].from, GLASSPANE_WORKING);
	assert_int_equal(r.gp.state, GLASSPANE_ERROR);
	assert_string_equal(r.gp.reason, "exited with status 3");

	/* Events are decoded: a run start changes nothing more, the stall clock starts. */
	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_JSON, 200);
	proc_start(&r);
	assert_int_equal(feed(&r, "{\"type\":\"agent_start\"}"), 0);
	assert_int_equal(r.gp.events, 1);
	assert_int_equal(tick(&r, r.now + 300), 1);
	assert_int_equal(r.gp.state, GLASSPANE_BLOCKED);
	assert_string_equal(r.causes[1], "stall");
	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_JSON, 0);
	proc_start(&r);
	feed(&r, "{\"type\":\"agent_start\"}");
	assert_int_equal(do_exit(&r, 0, 0), 1);
	assert_string_equal(r.gp.reason, "exited with status 0 before the run ended");

	/* pi, zot and RPC agents wait for their first event. */
	start(&r, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON, 0);
	assert_int_equal(proc_start(&r), 0);
	assert_string_equal(r.gp.activity, "starting");
	start(&r, GLASSPANE_HARNESS_ZOT, GLASSPANE_MODE_JSON, 0);
	assert_int_equal(proc_start(&r), 0);
	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_RPC, 0);
	assert_int_equal(proc_start(&r), 0);
	assert_int_equal(r.gp.state, GLASSPANE_IDLE);
	/* After a restart the new process starts working again; after an exit nothing. */
	start(&r, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_JSON, 0);
	proc_start(&r);
	do_exit(&r, 1, 0);
	assert_int_equal(proc_start(&r), 0);
	assert_int_equal(glasspane_restart(&r.gp, r.now, NULL), 1);
	assert_int_equal(proc_start(&r), 1);
	assert_int_equal(r.gp.state, GLASSPANE_WORKING);
}

static void
test_snapshot_json(void **state)
{
	struct replay r;
	json_t *o, *u;

	(void)state;
	replay_fixture(&r, "tool", GLASSPANE_MODE_JSON);
	o = glasspane_to_json(&r.gp);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "done");
	assert_string_equal(json_string_value(json_object_get(o, "reason")), "exited cleanly");
	assert_int_equal(json_integer_value(json_object_get(o, "since")), r.now);
	assert_int_equal(json_integer_value(json_object_get(o, "turns")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "tool_calls")), 1);
	assert_true(json_integer_value(json_object_get(o, "last_event_ms")) > 1000);
	assert_non_null(json_string_value(json_object_get(o, "activity")));
	assert_true(json_is_null(json_object_get(o, "last_error")));
	u = json_object_get(o, "usage");
	assert_int_equal(json_integer_value(json_object_get(u, "input")), 92);
	assert_int_equal(json_integer_value(json_object_get(u, "output")), 16);
	assert_int_equal(json_integer_value(json_object_get(u, "cache_read")), 0);
	assert_int_equal(json_integer_value(json_object_get(u, "cache_write")), 0);
	assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 108);
	assert_true(json_is_real(json_object_get(u, "cost")));
	json_decref(o);
}

static void
test_parsers(void **state)
{
	enum glasspane_harness h;
	enum glasspane_mode m;

	(void)state;
	assert_int_equal(glasspane_harness_parse("local", &h), 0);
	assert_int_equal(h, GLASSPANE_HARNESS_LOCAL);
	assert_int_equal(glasspane_harness_parse("claude", &h), -1);
	assert_int_equal(glasspane_mode_parse("rpc", &m), 0);
	assert_int_equal(m, GLASSPANE_MODE_RPC);
	assert_int_equal(glasspane_mode_parse("", &m), -1);
	assert_string_equal(glasspane_state_name(GLASSPANE_BLOCKED), "blocked");
	assert_null(glasspane_signal_name(0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fixture_text),
	        cmocka_unit_test(test_fixture_tool),
	        cmocka_unit_test(test_fixture_toolslow),
	        cmocka_unit_test(test_fixture_http400),
	        cmocka_unit_test(test_fixture_kill_term),
	        cmocka_unit_test(test_fixture_rpc_text),
	        cmocka_unit_test(test_retry_then_success),
	        cmocka_unit_test(test_retry_exhausted),
	        cmocka_unit_test(test_stall_and_resume),
	        cmocka_unit_test(test_unknown_types_ignored),
	        cmocka_unit_test(test_garbage_ignored),
	        cmocka_unit_test(test_truncated_lines),
	        cmocka_unit_test(test_decode_fields),
	        cmocka_unit_test(test_jscan_strings),
	        cmocka_unit_test(test_zot_done),
	        cmocka_unit_test(test_zot_error),
	        cmocka_unit_test(test_rpc_failure_settles),
	        cmocka_unit_test(test_ui_wait),
	        cmocka_unit_test(test_exits),
	        cmocka_unit_test(test_fault),
	        cmocka_unit_test(test_restart),
	        cmocka_unit_test(test_last_message),
	        cmocka_unit_test(test_local_plain),
	        cmocka_unit_test(test_snapshot_json),
	        cmocka_unit_test(test_parsers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
