/*
 * server.c -- dispatch of the editor's JSON-RPC messages.
 *
 * The method table is four entries long (initialize, ping, tools/list,
 * tools/call); everything else is -32601, so `server/discover` or
 * `resources/list` get a clean "method not found" rather than a guess.
 * Requests before initialize are served too: the spec asks clients not to
 * send them, and refusing would only break a careless client.
 *
 * A Colibri tool call becomes a struct own_call queued on the daemon link;
 * its answer is sent when the daemon replies, unless the client cancelled it
 * meanwhile.  tools/list waits (up to settle_ms) for the external servers'
 * first listing, so a client that lists right after initialize sees every
 * tool; later changes are announced with notifications/tools/list_changed.
 */
#include "mcp/server.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mcp/dlink.h"
#include "mcp/host.h"
#include "mcp/rpc.h"
#include "mcp/tools.h"

static void mcp_check_done(struct mcp_server *s);

static const char *const mcp_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18",
                                           MCP_PROTOCOL_LATEST, NULL};

struct own_call {
	struct own_call *next;
	struct mcp_server *srv;
	json_t *id;
	const struct mcp_tool *tool;
	int64_t start_ms;
	int cancelled;
};

struct mcp_server {
	uv_loop_t *loop;
	struct dlink *dlink;
	struct host *host;
	json_t *own_tools;
	int allow_spawn; /* offer and run the tools that spawn (--allow-spawn) */
	size_t max_line;
	json_t *deferred; /* ids of tools/list requests waiting for the host */
	struct own_call *calls;
	int initialized;
	void (*send_line)(void *, const char *, size_t);
	void *send_arg;
	int stopping, host_stopped, done_called;
	uv_timer_t grace;
	int grace_open;
	void (*done)(void *);
	void *done_arg;
};

static void
mcp_send(struct mcp_server *s, json_t *msg)
{
	size_t len;
	char *line = rpc_encode(msg, &len);

	json_decref(msg);
	if (line == NULL) {
		log_warnx("an answer could not be encoded as JSON; dropped");
		return;
	}
	s->send_line(s->send_arg, line, len);
	free(line);
}

static void
mcp_host_send(void *arg, json_t *msg)
{
	mcp_send(arg, msg);
}

static json_t *
mcp_tools_list_result(struct mcp_server *s)
{
	json_t *tools = json_copy(s->own_tools);

	if (s->host != NULL)
		host_tools(s->host, tools);
	return json_pack("{s:o}", "tools", tools);
}

static void
mcp_host_settled(void *arg)
{
	struct mcp_server *s = arg;
	json_t *id;
	size_t i;

	json_array_foreach(s->deferred, i, id)
	        mcp_send(s, rpc_result(id, mcp_tools_list_result(s)));
	json_array_clear(s->deferred);
}

static void
mcp_host_tools_changed(void *arg)
{
	struct mcp_server *s = arg;

	if (s->initialized)
		mcp_send(s, rpc_notification("notifications/tools/list_changed", NULL));
}

struct mcp_server *
mcp_server_new(uv_loop_t *loop, const struct mcp_server_opts *o, char **cause)
{
	struct mcp_server *s = xcalloc(1, sizeof *s);
	struct host_events ev = {mcp_host_send, mcp_host_tools_changed, mcp_host_settled, s};

	*cause = NULL;
	s->loop = loop;
	s->send_line = o->send;
	s->send_arg = o->send_arg;
	s->max_line = o->max_line;
	s->allow_spawn = o->allow_spawn;
	s->own_tools = mcp_tools_definitions(o->allow_spawn);
	s->deferred = json_array();
	s->dlink = dlink_new(loop, o->socket, o->daemon_timeout_ms);
	if (o->cfg != NULL) {
		s->host = host_new(loop, o->cfg, &ev, o->max_line, o->settle_ms);
		if (host_start(s->host, cause) == -1) {
			host_free(s->host);
			s->host = NULL;
			mcp_server_free(s);
			return NULL;
		}
	}
	return s;
}

/* ---- requests ---------------------------------------------------------- */

static void
mcp_initialize(struct mcp_server *s, json_t *id, const json_t *params)
{
	const char *want = json_string_value(json_object_get(params, "protocolVersion"));
	const char *ver = MCP_PROTOCOL_LATEST;
	const json_t *ci = json_object_get(params, "clientInfo");
	size_t i;

	if (want == NULL) {
		mcp_send(s, rpc_error(id, RPC_INVALID_PARAMS,
		                      "initialize: \"protocolVersion\" must be a string"));
		return;
	}
	for (i = 0; mcp_versions[i] != NULL; i++)
		if (strcmp(want, mcp_versions[i]) == 0)
			ver = mcp_versions[i];
	log_info("initialize from %s %s: protocol %s, answering %s",
	         json_string_value(json_object_get(ci, "name")) ?: "a client",
	         json_string_value(json_object_get(ci, "version")) ?: "", want, ver);
	mcp_send(s, rpc_result(id,
	                       json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}", "protocolVersion", ver,
	                                 "capabilities", "tools", "listChanged", 1, "serverInfo",
	                                 "name", "colibri-mcp", "version", COLIBRI_VERSION)));
}

