/*
 * host-rpc.c -- the JSON-RPC conversation with one hosted MCP server.
 *
 * host.c starts the server and hands every line it writes on stdout to
 * hsrv_line; everything said on that line is handled here: the answer to
 * initialize (then notifications/initialized and the first tools/list), the
 * pages of a listing (published when the last one arrives, the client told
 * when the offered list changed), the answer to a forwarded tools/call
 * (passed to the client under its own id), progress (under the client's
 * token), tools/list_changed (a new listing, or one more after the current),
 * log messages, and the server's own requests (ping; anything else is
 * refused).  Server ids are integers counted per process (struct hcall); an
 * answer that matches no call in flight -- cancelled, or from a previous
 * process -- is dropped.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mcp/host-srv.h"
#include "mcp/tools.h"

void
host_send(struct host *h, json_t *msg)
{
	h->ev.send(h->ev.arg, msg);
}

static void
hsrv_write_cb(uv_write_t *w, int status)
{
	free(w->data);
	free(w);
}

/* Send msg (stolen) to the server's stdin; dropped when it is not running. */
void
hsrv_send(struct hsrv *s, json_t *msg)
{
	uv_write_t *w;
	uv_buf_t b;
	size_t len;
	char *line = rpc_encode(msg, &len);

	json_decref(msg);
	if (line == NULL || !s->running || job_stdin(&s->job) == NULL) {
		free(line);
		return;
	}
	w = xcalloc(1, sizeof *w);
	w->data = line;
	b = uv_buf_init(line, (unsigned int)len);
	if (uv_write(w, job_stdin(&s->job), &b, 1, hsrv_write_cb) != 0) {
		free(line);
		free(w);
	}
}

struct hcall *
hsrv_call_new(struct hsrv *s, enum hcall_kind kind)
{
	struct hcall *c = xcalloc(1, sizeof *c);

	c->sid = s->next_sid++;
	c->kind = kind;
	c->start_ms = mono_ms();
	c->next = s->calls;
	s->calls = c;
	return c;
}

void
hcall_free(struct hcall *c)
{
	json_decref(c->cid);
	json_decref(c->token);
	free(c->tool);
	free(c);
}

/* Unlink and return the call with server id sid, or NULL. */
struct hcall *
hsrv_call_take(struct hsrv *s, json_int_t sid)
{
	struct hcall **pp, *c;

	for (pp = &s->calls; (c = *pp) != NULL; pp = &c->next) {
		if (c->sid == sid) {
			*pp = c->next;
			return c;
		}
	}
	return NULL;
}

void
hsrv_request(struct hsrv *s, enum hcall_kind kind, const char *method, json_t *params)
{
	struct hcall *c = hsrv_call_new(s, kind);

	hsrv_send(s, rpc_request(c->sid, method, params));
}

/* The offered definitions of s's tools (a new array). */
json_t *
hsrv_offered(const struct hsrv *s)
{
	json_t *out = json_array(), *t, *d;
	const char *name;
	char *full;
	size_t i;

	json_array_foreach(s->tools, i, t)
	{
		name = json_string_value(json_object_get(t, "name"));
		if (name == NULL || !json_is_object(t) || !hostcfg_allows(s->cfg, name))
			continue;
		d = json_deep_copy(t);
		xasprintf(&full, "%s%s%s", s->cfg->name, HOST_SEP, name);
		json_object_set_new(d, "name", json_string(full));
		free(full);
		json_array_append_new(out, d);
	}
	return out;
}

/* ---- messages from a server ------------------------------------------ */

static void
hsrv_list(struct hsrv *s, const char *cursor)
{
	json_t *params = cursor != NULL ? json_pack("{s:s}", "cursor", cursor) : NULL;

	if (s->listing == NULL)
		s->listing = json_array();
	if (s->state != HS_READY)
		s->state = HS_LISTING;
	hsrv_request(s, HC_LIST, "tools/list", params);
}

static void
hsrv_on_init(struct hsrv *s, const struct rpc_msg *m)
{
	json_t *r = json_object_get(m->root, "result"), *info = json_object_get(r, "serverInfo");

	if (!json_is_object(r)) {
		log_warnx("server %s refused initialize: %s", s->cfg->name,
		          json_string_value(
		                  json_object_get(json_object_get(m->root, "error"), "message"))
		                  ?: "no result");
		job_signal(&s->job, SIGKILL);
		return;
	}
	log_info("server %s: %s %s, protocol %s", s->cfg->name,
	         json_string_value(json_object_get(info, "name")) ?: "?",
	         json_string_value(json_object_get(info, "version")) ?: "?",
	         json_string_value(json_object_get(r, "protocolVersion")) ?: "?");
	hsrv_send(s, rpc_notification("notifications/initialized", NULL));
	hsrv_list(s, NULL);
}

/* The listing finished: publish the new list and tell the client if it changed. */
static void
hsrv_list_done(struct hsrv *s)
{
	json_t *before = s->tools != NULL ? hsrv_offered(s) : json_array(), *after;
	struct host *h = s->h;

	json_decref(s->tools);
	s->tools = s->listing;
	s->listing = NULL;
	after = hsrv_offered(s);
	if (s->state != HS_READY) {
		s->state = HS_READY;
		s->ready_ms = mono_ms();
		uv_timer_stop(&s->timer);
		log_info("server %s ready: %zu tools, %zu offered", s->cfg->name,
		         json_array_size(s->tools), json_array_size(after));
	}
	if (h->settled && !json_equal(before, after))
		h->ev.tools_changed(h->ev.arg);
	json_decref(before);
	json_decref(after);
	hsrv_first_done(s);
	if (s->relist) {
		s->relist = 0;
		hsrv_list(s, NULL);
	}
}

