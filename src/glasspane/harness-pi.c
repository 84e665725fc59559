/*
 * harness-pi.c -- decoder for pi's JSONL (`pi --mode json` and `--mode rpc`).
 *
 * Shapes are those of pi 0.73.1 as captured in fixtures/pi/.  Every line is
 * framed and typed by the scanner; the scanner also reads the few small
 * fields that sit near the front of bulky lines (message.role,
 * assistantMessageEvent.type, toolName).  jansson is only used for lines that
 * are rare and carry structured data: the assistant's message_end (stopReason,
 * errorMessage, usage), auto_retry_*, extension_ui_request and rpc responses.
 */
#include <string.h>

#include "harness-json.h"
#include "harness.h"
#include "jscan.h"

struct pi_type {
	const char *name;
	enum gp_kind kind;
};

static const struct pi_type pi_types[] = {
        {"session", GP_EV_SESSION},
        {"agent_start", GP_EV_RUN_START},
        {"turn_start", GP_EV_TURN_START},
        {"message_start", GP_EV_MESSAGE_START},
        {"message_update", GP_EV_MESSAGE_UPDATE},
        {"message_end", GP_EV_MESSAGE_END},
        {"tool_execution_start", GP_EV_TOOL_START},
        {"tool_execution_update", GP_EV_TOOL_UPDATE},
        {"tool_execution_end", GP_EV_TOOL_END},
        {"turn_end", GP_EV_TURN_END},
        {"agent_end", GP_EV_RUN_END},
        {"auto_retry_start", GP_EV_RETRY_START},
        {"auto_retry_end", GP_EV_RETRY_END},
        {"compaction_start", GP_EV_COMPACTION},
        {"compaction_end", GP_EV_COMPACTION},
        {"queue_update", GP_EV_QUEUE_UPDATE},
        {"extension_ui_request", GP_EV_UI_REQUEST},
        {"response", GP_EV_RESPONSE},
};

/* Top-level members the scanner picks out of every line. */
enum { PI_TYPE, PI_AME, PI_MESSAGE, PI_TOOLNAME, PI_ID, PI_NKEYS };
static const char *const pi_keys[PI_NKEYS] = {"type", "assistantMessageEvent", "message",
                                              "toolName", "id"};

static enum gp_kind
pi_kind(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(pi_types) / sizeof(pi_types[0]); i++)
		if (strcmp(pi_types[i].name, type) == 0)
			return pi_types[i].kind;
	return GP_EV_UNKNOWN;
}

/* message.role, read by the scanner from the front of the message object. */
static enum gp_role
pi_role(struct jscan_span msg)
{
	static const char *const keys[] = {"role"};
	struct jscan_span role;

	if (msg.p == NULL || jscan_object(msg.p, msg.len, keys, &role, 1, JSCAN_EARLY) < 0)
		return GP_ROLE_NONE;
	if (jscan_string_is(role, "user"))
		return GP_ROLE_USER;
	if (jscan_string_is(role, "assistant"))
		return GP_ROLE_ASSISTANT;
	if (jscan_string_is(role, "toolResult"))
		return GP_ROLE_TOOL;
	return role.p != NULL ? GP_ROLE_OTHER : GP_ROLE_NONE;
}

/* assistantMessageEvent.type: text_*, thinking_*, toolcall_*. */
static enum gp_delta
pi_delta(struct jscan_span ame)
{
	static const char *const keys[] = {"type"};
	struct jscan_span t;
	char buf[32];

	if (ame.p == NULL || jscan_object(ame.p, ame.len, keys, &t, 1, JSCAN_EARLY) < 0 ||
	    jscan_string(t, buf, sizeof(buf)) < 0)
		return GP_DELTA_NONE;
	if (strncmp(buf, "text", 4) == 0)
		return GP_DELTA_TEXT;
	if (strncmp(buf, "thinking", 8) == 0)
		return GP_DELTA_THINKING;
	if (strncmp(buf, "toolcall", 8) == 0)
		return GP_DELTA_TOOLCALL;
	return GP_DELTA_NONE;
}

static enum gp_stop
pi_stop(const char *reason)
{
	if (strcmp(reason, "error") == 0)
		return GP_STOP_ERROR;
	if (strcmp(reason, "aborted") == 0)
		return GP_STOP_ABORTED;
	return GP_STOP_OK;
}

static void
pi_usage(json_t *usage, struct gp_event *ev)
{
	json_t *cost;

	if (!json_is_object(usage))
		return;
	ev->has_usage = 1;
	ev->usage.input = gp_json_i64(usage, "input");
	ev->usage.output = gp_json_i64(usage, "output");
	ev->usage.cache_read = gp_json_i64(usage, "cacheRead");
	ev->usage.cache_write = gp_json_i64(usage, "cacheWrite");
	ev->usage.total_tokens = gp_json_i64(usage, "totalTokens");
	cost = json_object_get(usage, "cost");
	ev->usage.cost =
	        json_is_object(cost) ? gp_json_num(cost, "total") : gp_json_num(usage, "cost");
}