static void
mcp_tools_list(struct mcp_server *s, json_t *id)
{
	if (s->host != NULL && !host_settled(s->host)) {
		json_array_append(s->deferred, id);
		return;
	}
	mcp_send(s, rpc_result(id, mcp_tools_list_result(s)));
}

static void
own_call_unlink(struct own_call *c)
{
	struct own_call **pp;

	for (pp = &c->srv->calls; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			return;
		}
	}
}

static void
own_call_done(void *arg, int rc, json_t *result, const struct client_error *err)
{
	struct own_call *c = arg;
	struct mcp_server *s = c->srv;
	json_t *r;

	own_call_unlink(c);
	log_info("call %s: %s in %lld ms", c->tool->name,
	         c->cancelled ? "cancelled"
	         : rc == 0    ? "ok"
	                      : err->code,
	         (long long)(mono_ms() - c->start_ms));
	if (!c->cancelled) {
		r = rc == 0 ? mcp_tool_result(result)
		            : mcp_tool_daemon_failure(c->tool, err, dlink_socket(s->dlink));
		mcp_send(s, rpc_result(c->id, r));
	}
	json_decref(result);
	json_decref(c->id);
	free(c);
	mcp_check_done(s);
}

static void
mcp_own_call(struct mcp_server *s, json_t *id, const struct mcp_tool *t, const json_t *arguments)
{
	struct own_call *c = xcalloc(1, sizeof *c);

	c->srv = s;
	c->id = json_incref(id);
	c->tool = t;
	c->start_ms = mono_ms();
	c->next = s->calls;
	s->calls = c;
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		char *a = json_dumps(arguments, JSON_COMPACT | JSON_ENCODE_ANY);
		log_debug("call %s: arguments %s", t->name, a != NULL ? a : "{}");
		free(a);
	}
	dlink_call(s->dlink, t->cmd, mcp_tool_args(arguments), own_call_done, c);
}

static void
mcp_tools_call(struct mcp_server *s, json_t *id, const json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	const json_t *args = json_object_get(params, "arguments");
	const struct mcp_tool *t;

	if (name == NULL) {
		mcp_send(s, rpc_error(id, RPC_INVALID_PARAMS,
		                      "tools/call: \"name\" must be a string"));
		return;
	}
	if (args != NULL && !json_is_object(args) && !json_is_null(args)) {
		mcp_send(s, rpc_error(id, RPC_INVALID_PARAMS,
		                      "tools/call: \"arguments\" must be an object"));
		return;
	}
	if ((t = mcp_tool_find(name)) != NULL && t->spawns && !s->allow_spawn)
		mcp_send(s,
		         rpc_error(id, RPC_INVALID_PARAMS,
		                   "unknown tool: %s (colibri-mcp offers tools that spawn agents "
		                   "only with --allow-spawn)",
		                   name));
	else if (t != NULL)
		mcp_own_call(s, id, t, args);
	else if (s->host != NULL && host_is_proxied(name))
		host_call(s->host, id, name, params);
	else
		mcp_send(s, rpc_error(id, RPC_INVALID_PARAMS, "unknown tool: %s", name));
}

static void
mcp_request(struct mcp_server *s, const struct rpc_msg *m)
{
	const json_t *p = m->params;

	if (p != NULL && !json_is_object(p) &&
	    (strcmp(m->method, "initialize") == 0 || strcmp(m->method, "ping") == 0 ||
	     strncmp(m->method, "tools/", 6) == 0)) {
		mcp_send(s, rpc_error(m->id, RPC_INVALID_PARAMS, "%s: \"params\" must be an object",
		                      m->method));
		return;
	}
	if (strcmp(m->method, "initialize") == 0)
		mcp_initialize(s, m->id, p);
	else if (strcmp(m->method, "ping") == 0)
		mcp_send(s, rpc_result(m->id, json_object()));
	else if (strcmp(m->method, "tools/list") == 0)
		mcp_tools_list(s, m->id);
	else if (strcmp(m->method, "tools/call") == 0)
		mcp_tools_call(s, m->id, p);
	else
		mcp_send(s,
		         rpc_error(m->id, RPC_METHOD_NOT_FOUND, "method not found: %s", m->method));
}

/* ---- notifications ----------------------------------------------------- */

