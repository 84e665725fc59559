/*
 * spawner.c -- spawning and supervising coding agents: the registry.
 *
 * An agent is a record (struct agent, spawner-agent.h) built from a spawn
 * spec (spawn-spec.c), plus, while it runs, one job: its process and output
 * (spawn-exec.c).  What happens to it is the run machine's (spawn-run.c);
 * what a previous daemon left is spawn-recover.c's.  This file keeps the
 * list of agents, writes their rows, and answers the commands (spawner.h).
 *
 * State lives in the store: an agent's row is written once per transition
 * -- of its glasspane (a line, a tick, a fault) or of its run (started,
 * over, restarted, ended) -- in the current group-commit transaction, with
 * each glasspane transition published as agent.state.  The first write
 * creates the row: a spawn writes it once, not once per field group.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/spawner-agent.h"
#include "daemon/spawner.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "daemon/vault-run.h"
#include "job/reaper.h"
#include "store/store.h"

#define TICK_MS 1000

struct agent *spawner_agents;
struct confine_opts spawner_confine;
size_t spawner_max_line = 8 * 1024 * 1024;
off_t spawner_max_session = (off_t)1 << 30;
static uv_timer_t tick_timer;

static void agent_discard(struct agent *);

/* ---- lookup ---- */

static struct agent *
agent_find(const char *id)
{
	struct agent *a;

	for (a = spawner_agents; a != NULL; a = a->next)
		if (!agent_gone(a) && strcmp(a->id, id) == 0)
			return a;
	return NULL;
}

int
spawner_agent_live(const char *id)
{
	return agent_find(id) != NULL;
}

/* ---- the row ---- */

/* What a resume needs of the spawn besides binary, args, mode and jail (no env values). */
static json_t *
agent_spawn_json(const struct spawn_spec *sp)
{
	json_t *o = json_object(), *ro = json_array();
	size_t i;

	for (i = 0; sp->ro_paths != NULL && sp->ro_paths[i] != NULL; i++)
		json_array_append_new(ro, json_string(sp->ro_paths[i]));
	json_object_set_new(o, "cwd", sp->cwd != NULL ? json_string(sp->cwd) : json_null());
	if (json_array_size(ro) == 0) {
		json_decref(ro);
		ro = json_null();
	}
	json_object_set_new(o, "ro_paths", ro);
	json_object_set_new(o, "stall_ms", json_integer(sp->stall_ms));
	if (sp->timeout_ms > 0)
		json_object_set_new(o, "timeout_ms", json_integer(sp->timeout_ms));
	json_object_set_new(o, "restart",
	                    json_pack("{s:i, s:I, s:I, s:b}", "max_restarts", sp->restart.max,
	                              "backoff_ms", (json_int_t)sp->restart.backoff_ms,
	                              "backoff_max_ms", (json_int_t)sp->restart.backoff_max_ms,
	                              "on_error", sp->restart.on_error));
	json_object_set_new(o, "tenant_env", json_boolean(sp->tenant_env));
	if (sp->max_attempts > 0)
		json_object_set_new(o, "max_attempts", json_integer(sp->max_attempts));
	return o;
}

