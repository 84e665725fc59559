/*
 * spawn-run.c -- an agent's life as a transition table.
 *
 * run_table[state][input] names an action, a usual next state and a reason
 * (s6-supervise style, like gp_table in glasspane.c); an empty cell means
 * "nothing happens".  Actions are small: they do the one thing the input
 * asks (start a job, signal a tree, judge a finished run) and return the
 * next state, or RUN_KEEP.  run_step records the change, writes the
 * agent's row ONCE for it -- with every glasspane transition the action
 * caused, held meanwhile, published as agent.state -- and then runs the
 * rule's follow-up (events that must come after the row, the restart
 * timer).
 *
 *   new       --start-->        running   (or ended: it could not start)
 *   running   --exit-->         draining  (the process is reaped; no write:
 *                                          the run is not over until its
 *                                          output is)
 *   running   --stop/grace-->   running   (SIGTERM, then SIGKILL)
 *   draining  --done-->         backoff   (crashed, restarts left)
 *                               ended     (done, or nothing left to try)
 *   backoff   --backoff over--> running   (or ended: the restart failed)
 *   backoff   --stop-->         ended
 *
 * Whatever the agent left behind -- its process tree (a cgroup of its own
 * on Linux, the reaper subtree on FreeBSD; else its process group and what
 * the reaper finds by ancestry and the COLIBRI_AGENT_ID marker) -- is killed
 * at the exit.  The restart policy: a clean done is final; a crash restarts
 * with exponential backoff and jitter while restarts remain; a model error
 * restarts only with restart.on_error; a fault, a kill-agent or a shutdown
 * never restarts; a run whose restarts are spent ends with "gave up after N
 * restarts: <reason>".  A run that ended on a provider's rate limit or quota
 * is parked instead (spawn-park.c): blocked until the reset, then restarted
 * in the same backoff state, without counting against restart.max.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/spawner-agent.h"
#include "daemon/txn.h"
#include "store/store.h"

#define RUN_KEEP (-1)

struct run_ctx {
	int64_t grace_ms; /* RI_STOP */
	char **cause;     /* RI_START: why it could not start */
	const char *why;  /* an action's reason, when not the rule's */
};

struct run_rule;
typedef int run_action(struct agent *, struct run_ctx *, const struct run_rule *);

struct run_rule {
	run_action *act;               /* NULL: nothing happens */
	enum run_state to;             /* the usual target */
	const char *why;               /* the usual reason */
	void (*after)(struct agent *); /* after the row is written */
};

static void on_timer(uv_timer_t *t);

const char *
run_state_name(enum run_state st)
{
	static const char *const names[RUN_NSTATES] = {"new", "running", "draining", "backoff",
	                                               "ended"};

	return names[st];
}

/* ---- restart policy ---- */

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

/*
 * Should this run be followed by another?  Sets *why.  A run the policy would restart but
 * for a spent budget says so in its reason ("gave up after N restarts: ...").
 */
static int
should_restart(struct agent *a, const char **why)
{
	if (a->stopping || D.shutting_down)
		return 0;
	if (a->gp.state != GLASSPANE_ERROR)
		return 0; /* done (or idle after an RPC session) is final */
	if (a->term_signal != 0 || a->exit_code != 0 || a->faulted) {
		*why = "crashed";
		if (a->faulted)
			return 0;
	} else {
		*why = "model error";
		if (!a->spec.restart.on_error)
			return 0;
	}
	if (a->restarts < a->spec.restart.max)
		return 1;
	if (a->restarts > 0)
		park_gave_up(a);
	return 0;
}

/* ---- actions ---- */

/* Start a run's process; a failure is a fault and the end. */
static int
act_start(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	struct glasspane_transition t;

	a->parked_until = 0; /* a park ends with the next start, or its failure */
	if (exec_start(a, cx->cause) == -1) {
		agent_fault(a, *cx->cause);
		cx->why = "could not start";
		return RUN_ENDED;
	}
	if (a->run == RUN_NEW)
		glasspane_init(&a->gp, a->spec.harness, a->spec.mode, a->spec.stall_ms, now_ms());
	else
		agent_transition(a, glasspane_restart(&a->gp, now_ms(), &t), &t);
	/* A plain local program is working from here to its exit. */
	agent_transition(a, glasspane_start(&a->gp, now_ms(), &t), &t);
	return (int)r->to;
}

