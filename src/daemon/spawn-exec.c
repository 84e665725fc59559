/*
 * spawn-exec.c -- one run of an agent: its process and its output.
 *
 * A run is one job (job.h): a child in a process group and process tree of
 * its own, started from the spec's binary, args and env -- directly, or
 * through the confinement's wrapper (bwrap, jexec...) with a stage that
 * holds the agent's environment.  Its stdout is read in chunks into one
 * shared buffer; complete lines are appended to the session log in one
 * write per chunk and fed to the glasspane; only a line split across reads
 * is copied, into the agent's own small buffer.  So an idle agent costs a
 * struct, two pipes and two log descriptors, and a busy one no per-line
 * allocation.  A line longer than the line limit, or a session log past
 * its cap, is a fault: the agent is marked error and stopped, and the
 * daemon does not grow.  The job's exit and end are inputs of the run
 * machine (spawn-run.c).
 *
 * Every run, confined or not, inherits the agent channel: one end of a
 * socketpair, kept by the child as descriptor 3 (the job layer's pass_fd)
 * and named by COLIBRI_FD in its environment, whose other end is a
 * connection of the daemon's with the agent role bound to this agent
 * (server_channel_open, reached through spawner_set_channel).  bwrap,
 * jexec and jail -c leave an inherited descriptor alone, so it is the one way to the board from
 * inside a jail. It closes when the run ends (on_job_done).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/spawner-agent.h"

extern char **environ;

#define STDERR_CAP (1024 * 1024)

/* ---- output ---- */

/*
 * Feed one line, already in the session log, to the glasspane.  It is the
 * log's line slog.lines + 1: a transition it causes names that line.  Lines
 * are logged before they are fed, so a line that did not reach the log (a
 * flood, a write error) is never a transition's cause.
 */
static void
exec_feed_line(struct agent *a, const char *p, size_t n)
{
	struct glasspane_transition t;
	long long line = ++a->slog.lines;

	agent_transition_line(a, glasspane_feed(&a->gp, p, n, now_ms(), &t), &t, line);
}

