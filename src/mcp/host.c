/*
 * host.c -- run third-party MCP servers and proxy their tools.
 *
 * One struct hsrv per configured server.  Its life is a small state machine:
 *
 *   DOWN --spawn--> INIT --initialize ok--> LISTING --last page--> READY
 *     ^                                                              |
 *     +---- BACKOFF <---- teardown (exit + pipes at EOF, or 1 s after exit)
 *
 * A spawn that fails, an initialize that errs or takes longer than 30 s,
 * and a crash all end in teardown: the calls in flight answer isError
 * results, the confinement stage is removed and a timer restarts the server.
 * One timer per server serves every wait of its own (init deadline,
 * backoff, stop escalation); `timer_why` says which.  The exit grace is the
 * job's.
 *
 * Each server process is a job (job/job.h): forked with nothing above
 * descriptor 2, in a process tree of its own that is killed whole, joined
 * on "exited and pipes at EOF" (HOST_EXIT_GRACE_MS after the exit at most).
 *
 * Ids: each server sees its own integer ids (sid), counted per process.  A
 * call keeps the client's id (cid) and progress token to map answers and
 * progress back.  Cancellation removes the call at once, so a late answer
 * finds nothing and is dropped, as the MCP cancellation rules ask.
 */
#include "mcp/host.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/confine.h"
#include "confine/jail-name.h"
#include "job/job.h"
#include "mcp/rpc.h"
#include "mcp/tools.h"

extern char **environ;

#define HOST_SEP             "__"
#define HOST_INIT_TIMEOUT_MS 30000
#define HOST_EXIT_GRACE_MS   1000
#define HOST_BACKOFF_MIN_MS  500
#define HOST_BACKOFF_MAX_MS  30000
#define HOST_STABLE_MS       10000
#define HOST_PROTOCOL        "2025-11-25"

enum hs_state { HS_DOWN, HS_INIT, HS_LISTING, HS_READY, HS_BACKOFF };
enum hs_timer { T_NONE, T_INIT, T_RESTART, T_STOP_TERM, T_STOP_KILL };
enum hcall_kind { HC_INIT, HC_LIST, HC_CALL };

static const char *const hs_state_names[] = {"down", "initialising", "listing tools", "ready",
                                             "restarting"};

struct hcall {
	struct hcall *next;
	json_int_t sid;
	enum hcall_kind kind;
	json_t *cid;   /* HC_CALL: the client's id */
	json_t *token; /* HC_CALL: the client's progressToken, or NULL */
	char *tool;    /* HC_CALL: the offered name */
	int64_t start_ms;
};

struct hsrv {
	struct host *h;
	struct hostcfg_server *cfg;
	enum hs_state state;
	struct job job;
	int job_live; /* the job started and its handles are not closed yet */
	int running;  /* the process has not exited */
	int torn;     /* teardown done for this generation */
	int64_t exit_status;
	int term_signal;
	struct confine_spawn *spawn;
	struct rpc_lines lines, errlines;
	json_int_t next_sid;
	struct hcall *calls;
	json_t *tools;   /* the server's own tools (array), NULL before a listing */
	json_t *listing; /* pages of the listing under way */
	int relist;      /* tools/list_changed arrived during a listing */
	uv_timer_t timer;
	enum hs_timer timer_why;
	int backoff_ms;
	int64_t ready_ms;
	unsigned gen;
	int first_done;
	char tree[TREE_NAME_MAX];
};

/* A call that arrived before the first start settled; replayed then. */
struct hqueued {
	struct hqueued *next;
	json_t *id, *params;
	char *name;
};

struct host {
	uv_loop_t *loop;
	struct hqueued *queued, **queued_tail;
	struct hostcfg cfg;
	struct hsrv *srv;
	struct host_events ev;
	size_t max_line;
	int settle_ms;
	struct confine_opts copts;
	int copts_ok;
	uv_timer_t settle_timer;
	int started, settled, stopping, stopped;
	int grace_ms;
	int timers_open;
	int jobs_set_up; /* job_setup was called */
	void (*stop_done)(void *);
	void *stop_arg;
};