/* The text parts of an assistant message's content (a string is the text itself). */
static void
pi_text(json_t *content, struct gp_event *ev)
{
	json_t *part;
	size_t i;

	if (json_is_string(content)) {
		gp_text_add(ev, json_string_value(content));
		return;
	}
	json_array_foreach(content, i, part)
	{
		if (json_is_string(json_object_get(part, "type")) &&
		    strcmp(json_string_value(json_object_get(part, "type")), "text") == 0)
			gp_text_add(ev, json_string_value(json_object_get(part, "text")));
	}
}

static void
pi_assistant_end(json_t *root, struct gp_event *ev)
{
	json_t *msg = json_object_get(root, "message");
	char reason[32];

	gp_json_str(msg, "stopReason", reason, sizeof(reason));
	ev->stop = pi_stop(reason);
	gp_json_str(msg, "errorMessage", ev->message, sizeof(ev->message));
	pi_usage(json_object_get(msg, "usage"), ev);
	pi_text(json_object_get(msg, "content"), ev);
}

static void
pi_retry(json_t *root, struct gp_event *ev)
{
	ev->attempt = (int)gp_json_i64(root, "attempt");
	if (ev->kind == GP_EV_RETRY_START) {
		ev->max_attempts = (int)gp_json_i64(root, "maxAttempts");
		ev->delay_ms = gp_json_i64(root, "delayMs");
		gp_json_str(root, "errorMessage", ev->message, sizeof(ev->message));
		return;
	}
	ev->success = gp_json_true(root, "success");
	gp_json_str(root, "finalError", ev->message, sizeof(ev->message));
}

static void
pi_ui(json_t *root, struct gp_event *ev)
{
	static const char *const dialogs[] = {"select", "confirm", "input", "editor"};
	size_t i;

	gp_json_str(root, "method", ev->name, sizeof(ev->name));
	gp_json_str(root, "title", ev->message, sizeof(ev->message));
	for (i = 0; i < sizeof(dialogs) / sizeof(dialogs[0]); i++)
		if (strcmp(ev->name, dialogs[i]) == 0)
			ev->blocking = 1;
}

static void
pi_response(json_t *root, struct gp_event *ev)
{
	gp_json_str(root, "command", ev->name, sizeof(ev->name));
	ev->success = gp_json_true(root, "success");
	gp_json_str(root, "error", ev->message, sizeof(ev->message));
}

static int
pi_needs_tree(const struct gp_event *ev)
{
	switch (ev->kind) {
	case GP_EV_MESSAGE_END:
		return ev->role == GP_ROLE_ASSISTANT;
	case GP_EV_RETRY_START:
	case GP_EV_RETRY_END:
	case GP_EV_UI_REQUEST:
	case GP_EV_RESPONSE:
		return 1;
	default:
		return 0;
	}
}

/* The rare lines that need a tree: parse once and pick the fields. */
static int
pi_decode_tree(const char *line, size_t len, struct gp_event *ev)
{
	json_t *root = gp_json_load(line, len);

	if (root == NULL)
		return -1;
	if (ev->kind == GP_EV_MESSAGE_END)
		pi_assistant_end(root, ev);
	else if (ev->kind == GP_EV_RETRY_START || ev->kind == GP_EV_RETRY_END)
		pi_retry(root, ev);
	else if (ev->kind == GP_EV_UI_REQUEST)
		pi_ui(root, ev);
	else
		pi_response(root, ev);
	json_decref(root);
	return 0;
}

int
harness_pi_decode(const char *line, size_t len, struct gp_event *ev)
{
	struct jscan_span v[PI_NKEYS];

	gp_event_clear(ev);
	if (jscan_object(line, len, pi_keys, v, PI_NKEYS, JSCAN_FULL) < 0 ||
	    jscan_string(v[PI_TYPE], ev->type, sizeof(ev->type)) < 0)
		goto fail;
	ev->kind = pi_kind(ev->type);
	if (ev->kind == GP_EV_MESSAGE_START || ev->kind == GP_EV_MESSAGE_END)
		ev->role = pi_role(v[PI_MESSAGE]);
	else if (ev->kind == GP_EV_MESSAGE_UPDATE)
		ev->delta = pi_delta(v[PI_AME]);
	else if (ev->kind >= GP_EV_TOOL_START && ev->kind <= GP_EV_TOOL_END)
		jscan_string(v[PI_TOOLNAME], ev->name, sizeof(ev->name));
	else if (ev->kind == GP_EV_SESSION)
		jscan_string(v[PI_ID], ev->name, sizeof(ev->name)); /* the session's id */
	if (pi_needs_tree(ev) && pi_decode_tree(line, len, ev) < 0)
		goto fail;
	return 0;
fail:
	gp_event_clear(ev);
	return -1;
}