static json_t *
agent_detail(struct agent *a)
{
	json_t *d = glasspane_to_json(&a->gp);
	int sig = a->term_signal;

	json_object_del(d, "state");
	json_object_del(d, "reason");
	json_object_del(d, "since");
	json_object_set_new(d, "binary", json_string(a->spec.binary));
	json_object_set_new(d, "profile",
	                    a->spec.profile != NULL ? json_string(a->spec.profile) : json_null());
	json_object_set_new(d, "agent_session",
	                    a->gp.session[0] != '\0' ? json_string(a->gp.session) : json_null());
	if (a->spawn_json == NULL) /* the spec never changes: built once */
		a->spawn_json = agent_spawn_json(&a->spec);
	json_object_set(d, "spawn", a->spawn_json);
	json_object_set(d, "args", a->spec.args);
	json_object_set_new(d, "mode",
	                    json_string(a->spec.mode == GLASSPANE_MODE_RPC ? "rpc" : "json"));
	json_object_set_new(d, "restarts", json_integer(a->restarts));
	json_object_set_new(d, "unrecognized_lines", json_integer((json_int_t)a->gp.ignored_lines));
	json_object_set_new(d, "exit_code",
	                    a->reaped && sig == 0 ? json_integer(a->exit_code) : json_null());
	json_object_set_new(d, "signal", a->reaped && sig != 0 ? json_integer(sig) : json_null());
	json_object_set_new(d, "jail",
	                    jail_config_active(&a->spec.jail) ? jail_config_to_json(&a->spec.jail)
	                                                      : json_null());
	json_object_set_new(d, "live", json_boolean(agent_running(a) || a->run == RUN_BACKOFF));
	json_object_set_new(d, "parked_until_ms",
	                    a->parked_until != 0 ? json_integer(a->parked_until) : json_null());
	return d;
}

/* The fields only the first write sets: what the agent is and who asked for it. */
static void
agent_row_create(struct agent *a, json_t *f)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:i, s:n, s:n, s:n}", "kind", "spawned",
	                      "provider", a->spec.provider, "host", D.hostname, "session_id",
	                      a->session_id, "lost", 0, "name", "lease_ms", "heartbeat");

	json_object_set_new(c, "tenant",
	                    a->spec.jail.name != NULL ? json_string(a->spec.jail.name)
	                                              : json_null());
	json_object_set_new(c, "owner_uid", json_integer((json_int_t)a->spec.owner));
	if (a->task != 0) {
		json_object_set_new(c, "task", json_integer(a->task));
		json_object_set_new(c, "epoch", json_integer(a->epoch));
	}
	json_object_update(f, c);
	json_decref(c);
}

static void
agent_publish_held(struct agent *a)
{
	const struct held_transition *h;
	int i;

	for (i = 0; i < a->nheld; i++) {
		h = &a->held[i];
		events_emit(EV_AGENT_STATE,
		            json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "id", a->id, "from",
		                      glasspane_state_name(h->from), "to",
		                      glasspane_state_name(h->to), "reason", h->reason, "cause",
		                      h->cause, "line",
		                      h->line > 0 ? json_integer(h->line) : json_null(), "at_ms",
		                      (json_int_t)h->at_ms));
	}
	a->nheld = 0;
}

void
agent_write(struct agent *a)
{
	struct store_err e;
	json_t *f, *row;

	if (txn_write(&e) == -1) {
		log_warnx("agent %s state lost: %s", a->id, e.msg);
		a->nheld = 0;
		return;
	}
	f = json_pack("{s:s, s:s, s:I, s:o}", "state", glasspane_state_name(a->gp.state), "reason",
	              a->gp.reason, "since", (json_int_t)a->gp.since_ms, "detail", agent_detail(a));
	if (a->chain != NULL)
		json_object_set(json_object_get(f, "detail"), "transitions", a->chain);
	json_object_set_new(f, "pid",
	                    agent_running(a) ? json_integer(a->job.proc.pid) : json_null());
	if (agent_running(a))
		json_object_set_new(f, "pid_start", json_integer(a->job.pid_start));
	if (!a->row_written)
		agent_row_create(a, f);
	if (a->message_written != a->gp.last_message_seq) {
		json_object_set_new(f, "last_message",
		                    a->gp.last_message[0] != '\0' ? json_string(a->gp.last_message)
		                                                  : json_null());
		a->message_written = a->gp.last_message_seq;
	}
	if ((row = store_agent_put(D.store, a->id, f, now_ms(), &e)) == NULL)
		log_warnx("agent %s: %s", a->id, e.msg);
	else
		a->row_written = 1;
	json_decref(row);
	json_decref(f);
	agent_publish_held(a);
}