static void hsrv_spawn(struct hsrv *s);
static void hsrv_on_timer(uv_timer_t *t);
static void hsrv_teardown(struct hsrv *s);
static void host_check_stopped(struct host *h);

/* ---- helpers ---------------------------------------------------------- */

static void
host_send(struct host *h, json_t *msg)
{
	h->ev.send(h->ev.arg, msg);
}

static void
hsrv_timer(struct hsrv *s, enum hs_timer why, int ms)
{
	s->timer_why = why;
	uv_timer_start(&s->timer, hsrv_on_timer, (uint64_t)ms, 0);
}

static void
hsrv_write_cb(uv_write_t *w, int status)
{
	free(w->data);
	free(w);
}

/* Send msg (stolen) to the server's stdin; dropped when it is not running. */
static void
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

static struct hcall *
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

static void
hcall_free(struct hcall *c)
{
	json_decref(c->cid);
	json_decref(c->token);
	free(c->tool);
	free(c);
}

/* Unlink and return the call with server id sid, or NULL. */
static struct hcall *
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

static void
hsrv_request(struct hsrv *s, enum hcall_kind kind, const char *method, json_t *params)
{
	struct hcall *c = hsrv_call_new(s, kind);

	hsrv_send(s, rpc_request(c->sid, method, params));
}

/* The offered definitions of s's tools (a new array). */
static json_t *
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

static void hqueued_free(struct hqueued *q);

/* The first start is over: tell the session, then replay the calls that waited for it. */
static void
host_settle(struct host *h)
{
	struct hqueued *q;

	h->settled = 1;
	uv_timer_stop(&h->settle_timer);
	h->ev.settled(h->ev.arg);
	while ((q = h->queued) != NULL) {
		h->queued = q->next;
		host_call(h, q->id, q->name, q->params);
		hqueued_free(q);
	}
	h->queued_tail = &h->queued;
}

static void
host_check_settled(struct host *h)
{
	size_t i;

	if (h->settled)
		return;
	for (i = 0; i < h->cfg.n; i++)
		if (!h->srv[i].first_done)
			return;
	host_settle(h);
}

