/*
 * spawner.c -- spawning and supervising coding agents.
 *
 * An agent is a record (struct agent) plus, while it runs, one job
 * (job.h): a child in a process group and process tree of its own.  Its
 * stdout is read in chunks into one shared buffer; complete lines are
 * appended to the session log in one write per chunk and fed to the
 * glasspane; only a line split across reads is copied, into the agent's
 * own small buffer.  So an idle agent costs a struct, two pipes and two log
 * descriptors, and a busy one no per-line allocation.  A line longer than
 * max_agent_line, or a session log past max_session_bytes, is a fault: the
 * agent is marked error with that reason and stopped, and the daemon does
 * not grow.
 *
 * A run ends when the job is done: the process reaped AND its stdout and
 * stderr at EOF (so every line is judged before the exit).  Whatever the
 * agent left behind -- its process tree (a cgroup of its own on Linux, the
 * reaper subtree on FreeBSD; else its process group and what the reaper
 * finds by ancestry and the COLIBRI_AGENT_ID marker) -- is killed then.
 * The restart policy decides what follows: a clean done is final; a crash
 * restarts with exponential backoff and jitter while restarts remain; a
 * model error restarts only with restart.on_error; a kill-agent or a
 * shutdown never restarts.
 *
 * State lives in the store: every transition updates the agent's row and
 * emits agent.state in the current group-commit transaction.  An agent
 * that a previous daemon left "running" is resolved at start: its process
 * tree (cgroup) is killed, and if its pid still names the same process
 * (start time recorded at spawn) that too; the row is marked error "daemon
 * restarted".  Stages a previous daemon left in jail roots are removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/confine.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "job/job.h"
#include "job/reaper.h"
#include "daemon/session.h"
#include "daemon/spawn-spec.h"
#include "daemon/spawner.h"
#include "daemon/txn.h"
#include "daemon/vault-run.h"
#include "glasspane/glasspane.h"
#include "store/store.h"

extern char **environ;

#define STDERR_CAP (1024 * 1024)
#define TICK_MS    1000

struct agent {
	char *id;
	char *session_id;
	struct spawn_spec spec; /* what was asked for (owned) */

	/* the current run */
	struct job job;
	int in_run;  /* the job started and is not done */
	int running; /* a process exists (not yet reaped) */
	int reaped;
	int exit_code, term_signal;
	struct buf line;
	int discard; /* a fault happened: stop ingesting */
	struct session_log slog, elog;
	struct confine_spawn *confine;
	struct glasspane gp;
	int faulted; /* this run met a fault (agent_fault) */

	int restarts;
	int stopping; /* kill-agent or shutdown: no restart */
	int pending_restart;
	uv_timer_t timer; /* backoff or kill grace */
	int timer_use;    /* 0 none, 1 backoff, 2 grace */
	struct cmd_req **waiters;
	size_t nwaiters;
	int handles_open; /* uv handles still closing */
	int gone;         /* finished: free once handles are closed */
	struct agent *next;
};

static struct agent *agents;
static int nlive;
static uv_timer_t tick_timer;
static struct confine_opts confine_opts;
static size_t max_agent_line = 8 * 1024 * 1024;
static off_t max_session_bytes = (off_t)1 << 30;

static void agent_finish_run(struct agent *);
static void agent_start_run(struct agent *, char **cause, int *ok);
static void agent_persist(struct agent *, const struct glasspane_transition *);
static void agent_maybe_free(struct agent *);
static void agent_discard(struct agent *);
static void agent_timer(struct agent *, int use, int64_t ms);

/* ---- lookup ---- */

static struct agent *
agent_find(const char *id)
{
	struct agent *a;

	for (a = agents; a != NULL; a = a->next)
		if (!a->gone && strcmp(a->id, id) == 0)
			return a;
	return NULL;
}

/* ---- state ---- */

static json_t *
agent_detail(struct agent *a)
{
	json_t *d = glasspane_to_json(&a->gp);

	json_object_del(d, "state");
	json_object_del(d, "reason");
	json_object_del(d, "since");
	json_object_set_new(d, "binary", json_string(a->spec.binary));
	json_object_set(d, "args", a->spec.args);
	json_object_set_new(d, "mode",
	                    json_string(a->spec.mode == GLASSPANE_MODE_RPC ? "rpc" : "json"));
	json_object_set_new(d, "restarts", json_integer(a->restarts));
	json_object_set_new(d, "exit_code",
	                    a->reaped && a->term_signal == 0 ? json_integer(a->exit_code)
	                                                     : json_null());
	json_object_set_new(d, "signal",
	                    a->reaped && a->term_signal != 0 ? json_integer(a->term_signal)
	                                                     : json_null());
	json_object_set_new(d, "jail",
	                    jail_config_active(&a->spec.jail) ? jail_config_to_json(&a->spec.jail)
	                                                      : json_null());
	json_object_set_new(d, "live", json_boolean(a->running || a->pending_restart));
	return d;
}