void
agent_transition(struct agent *a, int changed, const struct glasspane_transition *t)
{
	agent_transition_line(a, changed, t, 0);
}

void
agent_transition_line(struct agent *a, int changed, const struct glasspane_transition *t,
                      long long line)
{
	struct held_transition *h;

	if (!changed)
		return;
	log_debug("agent %s: %s -> %s (%s at line %lld: %s)", a->id, glasspane_state_name(t->from),
	          glasspane_state_name(t->to), t->cause, line, t->reason);
	if (a->nheld == AGENT_HELD_MAX)
		agent_write(a);
	h = &a->held[a->nheld++];
	h->from = t->from;
	h->to = t->to;
	snprintf(h->reason, sizeof h->reason, "%s", t->reason);
	snprintf(h->cause, sizeof h->cause, "%s", t->cause);
	h->line = line;
	h->at_ms = t->at_ms;
	explain_record(a, h);
	if (a->holding == 0)
		agent_write(a);
}

void
agent_fault(struct agent *a, const char *reason)
{
	struct glasspane_transition t;

	if (a->faulted)
		return;
	a->faulted = 1;
	log_warnx("agent %s: %s", a->id, reason);
	agent_transition(a, glasspane_fault(&a->gp, reason, "spawner", now_ms(), &t), &t);
}