/* Feed the complete lines of p[0..n) (n ends just after a newline). */
static void
exec_ingest(struct agent *a, const char *p, size_t n)
{
	const char *s = p, *nl, *end = p + n;

	while (s < end && !a->discard && (nl = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		exec_feed_line(a, s, (size_t)(nl - s));
		s = nl + 1;
	}
}

/* The bytes of p[0..n) up to and including its last newline. */
static size_t
exec_complete_bytes(const char *p, size_t n)
{
	const char *nl = memrchr(p, '\n', n);

	return nl != NULL ? (size_t)(nl - p) + 1 : 0;
}

/* A fault in the output: stop ingesting, mark the agent error and stop it now. */
static void
exec_output_fault(struct agent *a, const char *why)
{
	a->discard = 1;
	agent_fault(a, why);
	a->stopping = 1;
	run_step(a, RI_STOP, 0, NULL);
}

static void
exec_log(struct agent *a, const char *p, size_t n)
{
	char why[128];

	if (n == 0 || a->discard)
		return;
	if (a->slog.bytes + (off_t)n > spawner_max_session) {
		snprintf(why, sizeof why, "output flood: session log passed %lld bytes",
		         (long long)spawner_max_session);
		exec_output_fault(a, why);
		return;
	}
	if (session_append(&a->slog, p, n) == -1)
		exec_output_fault(a, "cannot write the session log");
}

/* Complete a line started in an earlier read; returns the bytes of p used. */
static size_t
exec_complete_line(struct agent *a, const char *p, size_t len)
{
	const char *nl = memchr(p, '\n', len);
	size_t used = nl != NULL ? (size_t)(nl - p) + 1 : len;

	buf_add(&a->line, p, used);
	if (nl != NULL) {
		exec_log(a, buf_head(&a->line), buf_used(&a->line));
		if (!a->discard)
			exec_feed_line(a, buf_head(&a->line), buf_used(&a->line) - 1);
		buf_free(&a->line);
	}
	return used;
}

static void
exec_stdout(struct agent *a, const char *p, size_t len)
{
	size_t used;
	char why[128];

	if (a->discard || len == 0)
		return;
	if (buf_used(&a->line) > 0) {
		used = exec_complete_line(a, p, len);
		p += used;
		len -= used;
	}
	if (buf_used(&a->line) == 0 && len > 0 && !a->discard) {
		used = exec_complete_bytes(p, len);
		exec_log(a, p, used);
		exec_ingest(a, p, used);
		if (used < len && !a->discard)
			buf_add(&a->line, p + used, len - used);
	}
	if (buf_used(&a->line) > spawner_max_line && !a->discard) {
		snprintf(why, sizeof why, "stdout line exceeds %zu bytes without a newline",
		         spawner_max_line);
		buf_free(&a->line);
		exec_output_fault(a, why);
	}
}

static void
exec_stderr(struct agent *a, const char *p, size_t n)
{
	if (n == 0 || a->elog.fd == -1)
		return;
	if (session_append(&a->elog, p, n) == -1 || session_rotate_if(&a->elog, STDERR_CAP) == -1) {
		log_warn("agent %s: stderr log", a->id);
		session_close(&a->elog);
	}
}

void
exec_flush_line(struct agent *a)
{
	if (buf_used(&a->line) > 0 && !a->discard) {
		exec_log(a, buf_head(&a->line), buf_used(&a->line));
		exec_log(a, "\n", 1);
		if (!a->discard)
			exec_feed_line(a, buf_head(&a->line), buf_used(&a->line));
	}
	buf_free(&a->line);
}

void
exec_signal_tree(struct agent *a, int sig)
{
	if (agent_in_run(a))
		job_signal(&a->job, sig);
}

/* ---- the job's callbacks ---- */

static void
on_job_read(struct job *j, int which, const char *p, size_t n)
{
	if (which == 1)
		exec_stdout(j->data, p, n);
	else
		exec_stderr(j->data, p, n);
}

static void
on_job_exit(struct job *j)
{
	struct agent *a = j->data;

	a->reaped = 1;
	a->exit_code = j->exit_code;
	a->term_signal = j->term_signal;
	log_debug("agent %s: pid %ld exited (%d, signal %d)", a->id, (long)j->proc.pid,
	          j->exit_code, j->term_signal);
	run_step(a, RI_EXIT, 0, NULL);
}

/* The join: reaped and stdout/stderr at EOF (or closed by force). */
static const struct spawner_channel *channel_ops;

void
spawner_set_channel(const struct spawner_channel *ops)
{
	channel_ops = ops;
}

static void
channel_close(struct agent *a)
{
	if (a->channel != 0 && channel_ops != NULL)
		channel_ops->close(a->channel);
	a->channel = 0;
}

static void
on_job_done(struct job *j)
{
	struct agent *a = j->data;
	char why[64];

	if (j->timed_out) {
		snprintf(why, sizeof why, "run timed out after %lld ms",
		         (long long)a->spec.timeout_ms);
		agent_fault(a, why);
	}
	channel_close(a);
	job_close(j);
	run_step(j->data, RI_DONE, 0, NULL);
}

static void
on_job_closed(struct job *j)
{
	struct agent *a = j->data;

	channel_close(a);
	a->handles_open--;
	run_handle_closed(a);
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

/* Is the daemon's environment entry e set by the caller's env (which then wins)? */
static int
env_overridden(const json_t *env, const char *e)
{
	const char *eq = strchr(e, '=');
	char *name;
	int over;

	if (eq == NULL || env == NULL)
		return 0;
	name = xstrndup(e, (size_t)(eq - e));
	over = json_object_get(env, name) != NULL;
	free(name);
	return over;
}

/*
 * A local program's word from the spawn, set into env: COLIBRI_MODE=rpc for an
 * RPC-mode spawn (absent: json, one run), COLIBRI_PROMPT when the spawn has a
 * prompt.  pi and zot get theirs as flags (exec_args).  Any task-bound run
 * gets COLIBRI_TASK_ID and COLIBRI_TASK_EPOCH (its claim, for the channel's
 * task-complete).  The caller's env cannot name COLIBRI_*, so these are the
 * daemon's word.
 */
static void
exec_local_env(struct agent *a, json_t *env)
{
	if (a->task != 0) {
		json_object_set_new(env, "COLIBRI_TASK_ID", json_sprintf("%lld", a->task));
		json_object_set_new(env, "COLIBRI_TASK_EPOCH", json_sprintf("%lld", a->epoch));
	}
	if (strcmp(a->spec.provider, "local") != 0)
		return;
	if (a->spec.mode == GLASSPANE_MODE_RPC)
		json_object_set_new(env, "COLIBRI_MODE", json_string("rpc"));
	if (a->spec.prompt != NULL)
		json_object_set_new(env, "COLIBRI_PROMPT", json_string(a->spec.prompt));
}

/* The same appended to an unconfined run's envp[n...]; returns the new n (not terminated). */
static size_t
exec_local_envp(struct agent *a, char ***envp, size_t n)
{
	json_t *env = json_object(), *v;
	const char *key;

	exec_local_env(a, env);
	*envp = xreallocarray(*envp, n + json_object_size(env) + 1, sizeof **envp);
	json_object_foreach(env, key, v)
	        xasprintf(&(*envp)[n++], "%s=%s", key, json_string_value(v));
	json_decref(env);
	return n;
}

/* An unconfined agent's environment: the daemon's (secrets scrubbed), the caller's, and ours. */
static char **
exec_envp(struct agent *a)
{
	char **envp = NULL;
	size_t n = 0, i;
	const char *key;
	json_t *v;

	for (i = 0; environ[i] != NULL; i++) {
		if (env_name_scrubbed(environ[i]) || env_overridden(a->spec.env, environ[i]))
			continue;
		envp = xreallocarray(envp, n + 2, sizeof *envp);
		envp[n++] = xstrdup(environ[i]);
	}
	json_object_foreach(a->spec.env, key, v)
	{
		envp = xreallocarray(envp, n + 2, sizeof *envp);
		xasprintf(&envp[n++], "%s=%s", key, json_string_value(v));
	}
	envp = xreallocarray(envp, n + 6, sizeof *envp);
	xasprintf(&envp[n++], "COLIBRI_AGENT_ID=%s", a->id);
	xasprintf(&envp[n++], "COLIBRI_FD=%d", PROC_PASS_FD);
	xasprintf(&envp[n++], "COLIBRI_SESSION_ID=%s", a->session_id);
	xasprintf(&envp[n++], "COLIBRI_SOCKET=%s", D.cfg.socket_path);
	n = exec_local_envp(a, &envp, n);
	envp[n] = NULL;
	return envp;
}

/* The wrapper's environment when confined: minimal; launch.sh sets the agent's. */
static char **
exec_envp_confined(void)
{
	char **envp = xcalloc(2, sizeof *envp);

	envp[0] = xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
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

/*
 * The agent's argv after argv[0].  The provider's flags belong to the
 * provider: pi gets `--mode json|rpc`, the caller's args and `-p PROMPT`;
 * zot `--json` (or `rpc`), the args and the prompt.  A local program runs
 * with exactly the caller's args: its prompt and mode reach it as
 * COLIBRI_PROMPT and COLIBRI_MODE (exec_local_env), never in argv.
 */
static char **
exec_args(struct agent *a)
{
	char **v = xcalloc(json_array_size(a->spec.args) + 8, sizeof *v);
	size_t n = 0, i;
	json_t *x;
	int zot = strcmp(a->spec.provider, "zot") == 0, rpc = a->spec.mode == GLASSPANE_MODE_RPC;
	int local = strcmp(a->spec.provider, "local") == 0;

	if (zot)
		v[n++] = xstrdup(rpc ? "rpc" : "--json");
	else if (!local) {
		v[n++] = xstrdup("--mode");
		v[n++] = xstrdup(rpc ? "rpc" : "json");
	}
	json_array_foreach(a->spec.args, i, x) v[n++] = xstrdup(json_string_value(x));
	if (a->spec.prompt != NULL && !rpc && !local) {
		if (!zot)
			v[n++] = xstrdup("-p");
		v[n++] = xstrdup(a->spec.prompt);
	}
	v[n] = NULL;
	return v;
}

static void
exec_unstage(struct agent *a)
{
	char *cause = NULL;

	if (a->confine == NULL)
		return;
	confine_spawn_finish(a->confine, &cause);
	free(cause);
	a->confine = NULL;
}

/* Stage a confined run: ps gets the wrapper's argv, *wrapper its resolved path. */
static int
exec_confine(struct agent *a, char **args, struct job_spec *ps, struct proc_creds *creds,
             char **wrapper, char **cause)
{
	json_t *env = a->spec.env != NULL ? json_deep_copy(a->spec.env) : json_object();
	struct confine_opts o = spawner_confine; /* with this spawn's read-only paths */
	char *vcause = NULL;

	o.ro_paths = a->spec.ro_paths;
	json_object_set_new(env, "COLIBRI_AGENT_ID", json_string(a->id));
	json_object_set_new(env, "COLIBRI_SESSION_ID", json_string(a->session_id));
	json_object_set_new(env, "COLIBRI_FD", json_sprintf("%d", PROC_PASS_FD));
	exec_local_env(a, env);
	a->confine = confine_prepare(&o, &a->spec.jail, a->id, a->spec.binary,
	                             (const char *const *)args, env, a->spec.cwd, &vcause);
	json_decref(env);
	if (a->confine == NULL) {
		xasprintf(cause, "confinement: %s", vcause);
		free(vcause);
		return -1;
	}
	/* exec does not search PATH: find bwrap, jexec, mdo... on the daemon's. */
	if (spawn_resolve_binary(a->confine->cmd->program, wrapper, cause) == -1) {
		exec_unstage(a);
		return -1;
	}
	ps->path = *wrapper;
	ps->argv = a->confine->cmd->argv;
	if (a->confine->drop) {
		/* bwrap under a root daemon: bwrap and the agent run as the agent user. */
		memset(creds, 0, sizeof *creds);
		creds->uid = a->confine->uid;
		creds->gid = a->confine->gid;
		ps->creds = creds;
	}
	return 0;
}

/* An unconfined run: argv is the binary and args (borrowed; the caller frees the array). */
static char **
exec_plain(struct agent *a, char **args, struct job_spec *ps)
{
	size_t n, i;
	char **argv;

	for (n = 0; args[n] != NULL; n++)
		;
	argv = xcalloc(n + 2, sizeof *argv);
	argv[0] = a->spec.binary;
	for (i = 0; i < n; i++)
		argv[i + 1] = args[i];
	ps->path = a->spec.binary;
	ps->argv = argv;
	ps->cwd = a->spec.cwd;
	return argv;
}

static void
exec_job_init(struct agent *a, struct job_spec *ps, char *tree)
{
	ps->in = a->spec.mode == GLASSPANE_MODE_RPC ? PROC_PIPE : PROC_NULL;
	ps->out = PROC_PIPE;
	ps->err = PROC_PIPE;
	snprintf(tree, TREE_NAME_MAX, "agent.%s", a->id);
	ps->tree = tree;
	ps->marker = a->id;
	ps->deadline_ms = a->spec.timeout_ms; /* the run's own deadline (0: none) */
	memset(&a->job, 0, sizeof a->job);
	a->job.on_read = on_job_read;
	a->job.on_exit = on_job_exit;
	a->job.on_done = on_job_done;
	a->job.on_closed = on_job_closed;
	a->job.data = a;
}

/*
 * The run's agent channel: the daemon's end a bound connection, the
 * child's end in ps->pass_fd (the caller closes it once the child holds
 * it).  Both ends close-on-exec; the child's copy loses the flag as
 * descriptor 3.
 */
static int
exec_channel(struct agent *a, struct job_spec *ps, char **cause)
{
	int sv[2];

	if (channel_ops == NULL) {
		xasprintf(cause, "the agent channel: no server to connect it to");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		xasprintf(cause, "the agent channel: socketpair: %s", strerror(errno));
		return -1;
	}
	a->channel = channel_ops->open(sv[0], a->id, ps->creds ? ps->creds->uid : getuid(),
	                               ps->creds ? ps->creds->gid : getgid(), cause);
	if (a->channel == 0) {
		close(sv[1]);
		return -1;
	}
	ps->pass_fd = sv[1];
	return 0;
}

int
exec_start(struct agent *a, char **cause)
{
	struct job_spec ps;
	struct proc_creds creds;
	char tree[TREE_NAME_MAX];
	char **args = exec_args(a), **argv = NULL, **envp = NULL, *wrapper = NULL;
	int confined = jail_config_active(&a->spec.jail), rc = -1;

	memset(&ps, 0, sizeof ps);
	a->channel = 0;
	if (confined) {
		if (exec_confine(a, args, &ps, &creds, &wrapper, cause) == -1)
			goto out;
		envp = exec_envp_confined();
	} else {
		argv = exec_plain(a, args, &ps);
		envp = exec_envp(a);
	}
	ps.envp = envp;
	exec_job_init(a, &ps, tree);
	if (exec_channel(a, &ps, cause) == -1) {
		exec_unstage(a);
		goto out;
	}
	if (job_start(&a->job, &ps, cause) == -1) {
		close(ps.pass_fd);
		channel_close(a);
		exec_unstage(a);
		goto out;
	}
	close(ps.pass_fd);
	a->handles_open++; /* the job, until on_job_closed */
	a->reaped = 0;
	a->exit_code = a->term_signal = 0;
	a->discard = 0;
	a->faulted = 0;
	log_info("agent %s: started %s (pid %ld%s)", a->id, a->spec.binary, (long)a->job.proc.pid,
	         confined ? ", confined" : "");
	rc = 0;
out:
	strv_free(args);
	free(argv);
	free(wrapper);
	strv_free(envp);
	return rc;
}