static void
hsrv_on_list(struct hsrv *s, const struct rpc_msg *m)
{
	json_t *r = json_object_get(m->root, "result"), *t;
	const char *cursor = json_string_value(json_object_get(r, "nextCursor"));
	size_t i;

	if (s->listing == NULL)
		s->listing = json_array();
	if (!json_is_object(r))
		log_warnx("server %s: tools/list failed; offering none of its tools", s->cfg->name);
	json_array_foreach(json_object_get(r, "tools"), i, t) json_array_append(s->listing, t);
	if (cursor != NULL) {
		hsrv_request(s, HC_LIST, "tools/list", json_pack("{s:s}", "cursor", cursor));
		return;
	}
	hsrv_list_done(s);
}

static const char *
hcall_outcome(const json_t *root, char *buf, size_t len)
{
	json_t *r = json_object_get(root, "result"), *e = json_object_get(root, "error");

	if (e != NULL) {
		snprintf(buf, len, "error %lld",
		         (long long)json_integer_value(json_object_get(e, "code")));
		return buf;
	}
	return json_is_true(json_object_get(r, "isError")) ? "isError" : "ok";
}

static void
hsrv_on_call(struct hsrv *s, struct hcall *c, const struct rpc_msg *m)
{
	json_t *out = json_object(), *v;
	char buf[48];

	json_object_set_new(out, "jsonrpc", json_string("2.0"));
	json_object_set(out, "id", c->cid);
	if ((v = json_object_get(m->root, "result")) != NULL)
		json_object_set(out, "result", v);
	else
		json_object_set(out, "error", json_object_get(m->root, "error"));
	log_info("call %s: %s in %lld ms", c->tool, hcall_outcome(m->root, buf, sizeof buf),
	         (long long)(mono_ms() - c->start_ms));
	host_send(s->h, out);
}

static void
hsrv_on_response(struct hsrv *s, const struct rpc_msg *m)
{
	struct hcall *c;

	if (!json_is_integer(m->id) || (c = hsrv_call_take(s, json_integer_value(m->id))) == NULL) {
		log_debug("server %s: an answer to no pending request", s->cfg->name);
		return;
	}
	if (c->kind == HC_INIT)
		hsrv_on_init(s, m);
	else if (c->kind == HC_LIST)
		hsrv_on_list(s, m);
	else
		hsrv_on_call(s, c, m);
	hcall_free(c);
}

static void
hsrv_on_progress(struct hsrv *s, const json_t *params)
{
	json_t *tok = json_object_get(params, "progressToken"), *p;
	struct hcall *c;

	for (c = s->calls; c != NULL; c = c->next)
		if (c->kind == HC_CALL && c->token != NULL && json_is_integer(tok) &&
		    json_integer_value(tok) == c->sid)
			break;
	if (c == NULL)
		return;
	p = json_deep_copy(params);
	json_object_set(p, "progressToken", c->token);
	host_send(s->h, rpc_notification("notifications/progress", p));
}

static void
hsrv_on_notification(struct hsrv *s, const struct rpc_msg *m)
{
	const json_t *p = m->params;

	if (strcmp(m->method, "notifications/progress") == 0) {
		hsrv_on_progress(s, p);
	} else if (strcmp(m->method, "notifications/tools/list_changed") == 0) {
		if (s->state == HS_READY && s->listing == NULL)
			hsrv_list(s, NULL);
		else if (s->state == HS_LISTING || s->listing != NULL)
			s->relist = 1;
	} else if (strcmp(m->method, "notifications/message") == 0) {
		char *data = json_dumps(json_object_get(p, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
		log_info("server %s: [%s] %s", s->cfg->name,
		         json_string_value(json_object_get(p, "level")) ?: "log", data ?: "");
		free(data);
	} else {
		log_debug("server %s: notification %s", s->cfg->name, m->method);
	}
}

static void
hsrv_on_request(struct hsrv *s, const struct rpc_msg *m)
{
	if (strcmp(m->method, "ping") == 0)
		hsrv_send(s, rpc_result(m->id, json_object()));
	else
		hsrv_send(s, rpc_error(m->id, RPC_METHOD_NOT_FOUND,
		                       "colibri-mcp does not offer %s to servers", m->method));
}

void
hsrv_line(struct hsrv *s, const char *line, size_t len)
{
	struct rpc_msg m;

	switch (rpc_parse(line, len, &m)) {
	case RPC_RESPONSE:
		hsrv_on_response(s, &m);
		break;
	case RPC_NOTIFICATION:
		hsrv_on_notification(s, &m);
		break;
	case RPC_REQUEST:
		hsrv_on_request(s, &m);
		break;
	case RPC_INVALID:
		log_warnx("server %s sent an invalid message: %s", s->cfg->name, m.error);
		break;
	}
	rpc_msg_clear(&m);
}