void
agent_free(struct agent *a)
{
	struct agent **pp;

	for (pp = &spawner_agents; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	free(a->waiters);
	agent_discard(a);
}

/* ---- spawning ---- */

static void
agent_new_id(const char *provider, char *out, size_t len)
{
	unsigned char r[4];
	struct store_err e;
	json_t *row;

	do {
		if (getrandom(r, sizeof r, 0) != sizeof r)
			memcpy(r, &(int64_t){now_ms()}, sizeof r);
		snprintf(out, len, "%s-%02x%02x%02x%02x", provider, r[0], r[1], r[2], r[3]);
		row = store_agent_get(D.store, out, &e);
		json_decref(row);
	} while (row != NULL);
}

static int
session_in_use(const char *sid)
{
	struct agent *a;

	for (a = spawner_agents; a != NULL; a = a->next)
		if (!agent_gone(a) && strcmp(a->session_id, sid) == 0)
			return 1;
	return 0;
}

/* Free an agent that never ran (a refused spawn). */
static void
agent_discard(struct agent *a)
{
	spawn_spec_clear(&a->spec);
	json_decref(a->chain);
	json_decref(a->spawn_json);
	free(a->id);
	free(a->session_id);
	free(a);
}

/* The agent's id: the one asked for unless it is taken, or a new one. */
static int
agent_take_id(struct agent *a, const char **code, char **cause)
{
	struct store_err e;
	const char *id = a->spec.id;
	char idbuf[64];
	json_t *row;

	if (id == NULL) {
		agent_new_id(a->spec.provider, idbuf, sizeof idbuf);
		a->id = xstrdup(idbuf);
		return 0;
	}
	*code = ERR_CONFLICT;
	if (agent_find(id) != NULL) {
		xasprintf(cause, "agent %s is running", id);
		return -1;
	}
	if ((row = store_agent_get(D.store, id, &e)) != NULL &&
	    strcmp(json_string_value(json_object_get(row, "kind")), "spawned") != 0) {
		json_decref(row);
		xasprintf(cause, "%s is a registered agent", id);
		return -1;
	}
	/* The same agent on its same session again (agent-resume): its chain goes on. */
	if (row != NULL && a->spec.session_id != NULL &&
	    json_is_array(json_object_get(row, "transitions")) &&
	    json_string_value(json_object_get(row, "session_id")) != NULL &&
	    strcmp(json_string_value(json_object_get(row, "session_id")), a->spec.session_id) == 0)
		a->chain = json_deep_copy(json_object_get(row, "transitions"));
	json_decref(row);
	a->id = xstrdup(id);
	return 0;
}

/* An agent for spec (taken over), or NULL when its id or session is in use. */
static struct agent *
agent_new(struct spawn_spec *spec, const char **code, char **cause)
{
	struct agent *a = xcalloc(1, sizeof *a);

	a->spec = *spec;
	memset(spec, 0, sizeof *spec);
	if (agent_take_id(a, code, cause) == -1)
		goto fail;
	a->session_id = xstrdup(a->spec.session_id != NULL ? a->spec.session_id : a->id);
	if (session_in_use(a->session_id)) {
		*code = ERR_CONFLICT;
		xasprintf(cause, "session %s belongs to a running agent", a->session_id);
		goto fail;
	}
	return a;
fail:
	agent_discard(a);
	return NULL;
}

/* Open the session logs and the timer: what a run needs before its first start. */
static int
agent_open(struct agent *a, char **cause)
{
	if (session_open(&a->slog, a->session_id, ".jsonl", cause) == -1 ||
	    session_count_lines(&a->slog, cause) == -1) {
		session_close(&a->slog);
		return -1;
	}
	if (session_open(&a->elog, a->session_id, ".stderr", cause) == -1) {
		session_close(&a->slog);
		session_close(&a->elog);
		return -1;
	}
	uv_timer_init(D.loop, &a->timer);
	a->timer.data = a;
	glasspane_init(&a->gp, a->spec.harness, a->spec.mode, a->spec.stall_ms, now_ms());
	return 0;
}

/*
 * The first run of a (in the registry, its transaction open): 0, or -1 with *code and *cause
 * when it could not start.  A task-bound run's claim and its start stand or fall together.
 */
static int
agent_start(struct agent *a, const char **code, char **cause)
{
	size_t mark = events_mark();
	int bound = a->spec.task != 0;

	if (bound) {
		store_savepoint(D.store);
		if (task_bind(a, code, cause) == -1) {
			store_savepoint_rollback(D.store);
			events_rollback_to(mark);
			a->run = RUN_ENDED;
			run_end(a);
			return -1;
		}
	}
	run_step(a, RI_START, 0, cause);
	if (agent_gone(a)) {
		if (bound) {
			store_savepoint_rollback(D.store);
			events_rollback_to(mark);
		}
		*code = ERR_INVALID_ARGUMENT;
		return -1;
	}
	if (bound)
		store_savepoint_release(D.store);
	return 0;
}

json_t *
spawner_spawn(struct spawn_spec *spec, const char **code, char **cause)
{
	struct store_err e;
	struct agent *a;
	json_t *row;

	if (D.shutting_down) {
		spawn_spec_clear(spec);
		*code = ERR_UNAVAILABLE;
		xasprintf(cause, "the daemon is shutting down");
		return NULL;
	}
	if ((a = agent_new(spec, code, cause)) == NULL)
		return NULL;
	*code = ERR_INTERNAL;
	if (agent_open(a, cause) == -1) {
		agent_discard(a);
		return NULL;
	}
	if (txn_write(&e) == -1) {
		*code = e.code;
		*cause = xstrdup(e.msg);
		a->next = spawner_agents;
		spawner_agents = a;
		a->run = RUN_ENDED;
		run_end(a);
		return NULL;
	}
	a->next = spawner_agents;
	spawner_agents = a;
	if (agent_start(a, code, cause) == -1)
		return NULL;
	events_emit(EV_AGENT_SPAWNED,
	            json_pack("{s:s, s:s, s:s, s:I}", "id", a->id, "provider", a->spec.provider,
	                      "session_id", a->session_id, "pid", (json_int_t)a->job.proc.pid));
	if (jail_config_active(&a->spec.jail) && a->spec.jail.name != NULL &&
	    jail_config_root(&a->spec.jail) != NULL && !a->spec.tenant_env)
		vault_jailed_spawned(a->id, a->spec.jail.name, jail_config_root(&a->spec.jail));
	if ((row = store_agent_get(D.store, a->id, &e)) != NULL)
		spawner_detail(row);
	return row;
}

/* ---- commands' helpers ---- */

void
spawner_kill(const char *id, long long grace_ms, spawner_ended_fn *done, void *arg)
{
	struct agent *a = agent_find(id);

	if (a == NULL) {
		done(arg, id); /* already ended: nothing to do */
		return;
	}
	log_info("agent %s: kill requested (grace %lld ms)", id, grace_ms);
	a->waiters = xreallocarray(a->waiters, a->nwaiters + 1, sizeof *a->waiters);
	a->waiters[a->nwaiters].done = done;
	a->waiters[a->nwaiters++].arg = arg;
	/* Waiting out a backoff, no process: stopping ends the agent (run_end tells the
	 * waiters) before run_stop returns. */
	if (!a->stopping || a->run == RUN_BACKOFF)
		run_stop(a, grace_ms);
}

int
spawner_rpc_send(const char *id, json_t *cmd, const char **code, char **cause)
{
	struct agent *a = agent_find(id);
	char *line;
	size_t n;
	uv_buf_t b;
	int w;

	if (a == NULL) {
		*code = ERR_NOT_FOUND;
		xasprintf(cause, "no running agent %s", id);
		return -1;
	}
	if (a->spec.mode != GLASSPANE_MODE_RPC || !agent_in_run(a) || job_stdin(&a->job) == NULL) {
		*code = ERR_CONFLICT;
		xasprintf(cause, "agent %s is not in rpc mode or its stdin is closed", id);
		return -1;
	}
	line = json_dumps(cmd, JSON_COMPACT);
	n = strlen(line);
	line = xrealloc(line, n + 2);
	line[n++] = '\n';
	b = uv_buf_init(line, (unsigned int)n);
	w = uv_try_write(job_stdin(&a->job), &b, 1);
	free(line);
	if (w != (int)n) {
		*code = ERR_UNAVAILABLE;
		xasprintf(cause, "agent %s is not reading its stdin", id);
		return -1;
	}
	return 0;
}

char *
spawner_session_of(const char *id)
{
	struct agent *a = agent_find(id);
	struct store_err e;
	json_t *row;
	char *sid;

	if (a != NULL)
		return xstrdup(a->session_id);
	if ((row = store_agent_get(D.store, id, &e)) != NULL &&
	    json_is_string(json_object_get(row, "session_id"))) {
		sid = xstrdup(json_string_value(json_object_get(row, "session_id")));
		json_decref(row);
		return sid;
	}
	json_decref(row);
	return xstrdup(id);
}

/*
 * One walk up pid's ancestry: 1 agent, 0 not, -1 a process vanished under
 * the walk.  It stops at the first process older than the daemon: nothing
 * above it can be the daemon or an agent, so a client started from a shell
 * costs two reads of /proc, not one per ancestor up to init.
 */
static int
agent_of_pid_walk(pid_t pid, const char **agent_id)
{
	static int64_t self_start = -1;
	pid_t self = getpid();
	struct agent *a;
	int64_t start;
	int depth;

	if (self_start == -1)
		self_start = reaper_start_time(self);
	for (depth = 0; pid > 1 && depth < 4096; depth++) {
		if (pid == self)
			return depth > 0; /* an orphan of an agent, reparented to us */
		for (a = spawner_agents; a != NULL; a = a->next) {
			if (agent_running(a) && a->job.proc.pid == pid) {
				*agent_id = a->id;
				return 1;
			}
		}
		if ((pid = reaper_parent(pid, &start)) == -1)
			return -1;
		if (self_start != -1 && start < self_start)
			return 0;
	}
	return 0;
}

int
spawner_agent_of_pid(pid_t pid, const char **agent_id)
{
	int tries, rc = -1;

	*agent_id = NULL;
	/* An ancestor that exits mid-walk has had its children reparented: walk again. */
	for (tries = 0; tries < 3 && rc == -1; tries++)
		rc = agent_of_pid_walk(pid, agent_id);
	return rc;
}

void
spawner_detail(json_t *obj)
{
	const char *id = json_string_value(json_object_get(obj, "id"));
	struct agent *a;
	json_t *d;

	json_object_del(obj, "transitions"); /* the row's chain is agent-explain's */
	if (id == NULL)
		return;
	if ((a = agent_find(id)) == NULL) {
		/* Not running here: a row of this host that says live is a previous daemon's. */
		const char *host = json_string_value(json_object_get(obj, "host"));

		if (json_is_true(json_object_get(obj, "live")) && host != NULL &&
		    strcmp(host, D.hostname) == 0)
			json_object_set_new(obj, "live", json_false());
		return;
	}
	d = agent_detail(a);
	json_object_update(obj, d);
	json_decref(d);
	json_object_set_new(obj, "state", json_string(glasspane_state_name(a->gp.state)));
	json_object_set_new(obj, "reason", json_string(a->gp.reason));
	json_object_set_new(obj, "since_ms", json_integer(a->gp.since_ms));
	json_object_set_new(obj, "pid",
	                    agent_running(a) ? json_integer(a->job.proc.pid) : json_null());
	json_object_set_new(obj, "last_event_age_ms",
	                    a->gp.last_event_ms > 0 ? json_integer(now_ms() - a->gp.last_event_ms)
	                                            : json_null());
}

/* ---- lifecycle ---- */

/*
 * The session log line behind a tick's transition: a settle judges the
 * failed agent_end the glasspane counted settle_line lines in; every line
 * it was fed went to the log first (spawn-exec.c), so the log's count
 * maps onto it.  0 for a stall.
 */
static long long
tick_line(const struct agent *a, const struct glasspane_transition *t)
{
	if (strcmp(t->cause, "settle") != 0 || a->gp.settle_line == 0)
		return 0;
	return a->slog.lines - (long long)(a->gp.lines - a->gp.settle_line);
}

static void
on_tick(uv_timer_t *t)
{
	struct glasspane_transition tr;
	struct agent *a;

	(void)t;
	for (a = spawner_agents; a != NULL; a = a->next)
		if (agent_running(a) && glasspane_tick(&a->gp, now_ms(), &tr))
			agent_transition_line(a, 1, &tr, tick_line(a, &tr));
}

int
spawner_init(char **cause)
{
	const char *v;

	if (confine_opts_from_env(&spawner_confine, cause) == -1)
		return -1;
	if ((v = getenv("COLIBRI_MAX_AGENT_LINE")) != NULL && atoll(v) >= 1024)
		spawner_max_line = (size_t)atoll(v);
	if ((v = getenv("COLIBRI_MAX_SESSION_BYTES")) != NULL && atoll(v) >= 1024)
		spawner_max_session = (off_t)atoll(v);

	recover_confine_privates();
	recover_agents();
	uv_timer_init(D.loop, &tick_timer);
	uv_timer_start(&tick_timer, on_tick, TICK_MS, TICK_MS);
	uv_unref((uv_handle_t *)&tick_timer);
	return 0;
}

void
spawner_shutdown(void)
{
	struct agent *a, *next;

	for (a = spawner_agents; a != NULL; a = next) {
		next = a->next;
		if (!agent_gone(a))
			run_stop(a, D.cfg.kill_grace_ms);
	}
}

int
spawner_busy(void)
{
	struct agent *a;

	for (a = spawner_agents; a != NULL; a = a->next)
		if (!agent_gone(a) || a->handles_open > 0)
			return 1;
	return 0;
}

void
spawner_close(void)
{
	uv_timer_stop(&tick_timer);
	uv_close((uv_handle_t *)&tick_timer, NULL);
	confine_opts_clear(&spawner_confine);
}
