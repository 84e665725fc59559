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
 *
 * This file is the servers' life and the client's calls; what is said on a
 * running server's pipes (initialize, listings, answers, notifications) is
 * host-rpc.c, and the state the two share is in host-srv.h.
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
#include "mcp/host-srv.h"
#include "mcp/rpc.h"
#include "mcp/tools.h"

extern char **environ;

static const char *const hs_state_names[] = {"down", "initialising", "listing tools", "ready",
                                             "restarting"};

static void hsrv_spawn(struct hsrv *s);
static void hsrv_on_timer(uv_timer_t *t);
static void hsrv_teardown(struct hsrv *s);
static void host_check_stopped(struct host *h);

/* ---- helpers ---------------------------------------------------------- */

static void
hsrv_timer(struct hsrv *s, enum hs_timer why, int ms)
{
	s->timer_why = why;
	uv_timer_start(&s->timer, hsrv_on_timer, (uint64_t)ms, 0);
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

void
hsrv_first_done(struct hsrv *s)
{
	if (s->first_done)
		return;
	s->first_done = 1;
	host_check_settled(s->h);
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

/* Start s's process: wrapper (the confinement's program, found on PATH) with its argv. */
static int
hsrv_job_start(struct hsrv *s, const char *wrapper, char **cause)
{
	struct job_spec o;
	char **env = NULL;
	int rc;

	memset(&o, 0, sizeof o);
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
	rc = job_start(&s->job, &o, cause);
	hsrv_strv_free(env);
	return rc;
}

static void
hsrv_spawn(struct hsrv *s)
{
	char *program, *wrapper = NULL, *cause = NULL;

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
	if (hsrv_job_start(s, wrapper, &cause) != 0)
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
