/*
 * harness-zot.c -- decoder for zot's JSONL (`zot --json`, `zot rpc`).
 *
 * zot's events are flat and small: turn_start, text_delta, tool_call,
 * tool_result, assistant_message, usage, turn_end, done, error.  We have no
 * capture of a real zot run, so the decoder is lenient about where fields
 * sit: usage numbers may be top-level or inside a "usage" object, a tool's
 * name may be "name", "tool" or "toolName", and an error's text may be
 * "message", a string "error", or "error": {"message"}.  text_delta lines,
 * the bulk of a stream, are only scanned.
 */
#include <string.h>

#include "harness-json.h"
#include "harness.h"
#include "jscan.h"

struct zot_type {
	const char *name;
	enum gp_kind kind;
};

static const struct zot_type zot_types[] = {
        {"turn_start", GP_EV_TURN_START},
        {"text_delta", GP_EV_TEXT},
        {"tool_call", GP_EV_TOOL_START},
        {"tool_result", GP_EV_TOOL_END},
        {"assistant_message", GP_EV_ASSISTANT},
        {"usage", GP_EV_USAGE},
        {"turn_end", GP_EV_TURN_END},
        {"done", GP_EV_RUN_END},
        {"error", GP_EV_ERROR},
};

enum { ZOT_TYPE, ZOT_NAME, ZOT_TOOL, ZOT_TOOLNAME, ZOT_NKEYS };
static const char *const zot_keys[ZOT_NKEYS] = {"type", "name", "tool", "toolName"};

static enum gp_kind
zot_kind(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(zot_types) / sizeof(zot_types[0]); i++)
		if (strcmp(zot_types[i].name, type) == 0)
			return zot_types[i].kind;
	return GP_EV_UNKNOWN;
}

static void
zot_tool_name(const struct jscan_span *v, struct gp_event *ev)
{
	int i;

	for (i = ZOT_NAME; i <= ZOT_TOOLNAME; i++)
		if (jscan_string(v[i], ev->name, sizeof(ev->name)) > 0)
			return;
	ev->name[0] = '\0';
}

static void
zot_usage(json_t *root, struct gp_event *ev)
{
	json_t *u = json_object_get(root, "usage");

	if (!json_is_object(u))
		u = root;
	ev->has_usage = 1;
	ev->usage.input = gp_json_i64(u, "input");
	ev->usage.output = gp_json_i64(u, "output");
	ev->usage.cache_read = gp_json_i64(u, "cache_read");
	ev->usage.cache_write = gp_json_i64(u, "cache_write");
	ev->usage.total_tokens =
	        ev->usage.input + ev->usage.output + ev->usage.cache_read + ev->usage.cache_write;
	ev->usage.cost = gp_json_num(u, "cost_usd");
}

static void
zot_error(json_t *root, struct gp_event *ev)
{
	json_t *e = json_object_get(root, "error");

	if (gp_json_str(root, "message", ev->message, sizeof(ev->message)))
		return;
	if (json_is_string(e))
		gp_copy(ev->message, sizeof(ev->message), json_string_value(e));
	else if (json_is_object(e))
		gp_json_str(e, "message", ev->message, sizeof(ev->message));
	if (ev->message[0] == '\0')
		gp_copy(ev->message, sizeof(ev->message), "zot reported an error");
}

static int
zot_decode_tree(const char *line, size_t len, struct gp_event *ev)
{
	json_t *root = gp_json_load(line, len);

	if (root == NULL)
		return -1;
	if (ev->kind == GP_EV_USAGE)
		zot_usage(root, ev);
	else if (ev->kind == GP_EV_ASSISTANT)
		gp_text_add(ev, json_string_value(json_object_get(root, "text")));
	else
		zot_error(root, ev);
	json_decref(root);
	return 0;
}

int
harness_zot_decode(const char *line, size_t len, struct gp_event *ev)
{
	struct jscan_span v[ZOT_NKEYS];

	gp_event_clear(ev);
	if (jscan_object(line, len, zot_keys, v, ZOT_NKEYS, JSCAN_FULL) < 0 ||
	    jscan_string(v[ZOT_TYPE], ev->type, sizeof(ev->type)) < 0)
		goto fail;
	ev->kind = zot_kind(ev->type);
	if (ev->kind == GP_EV_TOOL_START)
		zot_tool_name(v, ev);
	if (ev->kind == GP_EV_ASSISTANT)
		ev->role = GP_ROLE_ASSISTANT;
	if ((ev->kind == GP_EV_USAGE || ev->kind == GP_EV_ERROR || ev->kind == GP_EV_ASSISTANT) &&
	    zot_decode_tree(line, len, ev) < 0)
		goto fail;
	return 0;
fail:
	gp_event_clear(ev);
	return -1;
}