/* Store the agent's state (and emit agent.state when t is a transition). */
static void
agent_persist(struct agent *a, const struct glasspane_transition *t)
{
	struct store_err e;
	json_t *f, *row;

	if (txn_write(&e) == -1) {
		log_warnx("agent %s: %s", a->id, e.msg);
		return;
	}
	f = json_pack("{s:s, s:s, s:I, s:o}", "state", glasspane_state_name(a->gp.state), "reason",
	              a->gp.reason, "since", (json_int_t)a->gp.since_ms, "detail", agent_detail(a));
	json_object_set_new(f, "pid", a->running ? json_integer(a->job.proc.pid) : json_null());
	if ((row = store_agent_put(D.store, a->id, f, now_ms(), &e)) == NULL)
		log_warnx("agent %s: %s", a->id, e.msg);
	json_decref(row);
	json_decref(f);
	if (t != NULL)
		events_emit("agent.state",
		            json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "id", a->id, "from",
		                      glasspane_state_name(t->from), "to",
		                      glasspane_state_name(t->to), "reason", t->reason, "cause",
		                      t->cause, "at_ms", (json_int_t)t->at_ms));
}

static void
agent_transition(struct agent *a, int changed, struct glasspane_transition *t)
{
	struct store_err e;

	if (!changed)
		return;
	if (txn_write(&e) == -1) {
		log_warnx("agent %s state lost: %s", a->id, e.msg);
		return;
	}
	log_debug("agent %s: %s -> %s (%s: %s)", a->id, glasspane_state_name(t->from),
	          glasspane_state_name(t->to), t->cause, t->reason);
	agent_persist(a, t);
}

/* Force the agent into error with reason (a fault the glasspane cannot see). */
static void
agent_fault(struct agent *a, const char *reason)
{
	struct glasspane_transition t;

	if (a->faulted)
		return;
	a->faulted = 1;
	log_warnx("agent %s: %s", a->id, reason);
	agent_transition(a, glasspane_fault(&a->gp, reason, "spawner", now_ms(), &t), &t);
}

/* ---- killing ---- */

/* Signal the agent's whole process tree (job.h). */
static void
agent_signal_tree(struct agent *a, int sig)
{
	if (a->in_run)
		job_signal(&a->job, sig);
}

static void
on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	int use = a->timer_use;
	char *cause = NULL;
	int ok;

	a->timer_use = 0;
	switch (use) {
	case 1: /* backoff over: restart */
		if (a->job.handles > 0 && !a->stopping) {
			agent_timer(a, 1, 10); /* the last run's handles are still closing */
			break;
		}
		a->pending_restart = 0;
		if (a->stopping) {
			agent_maybe_free(a);
			break;
		}
		agent_start_run(a, &cause, &ok);
		if (!ok) {
			agent_fault(a, cause);
			free(cause);
			agent_maybe_free(a);
		}
		break;
	case 2: /* grace over: SIGKILL */
		log_info("agent %s: grace period over, sending SIGKILL", a->id);
		agent_signal_tree(a, SIGKILL);
		break;
	}
}

static void
agent_timer(struct agent *a, int use, int64_t ms)
{
	a->timer_use = use;
	uv_timer_start(&a->timer, on_timer, (uint64_t)(ms > 0 ? ms : 0), 0);
}

/* Begin stopping: SIGTERM now, SIGKILL after grace_ms. */
static void
agent_terminate(struct agent *a, int64_t grace_ms)
{
	a->stopping = 1;
	if (a->pending_restart) {
		uv_timer_stop(&a->timer);
		a->timer_use = 0;
		a->pending_restart = 0;
		agent_maybe_free(a);
		return;
	}
	if (!a->running)
		return;
	agent_signal_tree(a, SIGTERM);
	agent_timer(a, 2, grace_ms);
}

/* ---- output ---- */

static void
agent_feed_line(struct agent *a, const char *p, size_t n)
{
	struct glasspane_transition t;

	agent_transition(a, glasspane_feed(&a->gp, p, n, now_ms(), &t), &t);
}