/* The backoff is over: restart, once the last run's handles have closed. */
static int
act_restart(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	char *cause = NULL;
	int to;

	if (a->job.handles > 0) {
		uv_timer_start(&a->timer, on_timer, 10, 0);
		return RUN_KEEP;
	}
	cx->cause = &cause;
	to = act_start(a, cx, r);
	free(cause);
	return to;
}

static int
act_reaped(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	/* No orphans: end whatever the agent left behind. */
	exec_signal_tree(a, SIGKILL);
	uv_timer_stop(&a->timer); /* the grace period, if a stop began one */
	return (int)r->to;
}

/* Begin stopping: SIGTERM now, SIGKILL after the grace period. */
static int
act_terminate(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	exec_signal_tree(a, SIGTERM);
	uv_timer_start(&a->timer, on_timer, (uint64_t)(cx->grace_ms > 0 ? cx->grace_ms : 0), 0);
	return RUN_KEEP;
}

static int
act_kill(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	log_info("agent %s: grace period over, sending SIGKILL", a->id);
	exec_signal_tree(a, SIGKILL);
	return RUN_KEEP;
}

static int
act_cancel(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	uv_timer_stop(&a->timer);
	park_stopped(a);
	return (int)r->to;
}

/* The confinement's word on how the agent ended (its status file), or a fault. */
static void
finish_confined(struct agent *a)
{
	struct stage_status st;
	char why[160], *cause = NULL;

	confine_spawn_status(a->confine, a->exit_code, a->term_signal, &st);
	if (st.kind == STAGE_STATUS_EXITED) {
		a->exit_code = st.exit_code;
		a->term_signal = 0;
	} else if (st.kind == STAGE_STATUS_SIGNALED) {
		a->exit_code = -1;
		a->term_signal = st.signal;
	} else if (st.kind == STAGE_STATUS_SETUP_FAILED) {
		snprintf(why, sizeof why, "confinement setup failed (%s)",
		         st.setup != NULL ? st.setup : "?");
		agent_fault(a, why);
	} else if (!a->stopping) {
		/* launch.sh wrote nothing: jexec failed (exit 1), or the shell died under a
		 * `jail -c` that exits 0 anyway.  The wrapper's code is not the agent's. */
		snprintf(why, sizeof why, "no agent status from the confinement (%s exited %d)",
		         a->confine->cmd->program, a->exit_code);
		agent_fault(a, why);
	}
	if (confine_spawn_finish(a->confine, &cause) == -1) {
		log_warnx("agent %s: stage removal: %s", a->id, cause);
		free(cause);
	}
	a->confine = NULL;
}

/* The run is over (reaped, output at EOF): judge it, then restart or end. */
static int
act_finish(struct agent *a, struct run_ctx *cx, const struct run_rule *r)
{
	struct glasspane_transition t;
	const char *why = NULL;
	int code, sig;

	exec_flush_line(a);
	if (a->confine != NULL)
		finish_confined(a);
	code = a->exit_code;
	sig = a->term_signal;
	agent_transition(a, glasspane_exit(&a->gp, sig > 0 ? 0 : code, sig, now_ms(), &t), &t);
	if (park_run(a)) {
		cx->why = "parked on a quota error";
		return RUN_BACKOFF;
	}
	if (!should_restart(a, &why))
		return (int)r->to;
	a->restarts++;
	a->backoff_ms = backoff_delay(a);
	cx->why = why;
	log_info("agent %s %s; restart %d/%d in %lld ms", a->id, why, a->restarts,
	         a->spec.restart.max, (long long)a->backoff_ms);
	return RUN_BACKOFF;
}