static void
mcp_cancel(struct mcp_server *s, const json_t *params)
{
	const json_t *id = json_object_get(params, "requestId");
	struct own_call *c;

	if (!rpc_id_valid(id))
		return;
	for (c = s->calls; c != NULL; c = c->next) {
		if (json_equal(c->id, (json_t *)id)) {
			c->cancelled = 1;
			return;
		}
	}
	if (s->host != NULL)
		host_cancel(s->host, id, json_object_get(params, "reason"));
}

static void
mcp_notification(struct mcp_server *s, const struct rpc_msg *m)
{
	if (strcmp(m->method, "notifications/initialized") == 0)
		s->initialized = 1;
	else if (strcmp(m->method, "notifications/cancelled") == 0)
		mcp_cancel(s, m->params);
	else
		log_debug("notification %s ignored", m->method);
}

void
mcp_server_line(struct mcp_server *s, const char *line, size_t len)
{
	struct rpc_msg m;
	size_t i;

	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len)
		return;
	switch (rpc_parse(line, len, &m)) {
	case RPC_REQUEST:
		mcp_request(s, &m);
		break;
	case RPC_NOTIFICATION:
		mcp_notification(s, &m);
		break;
	case RPC_RESPONSE:
		log_debug("a response to nothing colibri-mcp asked; ignored");
		break;
	case RPC_INVALID:
		log_info("refused a message: %d %s", m.code, m.error);
		mcp_send(s, rpc_error(m.id, m.code, "%s", m.error));
		break;
	}
	rpc_msg_clear(&m);
}

void
mcp_server_line_too_long(struct mcp_server *s)
{
	log_warnx("refused a message over the line limit");
	mcp_send(s, rpc_error(NULL, RPC_INVALID_REQUEST,
	                      "message too long: the limit is one line of %zu bytes", s->max_line));
}

/* ---- shutdown ---------------------------------------------------------- */

static void
mcp_grace_closed(uv_handle_t *h)
{
	struct mcp_server *s = h->data;

	s->grace_open = 0;
	if (!s->done_called) {
		s->done_called = 1;
		s->done(s->done_arg);
	}
}

/* Finish the shutdown: close the grace timer, whose close callback calls done. */
static void
mcp_finish(struct mcp_server *s)
{
	if (!s->grace_open || uv_is_closing((uv_handle_t *)&s->grace))
		return;
	uv_timer_stop(&s->grace);
	uv_close((uv_handle_t *)&s->grace, mcp_grace_closed);
}

static void
mcp_check_done(struct mcp_server *s)
{
	if (s->stopping && s->host_stopped && s->calls == NULL)
		mcp_finish(s);
}

static void
mcp_grace_expired(uv_timer_t *t)
{
	struct mcp_server *s = t->data;

	if (s->calls != NULL)
		log_warnx("leaving with daemon calls still in flight");
	if (!s->host_stopped)
		log_warnx("leaving before every external server has exited");
	mcp_finish(s);
}

static void
mcp_host_stopped(void *arg)
{
	struct mcp_server *s = arg;

	s->host_stopped = 1;
	mcp_check_done(s);
}

void
mcp_server_shutdown(struct mcp_server *s, int grace_ms, void (*done)(void *), void *arg)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->done = done;
	s->done_arg = arg;
	uv_timer_init(s->loop, &s->grace);
	s->grace.data = s;
	s->grace_open = 1;
	/* Daemon calls get the external servers' whole grace (TERM, then KILL) and as much again.
	 */
	uv_timer_start(&s->grace, mcp_grace_expired, (uint64_t)grace_ms * 3, 0);
	if (s->host != NULL)
		host_stop(s->host, grace_ms, mcp_host_stopped, s);
	else
		mcp_host_stopped(s);
}

int
mcp_server_clean(const struct mcp_server *s)
{
	return (s->host == NULL || s->host_stopped) && !dlink_busy(s->dlink) && !s->grace_open;
}

void
mcp_server_free(struct mcp_server *s)
{
	struct own_call *c;

	if (s == NULL)
		return;
	while ((c = s->calls) != NULL) {
		s->calls = c->next;
		json_decref(c->id);
		free(c);
	}
	dlink_free(s->dlink);
	host_free(s->host);
	json_decref(s->own_tools);
	json_decref(s->deferred);
	free(s);
}

char *
mcp_server_tools_list_line(int allow_spawn, size_t *len)
{
	json_t *msg =
	        rpc_result(NULL, json_pack("{s:o}", "tools", mcp_tools_definitions(allow_spawn)));
	json_t *id = json_integer(1);
	char *line;

	json_object_set_new(msg, "id", id);
	line = rpc_encode(msg, len);
	json_decref(msg);
	return line;
}