static void
hsrv_first_done(struct hsrv *s)
{
	if (s->first_done)
		return;
	s->first_done = 1;
	host_check_settled(s->h);
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

static void
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

/* ---- process and pipes ------------------------------------------------ */

static void
hsrv_on_read(struct job *j, int which, const char *p, size_t n)
{
	struct hsrv *s = j->data;
	struct rpc_lines *ls = which == 1 ? &s->lines : &s->errlines;
	const char *line;
	size_t len;
	int r;

	rpc_lines_feed(ls, p, n);
	while ((r = rpc_lines_next(ls, 0, &line, &len)) != 0) {
		if (which == 2) {
			if (r == 1 && len > 0)
				log_info("server %s: stderr: %.*s", s->cfg->name, (int)len, line);
		} else if (r == -1)
			log_warnx("server %s sent a line over %zu bytes; dropped", s->cfg->name,
			          s->h->max_line);
		else if (len > 0)
			hsrv_line(s, line, len);
	}
}

static void
hsrv_on_eof(struct job *j, int which)
{
	struct hsrv *s = j->data;
	const char *line;
	size_t len;
	int r;

	if (which == 2) {
		while ((r = rpc_lines_next(&s->errlines, 1, &line, &len)) != 0)
			if (r == 1 && len > 0)
				log_info("server %s: stderr: %.*s", s->cfg->name, (int)len, line);
		return;
	}
	/* A server that closes its stdout is done talking: end it. */
	if (s->running)
		job_signal(j, SIGTERM);
}

static void
hsrv_on_exit(struct job *j)
{
	struct hsrv *s = j->data;

	s->running = 0;
	s->exit_status = j->exit_code;
	s->term_signal = j->term_signal;
}

/* The join: exited and both pipes at end of file (or the exit grace over). */
static void
hsrv_on_done(struct job *j)
{
	hsrv_teardown(j->data);
}

static void
hsrv_on_closed(struct job *j)
{
	struct hsrv *s = j->data;

	s->job_live = 0;
	host_check_stopped(s->h);
}

/* The status for logs: the confined agent's own status when the stage knows it. */
static void
hsrv_status(const struct hsrv *s, char *buf, size_t len)
{
	struct stage_status st;

	if (s->spawn != NULL) {
		confine_spawn_status(s->spawn, (int)s->exit_status, s->term_signal, &st);
		stage_status_str(&st, buf, len);
		return;
	}
	if (s->term_signal != 0)
		snprintf(buf, len, "signal %d", s->term_signal);
	else
		snprintf(buf, len, "exit %lld", (long long)s->exit_status);
}

static void
hsrv_fail_calls(struct hsrv *s, const char *status)
{
	struct hcall *c;

	while ((c = s->calls) != NULL) {
		s->calls = c->next;
		if (c->kind == HC_CALL) {
			log_info("call %s: server exited (%s) after %lld ms", c->tool, status,
			         (long long)(mono_ms() - c->start_ms));
			host_send(s->h,
			          rpc_result(c->cid,
			                     mcp_tool_failure("%s: server %s exited (%s) during "
			                                      "the call; it is being restarted",
			                                      c->tool, s->cfg->name, status)));
		}
		hcall_free(c);
	}
}

static int
hsrv_backoff(struct hsrv *s)
{
	int ms;

	if (s->ready_ms != 0 && mono_ms() - s->ready_ms >= HOST_STABLE_MS)
		s->backoff_ms = 0;
	ms = s->backoff_ms == 0 ? HOST_BACKOFF_MIN_MS : s->backoff_ms * 2;
	if (ms > HOST_BACKOFF_MAX_MS)
		ms = HOST_BACKOFF_MAX_MS;
	s->backoff_ms = ms;
	return ms;
}

static void
hsrv_teardown(struct hsrv *s)
{
	char status[64], *cause = NULL;
	int ms;

	if (s->torn)
		return;
	s->torn = 1;
	uv_timer_stop(&s->timer);
	hsrv_status(s, status, sizeof status);
	if (s->job_live)
		job_close(&s->job);
	hsrv_fail_calls(s, status);
	json_decref(s->listing);
	s->listing = NULL;
	s->relist = 0;
	if (confine_spawn_finish(s->spawn, &cause) == -1) {
		log_warnx("server %s: %s", s->cfg->name, cause);
		free(cause);
	}
	s->spawn = NULL;
	if (s->h->stopping) {
		log_info("server %s stopped (%s)", s->cfg->name, status);
		s->state = HS_DOWN;
		return;
	}
	ms = hsrv_backoff(s);
	log_warnx("server %s exited (%s); restarting in %d ms", s->cfg->name, status, ms);
	s->state = HS_BACKOFF;
	s->ready_ms = 0;
	hsrv_timer(s, T_RESTART, ms);
	hsrv_first_done(s);
}

/* A failed spawn: nothing ran, so teardown's exit status would mislead. */
static void
hsrv_spawn_failed(struct hsrv *s, const char *why)
{
	log_warnx("server %s: cannot start: %s", s->cfg->name, why);
	s->exit_status = 127;
	s->term_signal = 0;
	hsrv_teardown(s);
}

/* The command's absolute path: as given when it has a slash, else from PATH. */
static char *
hsrv_resolve(const char *cmd)
{
	const char *path = getenv("PATH"), *p, *e;
	char *cand;

	if (strchr(cmd, '/') != NULL)
		return xstrdup(cmd);
	for (p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0'; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		xasprintf(&cand, "%.*s/%s", (int)(e - p), p, cmd);
		if (e > p && access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

/* environ with the server's env on top (a new vector; free the strings and it). */
static char **
hsrv_environ(const struct hsrv *s)
{
	size_t n = 0, k = 0, i;
	const char *name, *eq;
	json_t *v;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + json_object_size(s->cfg->env) + 1, sizeof *env);
	for (i = 0; i < n; i++) {
		eq = strchr(environ[i], '=');
		if (eq != NULL) {
			char *key = xstrndup(environ[i], (size_t)(eq - environ[i]));
			int over = json_object_get(s->cfg->env, key) != NULL;
			free(key);
			if (over)
				continue;
		}
		env[k++] = xstrdup(environ[i]);
	}
	json_object_foreach(s->cfg->env, name, v)
	        xasprintf(&env[k++], "%s=%s", name, json_string_value(v));
	return env;
}

static void
hsrv_strv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* The argv to run: confined through confine_prepare when the server has a jail. */
static struct confine_spawn *
hsrv_command(struct hsrv *s, const char *program, char **cause)
{
	struct confine_opts o = s->h->copts;
	char id[STAGE_ID_MAX + 1];

	snprintf(id, sizeof id, "mcp-%s-%ld-%u", s->cfg->name, (long)getpid(), s->gen);
	o.ro_paths = s->cfg->ro_paths;
	return confine_prepare(&o, &s->cfg->jail, id, program, (const char *const *)s->cfg->args,
	                       s->cfg->env, s->cfg->cwd, cause);
}

static void
hsrv_start_io(struct hsrv *s)
{
	s->running = 1;
	log_info("server %s started (pid %d%s)", s->cfg->name, (int)s->job.proc.pid,
	         s->spawn->stage != NULL ? ", confined" : "");
	s->state = HS_INIT;
	hsrv_request(s, HC_INIT, "initialize",
	             json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", HOST_PROTOCOL,
	                       "capabilities", "clientInfo", "name", "colibri-mcp", "version",
	                       COLIBRI_VERSION));
	hsrv_timer(s, T_INIT, HOST_INIT_TIMEOUT_MS);
}

static void
hsrv_spawn(struct hsrv *s)
{
	struct job_spec o;
	char *program, *wrapper = NULL, *cause = NULL, **env = NULL;
	int rc;

	/* Inside a FreeBSD jail the jail's PATH finds the command, not the host's. */
	if (jail_config_active(&s->cfg->jail) && s->h->copts.backend == CONFINE_BACKEND_JAIL)
		program = xstrdup(s->cfg->command);
	else
		program = hsrv_resolve(s->cfg->command);

	s->gen++;
	s->torn = 0;
	s->next_sid = 1;
	rpc_lines_free(&s->lines);
	rpc_lines_free(&s->errlines);
	rpc_lines_init(&s->lines, s->h->max_line);
	rpc_lines_init(&s->errlines, 8192);
	memset(&o, 0, sizeof o);
	if (program == NULL) {
		xasprintf(&cause, "%s: command not found in PATH", s->cfg->command);
		goto fail;
	}
	if ((s->spawn = hsrv_command(s, program, &cause)) == NULL)
		goto fail;
	/* exec does not search PATH: find bwrap, jexec, mdo... on ours. */
	if ((wrapper = hsrv_resolve(s->spawn->cmd->program)) == NULL) {
		xasprintf(&cause, "%s: command not found in PATH", s->spawn->cmd->program);
		goto fail;
	}
	o.path = wrapper;
	o.argv = s->spawn->cmd->argv;
	o.in = o.out = o.err = PROC_PIPE;
	o.eof_wait_ms = HOST_EXIT_GRACE_MS;
	if (s->spawn->stage == NULL) {
		o.envp = env = hsrv_environ(s);
		o.cwd = s->cfg->cwd;
	} else
		o.envp = environ;
	o.tree = s->tree;
	snprintf(s->tree, sizeof s->tree, "mcp.%u.%u", (unsigned)(s - s->h->srv), s->gen);
	memset(&s->job, 0, sizeof s->job);
	s->job.on_read = hsrv_on_read;
	s->job.on_eof = hsrv_on_eof;
	s->job.on_exit = hsrv_on_exit;
	s->job.on_done = hsrv_on_done;
	s->job.on_closed = hsrv_on_closed;
	s->job.data = s;
	rc = job_start(&s->job, &o, &cause);
	hsrv_strv_free(env);
	if (rc != 0)
		goto fail;
	s->job_live = 1;
	free(program);
	free(wrapper);
	hsrv_start_io(s);
	return;
fail:
	hsrv_spawn_failed(s, cause);
	free(cause);
	free(program);
	free(wrapper);
}

static void
hsrv_on_timer(uv_timer_t *t)
{
	struct hsrv *s = t->data;
	enum hs_timer why = s->timer_why;

	s->timer_why = T_NONE;
	if (why == T_INIT) {
		log_warnx("server %s did not initialise within %d ms; killing it", s->cfg->name,
		          HOST_INIT_TIMEOUT_MS);
		job_signal(&s->job, SIGKILL);
	} else if (why == T_RESTART && s->job_live) {
		hsrv_timer(s, T_RESTART, 50);
	} else if (why == T_RESTART) {
		hsrv_spawn(s);
	} else if (why == T_STOP_TERM && s->running) {
		job_signal(&s->job, SIGTERM);
		hsrv_timer(s, T_STOP_KILL, s->h->grace_ms);
	} else if (why == T_STOP_KILL && s->running) {
		job_signal(&s->job, SIGKILL);
	}
}

/* ---- the host ---------------------------------------------------------- */

struct host *
host_new(uv_loop_t *loop, struct hostcfg *cfg, const struct host_events *ev, size_t max_line,
         int settle_ms)
{
	struct host *h = xcalloc(1, sizeof *h);
	size_t i;

	h->loop = loop;
	h->cfg = *cfg;
	memset(cfg, 0, sizeof *cfg);
	h->ev = *ev;
	h->max_line = max_line;
	h->settle_ms = settle_ms;
	h->srv = xcalloc(h->cfg.n + 1, sizeof *h->srv);
	h->queued_tail = &h->queued;
	for (i = 0; i < h->cfg.n; i++) {
		h->srv[i].h = h;
		h->srv[i].cfg = &h->cfg.servers[i];
		h->srv[i].torn = 1; /* nothing to tear down before the first spawn */
		rpc_lines_init(&h->srv[i].lines, max_line);
		rpc_lines_init(&h->srv[i].errlines, 8192);
	}
	return h;
}

static void
host_on_settle(uv_timer_t *t)
{
	struct host *h = t->data;
	size_t i;

	if (h->settled)
		return;
	for (i = 0; i < h->cfg.n; i++)
		if (!h->srv[i].first_done)
			log_warnx("server %s is not ready after %d ms; its tools will follow "
			          "with notifications/tools/list_changed",
			          h->cfg.servers[i].name, h->settle_ms);
	host_settle(h);
}

static int
host_need_confine(const struct host *h)
{
	size_t i;

	for (i = 0; i < h->cfg.n; i++)
		if (jail_config_active(&h->cfg.servers[i].jail))
			return 1;
	return 0;
}

int
host_start(struct host *h, char **cause)
{
	size_t i;

	*cause = NULL;
	if (host_need_confine(h)) {
		if (confine_opts_from_env(&h->copts, cause) == -1)
			return -1;
		h->copts_ok = 1;
	}
	if (h->cfg.n > 0) {
		/* Our servers' trees are ours alone: keyed by this process. */
		char key[64];
		snprintf(key, sizeof key, "colibri-mcp-%ld", (long)getpid());
		job_setup(h->loop, key);
		h->jobs_set_up = 1;
	}
	h->started = 1;
	uv_timer_init(h->loop, &h->settle_timer);
	h->settle_timer.data = h;
	h->timers_open = 1;
	for (i = 0; i < h->cfg.n; i++) {
		uv_timer_init(h->loop, &h->srv[i].timer);
		h->srv[i].timer.data = &h->srv[i];
		h->timers_open++;
	}
	uv_timer_start(&h->settle_timer, host_on_settle, (uint64_t)h->settle_ms, 0);
	for (i = 0; i < h->cfg.n; i++) {
		hsrv_spawn(&h->srv[i]);
	}
	host_check_settled(h);
	return 0;
}

int
host_settled(const struct host *h)
{
	return h->settled;
}

void
host_tools(const struct host *h, json_t *tools)
{
	size_t i;

	json_t *offered;

	for (i = 0; i < h->cfg.n; i++) {
		if (h->srv[i].tools == NULL)
			continue;
		offered = hsrv_offered(&h->srv[i]);
		json_array_extend(tools, offered);
		json_decref(offered);
	}
}

int
host_is_proxied(const char *name)
{
	return strstr(name, HOST_SEP) != NULL;
}

static struct hsrv *
host_find(struct host *h, const char *name, const char **tool)
{
	const char *sep = strstr(name, HOST_SEP);
	size_t i;

	if (sep == NULL)
		return NULL;
	*tool = sep + strlen(HOST_SEP);
	for (i = 0; i < h->cfg.n; i++)
		if (strlen(h->cfg.servers[i].name) == (size_t)(sep - name) &&
		    strncmp(h->cfg.servers[i].name, name, (size_t)(sep - name)) == 0)
			return &h->srv[i];
	return NULL;
}

/* Non-zero when s offers tool (the server's own name) right now. */
static int
hsrv_offers(const struct hsrv *s, const char *tool)
{
	json_t *t;
	size_t i;

	if (!hostcfg_allows(s->cfg, tool))
		return 0;
	json_array_foreach(s->tools, i, t)
	{
		const char *n = json_string_value(json_object_get(t, "name"));
		if (n != NULL && strcmp(n, tool) == 0)
			return 1;
	}
	return 0;
}

static void
hsrv_forward(struct hsrv *s, json_t *id, const char *name, const char *tool, const json_t *params)
{
	struct hcall *c = hsrv_call_new(s, HC_CALL);
	json_t *p = json_deep_copy(params), *meta = json_object_get(p, "_meta"), *tok;

	c->cid = json_incref(id);
	c->tool = xstrdup(name);
	json_object_set_new(p, "name", json_string(tool));
	tok = json_object_get(meta, "progressToken");
	if (json_is_object(meta) && tok != NULL) {
		c->token = json_incref(tok);
		json_object_set_new(meta, "progressToken", json_integer(c->sid));
	}
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		char *a =
		        json_dumps(json_object_get(p, "arguments"), JSON_COMPACT | JSON_ENCODE_ANY);
		log_debug("call %s: arguments %s", name, a != NULL ? a : "{}");
		free(a);
	}
	hsrv_send(s, rpc_request(c->sid, "tools/call", p));
}

void
host_call(struct host *h, json_t *id, const char *name, const json_t *params)
{
	const char *tool = NULL;
	struct hsrv *s = host_find(h, name, &tool);
	struct hqueued *q;

	if (s != NULL && !h->settled && !h->stopping) {
		q = xcalloc(1, sizeof *q);
		q->id = json_incref(id);
		q->params = json_deep_copy(params);
		q->name = xstrdup(name);
		*h->queued_tail = q;
		h->queued_tail = &q->next;
		return;
	}
	if (s == NULL || !hostcfg_allows(s->cfg, tool) ||
	    (s->tools != NULL && !hsrv_offers(s, tool))) {
		host_send(h, rpc_error(id, RPC_INVALID_PARAMS, "unknown tool: %s", name));
		return;
	}
	if (h->stopping) {
		host_send(h, rpc_result(id, mcp_tool_failure("%s: colibri-mcp is shutting down",
		                                             name)));
		return;
	}
	if (s->state != HS_READY) {
		log_info("call %s: server %s, not forwarded", name, hs_state_names[s->state]);
		host_send(h, rpc_result(id, mcp_tool_failure(
		                                    "%s: server %s is %s; try again shortly", name,
		                                    s->cfg->name, hs_state_names[s->state])));
		return;
	}
	hsrv_forward(s, id, name, tool, params);
}

static void
hqueued_free(struct hqueued *q)
{
	json_decref(q->id);
	json_decref(q->params);
	free(q->name);
	free(q);
}

/* Drop a call still waiting for the first start; 1 if found. */
static int
host_cancel_queued(struct host *h, const json_t *id)
{
	struct hqueued **pp, *q;

	for (pp = &h->queued; (q = *pp) != NULL; pp = &q->next) {
		if (json_equal(q->id, (json_t *)id)) {
			*pp = q->next;
			if (h->queued_tail == &q->next)
				h->queued_tail = pp;
			log_info("call %s: cancelled before it was forwarded", q->name);
			hqueued_free(q);
			return 1;
		}
	}
	return 0;
}

int
host_cancel(struct host *h, const json_t *id, const json_t *reason)
{
	struct hcall *c;
	json_t *p;
	size_t i;

	if (host_cancel_queued(h, id))
		return 1;
	for (i = 0; i < h->cfg.n; i++) {
		struct hsrv *s = &h->srv[i];
		for (c = s->calls; c != NULL; c = c->next)
			if (c->kind == HC_CALL && json_equal(c->cid, (json_t *)id))
				break;
		if (c == NULL)
			continue;
		hsrv_call_take(s, c->sid);
		p = json_pack("{s:I}", "requestId", c->sid);
		if (json_is_string(reason))
			json_object_set(p, "reason", (json_t *)reason);
		hsrv_send(s, rpc_notification("notifications/cancelled", p));
		log_info("call %s: cancelled after %lld ms", c->tool,
		         (long long)(mono_ms() - c->start_ms));
		hcall_free(c);
		return 1;
	}
	return 0;
}

static void
host_timer_closed_srv(uv_handle_t *hd)
{
	struct hsrv *s = hd->data;
	struct host *h = s->h;

	if (--h->timers_open == 0 && h->stop_done != NULL)
		h->stop_done(h->stop_arg);
}

static void
host_timer_closed_settle(uv_handle_t *hd)
{
	struct host *h = hd->data;

	if (--h->timers_open == 0 && h->stop_done != NULL)
		h->stop_done(h->stop_arg);
}

static void
host_check_stopped(struct host *h)
{
	size_t i;

	if (!h->stopping || h->stopped)
		return;
	for (i = 0; i < h->cfg.n; i++)
		if (h->srv[i].job_live || h->srv[i].running)
			return;
	h->stopped = 1;
	if (h->jobs_set_up) {
		job_close_all();
		h->jobs_set_up = 0;
	}
	if (!h->started) {
		h->stop_done(h->stop_arg);
		return;
	}
	uv_close((uv_handle_t *)&h->settle_timer, host_timer_closed_settle);
	for (i = 0; i < h->cfg.n; i++)
		uv_close((uv_handle_t *)&h->srv[i].timer, host_timer_closed_srv);
}

void
host_stop(struct host *h, int grace_ms, void (*done)(void *), void *arg)
{
	size_t i;

	h->stopping = 1;
	h->grace_ms = grace_ms;
	h->stop_done = done;
	h->stop_arg = arg;
	if (h->started && !h->settled)
		host_settle(h);
	for (i = 0; i < h->cfg.n; i++) {
		struct hsrv *s = &h->srv[i];
		uv_timer_stop(&s->timer);
		if (!s->running && !s->torn) {
			/* Exited, waiting for its stdout to end: do not wait any longer. */
			hsrv_teardown(s);
			continue;
		}
		if (!s->running)
			continue;
		job_close_stdin(&s->job);
		hsrv_timer(s, T_STOP_TERM, grace_ms);
	}
	host_check_stopped(h);
}

void
host_free(struct host *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->cfg.n; i++) {
		struct hsrv *s = &h->srv[i];
		struct hcall *c;
		while ((c = s->calls) != NULL) {
			s->calls = c->next;
			hcall_free(c);
		}
		json_decref(s->tools);
		json_decref(s->listing);
		rpc_lines_free(&s->lines);
		rpc_lines_free(&s->errlines);
	}
	while (h->queued != NULL) {
		struct hqueued *q = h->queued;
		h->queued = q->next;
		hqueued_free(q);
	}
	if (h->copts_ok)
		confine_opts_clear(&h->copts);
	hostcfg_clear(&h->cfg);
	free(h->srv);
	free(h);
}