/* After the row of a finished run: agent.exited, and agent.restarted with its timer. */
static void
after_finish(struct agent *a)
{
	int sig = a->term_signal;

	events_emit(EV_AGENT_EXITED,
	            json_pack("{s:s, s:o, s:o, s:s, s:s}", "id", a->id, "exit_code",
	                      sig == 0 ? json_integer(a->exit_code) : json_null(), "signal",
	                      sig != 0 ? json_integer(sig) : json_null(), "state",
	                      glasspane_state_name(a->gp.state), "reason", a->gp.reason));
	if (a->run != RUN_BACKOFF)
		return;
	if (a->parked_until != 0) { /* a park: its agent.state says so; no restart is counted */
		uv_timer_start(&a->timer, on_timer,
		               (uint64_t)(a->backoff_ms > 0 ? a->backoff_ms : 0), 0);
		return;
	}
	events_emit(EV_AGENT_RESTARTED,
	            json_pack("{s:s, s:i, s:i, s:s, s:I}", "id", a->id, "restart", a->restarts,
	                      "max_restarts", a->spec.restart.max, "reason",
	                      a->term_signal != 0 || a->exit_code != 0 ? "crashed" : "model error",
	                      "delay_ms", (json_int_t)a->backoff_ms));
	uv_timer_start(&a->timer, on_timer, (uint64_t)(a->backoff_ms > 0 ? a->backoff_ms : 0), 0);
}

/* clang-format off */
static const struct run_rule run_table[RUN_NSTATES][RUN_NINPUTS] = {
	[RUN_NEW] = {
		[RI_START] = {act_start, RUN_RUNNING, "spawned", NULL},
	},
	[RUN_RUNNING] = {
		[RI_EXIT] = {act_reaped, RUN_DRAINING, "process reaped", NULL},
		[RI_STOP] = {act_terminate, RUN_RUNNING, "stop: SIGTERM", NULL},
		[RI_GRACE] = {act_kill, RUN_RUNNING, "grace over: SIGKILL", NULL},
	},
	[RUN_DRAINING] = {
		[RI_DONE] = {act_finish, RUN_ENDED, "run over", after_finish},
	},
	[RUN_BACKOFF] = {
		[RI_BACKOFF_OVER] = {act_restart, RUN_RUNNING, "restarted", NULL},
		[RI_STOP] = {act_cancel, RUN_ENDED, "stopped in backoff", NULL},
	},
	[RUN_ENDED] = {{NULL, RUN_ENDED, NULL, NULL}},
};
/* clang-format on */

/* ---- the end ---- */

static void
on_timer_closed(uv_handle_t *h)
{
	struct agent *a = h->data;

	a->handles_open--;
	run_handle_closed(a);
}

void
run_end(struct agent *a)
{
	size_t i;

	task_settle(a); /* in the transaction of the final row, before anyone hears of the end */
	for (i = 0; i < a->nwaiters; i++)
		a->waiters[i].done(a->waiters[i].arg, a->id);
	a->nwaiters = 0;
	session_close(&a->slog);
	session_close(&a->elog);
	uv_timer_stop(&a->timer);
	a->handles_open++;
	uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}

void
run_handle_closed(struct agent *a)
{
	if (agent_gone(a) && a->handles_open == 0)
		agent_free(a);
}

/* ---- the step ---- */

static void
on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;

	run_step(a, a->run == RUN_BACKOFF ? RI_BACKOFF_OVER : RI_GRACE, 0, NULL);
}

void
run_step(struct agent *a, enum run_input in, int64_t grace_ms, char **cause)
{
	const struct run_rule *r = &run_table[a->run][in];
	struct run_ctx cx = {grace_ms, cause, NULL};
	enum run_state from = a->run;
	int to;

	if (r->act == NULL)
		return;
	a->holding++;
	to = r->act(a, &cx, r);
	a->holding--;
	if (to == RUN_KEEP || to == (int)from) {
		if (a->nheld > 0 && a->holding == 0)
			agent_write(a);
		return;
	}
	a->run = (enum run_state)to;
	log_debug("agent %s: run %s -> %s (%s)", a->id, run_state_name(from),
	          run_state_name(a->run), cx.why != NULL ? cx.why : r->why);
	/* The row shows a run, not its draining: only a reaped process changes nothing there. */
	if (a->run != RUN_DRAINING || a->nheld > 0)
		agent_write(a);
	if (r->after != NULL)
		r->after(a);
	if (a->run == RUN_ENDED)
		run_end(a);
}

void
run_stop(struct agent *a, int64_t grace_ms)
{
	a->stopping = 1;
	run_step(a, RI_STOP, grace_ms, NULL);
}