/* Append complete lines to the session log and feed them; returns the bytes consumed. */
static size_t
agent_ingest(struct agent *a, const char *p, size_t n)
{
	const char *s = p, *nl, *end = p + n;

	while (s < end && (nl = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		agent_feed_line(a, s, (size_t)(nl - s));
		s = nl + 1;
	}
	return (size_t)(s - p);
}

static void
agent_log(struct agent *a, const char *p, size_t n)
{
	if (n == 0 || a->discard)
		return;
	if (a->slog.bytes + (off_t)n > max_session_bytes) {
		char why[128];
		snprintf(why, sizeof why, "output flood: session log passed %lld bytes",
		         (long long)max_session_bytes);
		a->discard = 1;
		agent_fault(a, why);
		agent_terminate(a, 0);
		return;
	}
	if (session_append(&a->slog, p, n) == -1) {
		a->discard = 1;
		agent_fault(a, "cannot write the session log");
		agent_terminate(a, 0);
	}
}

static void
on_pipe_closed(uv_handle_t *h)
{
	struct agent *a = h->data;

	a->handles_open--;
	agent_maybe_free(a);
}

static void
on_stdout(struct agent *a, const char *p, size_t len)
{
	const char *nl;
	size_t used;

	if (a->discard || len == 0)
		return;
	/* Complete a line started in an earlier read. */
	if (buf_used(&a->line) > 0) {
		nl = memchr(p, '\n', len);
		used = nl != NULL ? (size_t)(nl - p) + 1 : len;
		buf_add(&a->line, p, used);
		p += used;
		len -= used;
		if (nl != NULL) {
			agent_log(a, buf_head(&a->line), buf_used(&a->line));
			if (!a->discard)
				agent_feed_line(a, buf_head(&a->line), buf_used(&a->line) - 1);
			buf_free(&a->line);
		}
	}
	if (buf_used(&a->line) == 0 && len > 0 && !a->discard) {
		used = agent_ingest(a, p, len);
		agent_log(a, p, used);
		if (used < len && !a->discard)
			buf_add(&a->line, p + used, len - used);
	}
	if (buf_used(&a->line) > max_agent_line && !a->discard) {
		char why[128];
		snprintf(why, sizeof why, "stdout line exceeds %zu bytes without a newline",
		         max_agent_line);
		buf_free(&a->line);
		a->discard = 1;
		agent_fault(a, why);
		agent_terminate(a, 0);
	}
}

static void
on_stderr(struct agent *a, const char *p, size_t n)
{
	if (n == 0 || a->elog.fd == -1)
		return;
	if (session_append(&a->elog, p, n) == -1 || session_rotate_if(&a->elog, STDERR_CAP) == -1) {
		log_warn("agent %s: stderr log", a->id);
		session_close(&a->elog);
	}
}

static void
agent_on_read(struct job *j, int which, const char *p, size_t n)
{
	if (which == 1)
		on_stdout(j->data, p, n);
	else
		on_stderr(j->data, p, n);
}

static void
agent_on_job_closed(struct job *j)
{
	struct agent *a = j->data;

	a->handles_open--;
	agent_maybe_free(a);
}

/* ---- exit and restart ---- */

static void
on_job_exit(struct job *j)
{
	struct agent *a = j->data;

	a->running = 0;
	a->reaped = 1;
	a->exit_code = j->exit_code;
	a->term_signal = j->term_signal;
	nlive--;
	log_debug("agent %s: pid %ld exited (%d, signal %d)", a->id, (long)j->proc.pid,
	          j->exit_code, j->term_signal);
	/* No orphans: end whatever the agent left behind. */
	agent_signal_tree(a, SIGKILL);
	if (a->timer_use == 2)
		uv_timer_stop(&a->timer), a->timer_use = 0;
}

/* The join: reaped and stdout/stderr at EOF (or closed by force). */
static void
on_job_done(struct job *j)
{
	struct agent *a = j->data;

	a->in_run = 0;
	job_close(j);
	agent_finish_run(a);
}

static int64_t
backoff_delay(struct agent *a)
{
	int64_t d = a->spec.restart.backoff_ms;
	uint32_t r = 0;
	int i;

	for (i = 1; i < a->restarts && d < a->spec.restart.backoff_max_ms; i++)
		d *= 2;
	if (d > a->spec.restart.backoff_max_ms)
		d = a->spec.restart.backoff_max_ms;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint32_t)now_ms();
	/* Equal jitter: half fixed, half random. */
	return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

/* Should this run be followed by another?  Sets *why. */
static int
should_restart(struct agent *a, const char **why)
{
	if (a->stopping || D.shutting_down || a->restarts >= a->spec.restart.max)
		return 0;
	if (a->gp.state != GLASSPANE_ERROR)
		return 0; /* done (or idle after an RPC session) is final */
	if (a->term_signal != 0 || a->exit_code != 0 || a->faulted) {
		*why = "crashed";
		return !a->faulted;
	}
	*why = "model error";
	return a->spec.restart.on_error;
}

static void
agent_finish_run(struct agent *a)
{
	struct glasspane_transition t;
	struct stage_status st;
	const char *why = NULL;
	char *cause = NULL;
	int code, sig;

	/* A last line without a newline still counts. */
	if (buf_used(&a->line) > 0 && !a->discard) {
		agent_log(a, buf_head(&a->line), buf_used(&a->line));
		agent_log(a, "\n", 1);
		agent_feed_line(a, buf_head(&a->line), buf_used(&a->line));
	}
	buf_free(&a->line);
	code = a->exit_code;
	sig = a->term_signal;
	if (a->confine != NULL) {
		confine_spawn_status(a->confine, a->exit_code, a->term_signal, &st);
		if (st.kind == STAGE_STATUS_EXITED)
			code = st.exit_code, sig = 0;
		else if (st.kind == STAGE_STATUS_SIGNALED)
			code = -1, sig = st.signal;
		else if (st.kind == STAGE_STATUS_SETUP_FAILED) {
			char why2[128];
			snprintf(why2, sizeof why2, "confinement setup failed (%s)",
			         st.setup != NULL ? st.setup : "?");
			agent_fault(a, why2);
		} else if (!a->stopping) {
			/* launch.sh wrote nothing: jexec failed (exit 1), or the shell died under a
			 * `jail -c` that exits 0 anyway.  The wrapper's code is not the agent's. */
			char why2[160];
			snprintf(why2, sizeof why2,
			         "no agent status from the confinement (%s exited %d)",
			         a->confine->cmd->program, code);
			agent_fault(a, why2);
		}
		if (confine_spawn_finish(a->confine, &cause) == -1) {
			log_warnx("agent %s: stage removal: %s", a->id, cause);
			free(cause);
		}
		a->confine = NULL;
		a->exit_code = code;
		a->term_signal = sig;
	}
	agent_transition(a, glasspane_exit(&a->gp, sig > 0 ? 0 : code, sig, now_ms(), &t), &t);
	agent_persist(a, NULL);
	events_emit("agent.exited",
	            json_pack("{s:s, s:o, s:o, s:s, s:s}", "id", a->id, "exit_code",
	                      sig == 0 ? json_integer(code) : json_null(), "signal",
	                      sig != 0 ? json_integer(sig) : json_null(), "state",
	                      glasspane_state_name(a->gp.state), "reason", a->gp.reason));
	if (should_restart(a, &why)) {
		int64_t d;
		a->restarts++;
		d = backoff_delay(a);
		a->pending_restart = 1;
		log_info("agent %s %s; restart %d/%d in %lld ms", a->id, why, a->restarts,
		         a->spec.restart.max, (long long)d);
		events_emit("agent.restarted",
		            json_pack("{s:s, s:i, s:i, s:s, s:I}", "id", a->id, "restart",
		                      a->restarts, "max_restarts", a->spec.restart.max, "reason",
		                      why, "delay_ms", (json_int_t)d));
		agent_timer(a, 1, d);
		return;
	}
	agent_maybe_free(a);
}

/* Reply to kill-agent waiters and free the agent once nothing refers to it. */
static void
agent_maybe_free(struct agent *a)
{
	struct agent **pp;
	struct store_err e;
	size_t i;

	if (a->running || a->pending_restart || a->in_run)
		return;
	if (!a->gone) {
		a->gone = 1;
		agent_persist(a, NULL);
		for (i = 0; i < a->nwaiters; i++) {
			json_t *row = store_agent_get(D.store, a->id, &e);
			if (row != NULL)
				cmd_ok(a->waiters[i], row);
			else
				cmd_fail(a->waiters[i], e.code, "%s", e.msg);
		}
		a->nwaiters = 0;
		session_close(&a->slog);
		session_close(&a->elog);
		if (a->timer_use != 0)
			uv_timer_stop(&a->timer);
		a->handles_open++;
		uv_close((uv_handle_t *)&a->timer, on_pipe_closed);
		return;
	}
	if (a->handles_open > 0)
		return;
	for (pp = &agents; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	free(a->waiters);
	agent_discard(a);
}

/* ---- starting ---- */

static int
env_name_scrubbed(const char *entry)
{
	static const char *drop[] = {"BW_",         "COLIBRI_",         "BITWARDENCLI_",
	                             "LD_PRELOAD=", "LD_LIBRARY_PATH=", NULL};
	size_t i;

	for (i = 0; drop[i] != NULL; i++)
		if (strncmp(entry, drop[i], strlen(drop[i])) == 0)
			return 1;
	return 0;
}

/* The agent's environment: the daemon's (secrets scrubbed), the caller's, and ours. */
static char **
agent_envp(struct agent *a, int confined)
{
	char **envp = NULL, *s;
	size_t n = 0, i;
	const char *key;
	json_t *v;

	if (confined) {
		/* The wrapper gets a minimal environment; launch.sh sets the agent's. */
		envp = xcalloc(2, sizeof *envp);
		envp[0] = xstrdup(
		        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
		return envp;
	}
	for (i = 0; environ[i] != NULL; i++) {
		if (env_name_scrubbed(environ[i]))
			continue;
		key = environ[i];
		s = strchr(key, '=');
		if (s != NULL && a->spec.env != NULL) {
			char *name = xstrndup(key, (size_t)(s - key));
			int overridden = json_object_get(a->spec.env, name) != NULL;
			free(name);
			if (overridden)
				continue;
		}
		envp = xreallocarray(envp, n + 2, sizeof *envp);
		envp[n++] = xstrdup(environ[i]);
	}
	json_object_foreach(a->spec.env, key, v)
	{
		envp = xreallocarray(envp, n + 2, sizeof *envp);
		xasprintf(&envp[n++], "%s=%s", key, json_string_value(v));
	}
	envp = xreallocarray(envp, n + 5, sizeof *envp);
	xasprintf(&envp[n++], "COLIBRI_AGENT_ID=%s", a->id);
	xasprintf(&envp[n++], "COLIBRI_SESSION_ID=%s", a->session_id);
	xasprintf(&envp[n++], "COLIBRI_SOCKET=%s", D.cfg.socket_path);
	envp[n] = NULL;
	return envp;
}

static void
strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* The agent's argv after argv[0]: provider flags, the caller's args, the prompt. */
static char **
agent_args(struct agent *a)
{
	char **v = xcalloc(json_array_size(a->spec.args) + 8, sizeof *v);
	size_t n = 0, i;
	json_t *x;
	int zot = strcmp(a->spec.provider, "zot") == 0;

	if (zot)
		v[n++] = xstrdup(a->spec.mode == GLASSPANE_MODE_RPC ? "rpc" : "--json");
	else {
		v[n++] = xstrdup("--mode");
		v[n++] = xstrdup(a->spec.mode == GLASSPANE_MODE_RPC ? "rpc" : "json");
	}
	json_array_foreach(a->spec.args, i, x) v[n++] = xstrdup(json_string_value(x));
	if (a->spec.prompt != NULL && a->spec.mode == GLASSPANE_MODE_JSON) {
		if (!zot)
			v[n++] = xstrdup("-p");
		v[n++] = xstrdup(a->spec.prompt);
	}
	v[n] = NULL;
	return v;
}

static void
agent_start_run(struct agent *a, char **cause, int *ok)
{
	struct job_spec ps;
	struct proc_creds creds;
	char tree[TREE_NAME_MAX];
	struct glasspane saved = a->gp;
	char **args = agent_args(a), **argv = NULL, **envp = NULL, *vcause = NULL, *wrapper = NULL;
	const char *program;
	size_t n, i;
	json_t *stage_env = NULL;
	int confined = jail_config_active(&a->spec.jail);

	*ok = 0;
	memset(&ps, 0, sizeof ps);
	if (confined) {
		stage_env = a->spec.env != NULL ? json_deep_copy(a->spec.env) : NULL;
		if (stage_env == NULL)
			stage_env = json_object();
		json_object_set_new(stage_env, "COLIBRI_AGENT_ID", json_string(a->id));
		json_object_set_new(stage_env, "COLIBRI_SESSION_ID", json_string(a->session_id));
		a->confine =
		        confine_prepare(&confine_opts, &a->spec.jail, a->id, a->spec.binary,
		                        (const char *const *)args, stage_env, a->spec.cwd, &vcause);
		json_decref(stage_env);
		if (a->confine == NULL) {
			xasprintf(cause, "confinement: %s", vcause);
			free(vcause);
			goto out;
		}
		/* exec does not search PATH: find bwrap, jexec, mdo... on the daemon's. */
		if (spawn_resolve_binary(a->confine->cmd->program, &wrapper, cause) == -1) {
			confine_spawn_finish(a->confine, &vcause);
			free(vcause);
			a->confine = NULL;
			goto out;
		}
		program = wrapper;
		argv = NULL;
		ps.argv = a->confine->cmd->argv;
		if (a->confine->drop) {
			/* bwrap under a root daemon: bwrap and the agent run as the agent user. */
			memset(&creds, 0, sizeof creds);
			creds.uid = a->confine->uid;
			creds.gid = a->confine->gid;
			ps.creds = &creds;
		}
	} else {
		for (n = 0; args[n] != NULL; n++)
			;
		argv = xcalloc(n + 2, sizeof *argv);
		argv[0] = a->spec.binary;
		for (i = 0; i < n; i++)
			argv[i + 1] = args[i];
		program = a->spec.binary;
		ps.argv = argv;
		ps.cwd = a->spec.cwd;
	}
	envp = agent_envp(a, confined);
	ps.path = program;
	ps.envp = envp;
	ps.in = a->spec.mode == GLASSPANE_MODE_RPC ? PROC_PIPE : PROC_NULL;
	ps.out = PROC_PIPE;
	ps.err = PROC_PIPE;
	snprintf(tree, sizeof tree, "agent.%s", a->id);
	ps.tree = tree;
	ps.marker = a->id;
	memset(&a->job, 0, sizeof a->job);
	a->job.on_read = agent_on_read;
	a->job.on_exit = on_job_exit;
	a->job.on_done = on_job_done;
	a->job.on_closed = agent_on_job_closed;
	a->job.data = a;
	if (job_start(&a->job, &ps, cause) == -1) {
		if (a->confine != NULL) {
			confine_spawn_finish(a->confine, &vcause);
			free(vcause);
			a->confine = NULL;
		}
		goto out;
	}
	a->in_run = 1;
	a->handles_open++; /* the job, until agent_on_job_closed */
	a->running = 1;
	a->reaped = 0;
	a->exit_code = a->term_signal = 0;
	a->discard = 0;
	a->faulted = 0;
	nlive++;
	glasspane_init(&a->gp, a->spec.harness, a->spec.mode, a->spec.stall_ms, now_ms());
	if (a->restarts > 0) {
		/* Totals are over the agent's life, not one run. */
		a->gp.usage = saved.usage;
		a->gp.turns = saved.turns;
		a->gp.tool_calls = saved.tool_calls;
	}
	{
		struct store_err e;
		json_t *f = json_pack("{s:I, s:I}", "pid", (json_int_t)a->job.proc.pid, "pid_start",
		                      (json_int_t)a->job.pid_start);
		json_t *row;
		txn_write(&e);
		row = store_agent_put(D.store, a->id, f, now_ms(), &e);
		json_decref(row);
		json_decref(f);
	}
	snprintf(a->gp.reason, sizeof a->gp.reason, "%s", a->restarts ? "restarted" : "spawned");
	if (a->restarts > 0) {
		struct glasspane_transition t = {saved.state, a->gp.state, a->gp.reason, "restart",
		                                 a->gp.since_ms};
		agent_persist(a, &t);
	} else
		agent_persist(a, NULL);
	log_info("agent %s: started %s (pid %ld%s)", a->id, a->spec.binary, (long)a->job.proc.pid,
	         confined ? ", confined" : "");
	*ok = 1;
out:
	strv_free(args);
	free(argv);
	free(wrapper);
	strv_free(envp);
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

	for (a = agents; a != NULL; a = a->next)
		if (!a->gone && strcmp(a->session_id, sid) == 0)
			return 1;
	return 0;
}

/* Free an agent that never ran (a refused spawn). */
static void
agent_discard(struct agent *a)
{
	spawn_spec_clear(&a->spec);
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

json_t *
spawner_spawn(struct spawn_spec *spec, const char **code, char **cause)
{
	struct store_err e;
	struct agent *a;
	json_t *f, *row;
	int ok;

	if (D.shutting_down) {
		spawn_spec_clear(spec);
		*code = ERR_UNAVAILABLE;
		xasprintf(cause, "the daemon is shutting down");
		return NULL;
	}
	if ((a = agent_new(spec, code, cause)) == NULL)
		return NULL;
	*code = ERR_INTERNAL;
	if (session_open(&a->slog, a->session_id, ".jsonl", cause) == -1)
		goto fail;
	if (session_open(&a->elog, a->session_id, ".stderr", cause) == -1)
		goto fail;
	uv_timer_init(D.loop, &a->timer);
	a->timer.data = a;
	glasspane_init(&a->gp, a->spec.harness, a->spec.mode, a->spec.stall_ms, now_ms());
	f = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:n, s:n, s:n}", "kind", "spawned",
	              "provider", a->spec.provider, "host", D.hostname, "session_id", a->session_id,
	              "state", "idle", "reason", "spawned", "since", (json_int_t)now_ms(), "lost",
	              0, "name", "lease_ms", "heartbeat");
	json_object_set_new(f, "tenant",
	                    a->spec.jail.name != NULL ? json_string(a->spec.jail.name)
	                                              : json_null());
	json_object_set_new(f, "owner_uid", json_integer((json_int_t)a->spec.owner));
	if (txn_write(&e) == -1 ||
	    (row = store_agent_put(D.store, a->id, f, now_ms(), &e)) == NULL) {
		json_decref(f);
		*code = e.code;
		*cause = xstrdup(e.msg);
		goto fail;
	}
	json_decref(row);
	json_decref(f);
	a->next = agents;
	agents = a;
	agent_start_run(a, cause, &ok);
	if (!ok) {
		*code = ERR_INVALID_ARGUMENT;
		agent_fault(a, *cause);
		a->handles_open++;
		a->gone = 1;
		agent_persist(a, NULL);
		session_close(&a->slog);
		session_close(&a->elog);
		uv_close((uv_handle_t *)&a->timer, on_pipe_closed);
		return NULL;
	}
	events_emit("agent.spawned",
	            json_pack("{s:s, s:s, s:s, s:I}", "id", a->id, "provider", a->spec.provider,
	                      "session_id", a->session_id, "pid", (json_int_t)a->job.proc.pid));
	if (jail_config_active(&a->spec.jail) && a->spec.jail.name != NULL &&
	    jail_config_root(&a->spec.jail) != NULL)
		vault_jailed_spawned(a->id, a->spec.jail.name, jail_config_root(&a->spec.jail));
	row = store_agent_get(D.store, a->id, &e);
	if (row != NULL)
		spawner_detail(row);
	return row;
fail:
	session_close(&a->slog);
	session_close(&a->elog);
	agent_discard(a);
	return NULL;
}

/* ---- commands' helpers ---- */

void
spawner_kill(struct cmd_req *r, const char *id, long long grace_ms)
{
	struct agent *a = agent_find(id);
	struct store_err e;
	json_t *row;

	if (a == NULL) {
		if ((row = store_agent_get(D.store, id, &e)) == NULL)
			cmd_fail(r, e.code, "%s", e.msg);
		else
			cmd_ok(r, row); /* already ended: nothing to do */
		return;
	}
	log_info("agent %s: kill requested (grace %lld ms)", id, grace_ms);
	if (a->pending_restart) {
		/*
		 * Waiting out a backoff, no process: stopping ends the agent now.
		 * Reply directly -- a held request answered inside its own exec
		 * would be freed under the dispatcher.
		 */
		agent_terminate(a, grace_ms);
		if (a->gone) {
			if ((row = store_agent_get(D.store, id, &e)) == NULL)
				cmd_fail(r, e.code, "%s", e.msg);
			else
				cmd_ok(r, row);
			return;
		}
	}
	cmd_req_hold(r);
	a->waiters = xreallocarray(a->waiters, a->nwaiters + 1, sizeof *a->waiters);
	a->waiters[a->nwaiters++] = r;
	if (!a->stopping)
		agent_terminate(a, grace_ms);
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
	if (a->spec.mode != GLASSPANE_MODE_RPC || !a->in_run || job_stdin(&a->job) == NULL) {
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
		for (a = agents; a != NULL; a = a->next) {
			if (!a->gone && a->running && a->job.proc.pid == pid) {
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

	if (id == NULL || (a = agent_find(id)) == NULL)
		return;
	d = agent_detail(a);
	json_object_update(obj, d);
	json_decref(d);
	json_object_set_new(obj, "state", json_string(glasspane_state_name(a->gp.state)));
	json_object_set_new(obj, "reason", json_string(a->gp.reason));
	json_object_set_new(obj, "since_ms", json_integer(a->gp.since_ms));
	json_object_set_new(obj, "pid", a->running ? json_integer(a->job.proc.pid) : json_null());
	json_object_set_new(obj, "last_event_age_ms",
	                    a->gp.last_event_ms > 0 ? json_integer(now_ms() - a->gp.last_event_ms)
	                                            : json_null());
}

/* ---- lifecycle ---- */

static void
on_tick(uv_timer_t *t)
{
	struct glasspane_transition tr;
	struct agent *a;

	(void)t;
	for (a = agents; a != NULL; a = a->next)
		if (a->running && !a->gone)
			agent_transition(a, glasspane_tick(&a->gp, now_ms(), &tr), &tr);
}

/*
 * What no sandbox may show (bwrap.h), and whom bubblewrap runs as under a
 * root daemon.
 */
static void
spawner_confine_privates(void)
{
	const char *v = getenv("COLIBRI_PROVIDER_ENV");
	char *dir;

	confine_opts_add_private(&confine_opts, D.cfg.state_dir, "state directory");
	confine_opts_add_private(&confine_opts, D.cfg.sessions_dir, "sessions directory");
	confine_opts_add_private(&confine_opts, D.cfg.db_path, "database");
	confine_opts_add_private(&confine_opts, D.cfg.socket_path, "socket");
	confine_opts_add_private(&confine_opts, D.cfg.log_path, "log");
	confine_opts_add_private(&confine_opts,
	                         v != NULL && *v != '\0' ? v : PATH_DEFAULT_PROVIDER_ENV,
	                         "provider.env");
	confine_opts_add_private(&confine_opts, PATH_DEFAULT_CONFIG_DIR, "configuration directory");
	confine_opts_add_private(&confine_opts, "/etc/colibri", "configuration directory");
	if (D.cfg.state_dir == NULL) {
		dir = xstrdup(PATH_DEFAULT_DATA);
		confine_opts_add_private(&confine_opts, dir, "state directory");
		free(dir);
	}
	confine_opts.drop_root = geteuid() == 0;
	confine_opts.agent_user = xstrdup(D.cfg.agent_user != NULL ? D.cfg.agent_user : "nobody");
}

/* A stage a previous daemon left in the jail root of agent row a: remove it. */
static void
spawner_remove_stage(const char *id, json_t *a)
{
	json_t *jail = json_object_get(json_object_get(a, "detail"), "jail");
	struct jail_config cfg;
	char *cause = NULL;
	int rc;

	if (jail == NULL)
		jail = json_object_get(a, "jail");
	if (!json_is_object(jail) || jail_config_parse(jail, &cfg, &cause) == -1) {
		free(cause);
		return;
	}
	if (jail_config_active(&cfg) && jail_config_root(&cfg) != NULL) {
		rc = stage_remove_leftover(jail_config_root(&cfg), id, confine_opts.stage_base,
		                           confine_opts.root_base, &cause);
		if (rc == 1)
			log_info("agent %s: removed the stage a previous daemon left", id);
		else if (rc == -1) {
			log_warnx("agent %s: leftover stage: %s", id, cause);
			free(cause);
		}
	}
	jail_config_clear(&cfg);
}

/* Agents a previous daemon left running: kill what survives, mark them error. */
static void
spawner_recover(void)
{
	struct store_err e;
	json_t *list, *a;
	size_t i;

	if ((list = store_agent_list(D.store, "spawned", NULL, &e)) == NULL)
		return;
	json_array_foreach(json_object_get(list, "items"), i, a)
	{
		const char *id = json_string_value(json_object_get(a, "id"));
		const char *state = json_string_value(json_object_get(a, "state"));
		json_t *pid = json_object_get(a, "pid"), *f, *row;
		pid_t *pids = NULL;
		char tree[TREE_NAME_MAX];
		int n, k;

		if (strcmp(state, "done") == 0 || strcmp(state, "error") == 0)
			if (!json_is_integer(pid))
				continue;
		/* Its whole tree first (job_init already emptied every group we own). */
		snprintf(tree, sizeof tree, "agent.%s", id);
		if (job_recover_tree(tree))
			log_info("agent %s: killed the process tree a previous daemon left", id);
		if (json_is_integer(pid) && json_integer_value(pid) > 1 &&
		    reaper_start_time((pid_t)json_integer_value(pid)) ==
		            json_integer_value(json_object_get(a, "pid_start"))) {
			pid_t p = (pid_t)json_integer_value(pid);
			log_info("agent %s: killing pid %ld left by a previous daemon", id,
			         (long)p);
			kill(-p, SIGKILL);
			kill(p, SIGKILL);
		}
		n = reaper_descendants(-1, id, &pids);
		for (k = 0; k < n; k++)
			kill(pids[k], SIGKILL);
		free(pids);
		spawner_remove_stage(id, a);
		if (strcmp(state, "done") == 0 || strcmp(state, "error") == 0)
			f = json_pack("{s:n}", "pid");
		else
			f = json_pack("{s:s, s:s, s:I, s:n}", "state", "error", "reason",
			              "daemon restarted", "since", (json_int_t)now_ms(), "pid");
		txn_write(&e);
		row = store_agent_put(D.store, id, f, now_ms(), &e);
		json_decref(f);
		if (row != NULL && strcmp(state, "done") != 0 && strcmp(state, "error") != 0)
			events_emit("agent.state",
			            json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "id", id, "from",
			                      state, "to", "error", "reason", "daemon restarted",
			                      "cause", "daemon", "at_ms", (json_int_t)now_ms()));
		json_decref(row);
	}
	json_decref(list);
}

int
spawner_init(char **cause)
{
	const char *v;

	if (confine_opts_from_env(&confine_opts, cause) == -1)
		return -1;
	if ((v = getenv("COLIBRI_MAX_AGENT_LINE")) != NULL && atoll(v) >= 1024)
		max_agent_line = (size_t)atoll(v);
	if ((v = getenv("COLIBRI_MAX_SESSION_BYTES")) != NULL && atoll(v) >= 1024)
		max_session_bytes = (off_t)atoll(v);
	spawner_confine_privates();
	spawner_recover();
	uv_timer_init(D.loop, &tick_timer);
	uv_timer_start(&tick_timer, on_tick, TICK_MS, TICK_MS);
	uv_unref((uv_handle_t *)&tick_timer);
	return 0;
}

void
spawner_shutdown(void)
{
	struct agent *a;

	for (a = agents; a != NULL; a = a->next) {
		if (a->gone)
			continue;
		agent_terminate(a, D.cfg.kill_grace_ms);
	}
}

int
spawner_busy(void)
{
	struct agent *a;

	for (a = agents; a != NULL; a = a->next)
		if (!a->gone || a->handles_open > 0)
			return 1;
	return 0;
}

void
spawner_close(void)
{
	uv_timer_stop(&tick_timer);
	uv_close((uv_handle_t *)&tick_timer, NULL);
	confine_opts_clear(&confine_opts);
}
