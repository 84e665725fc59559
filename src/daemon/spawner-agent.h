/*
 * spawner-agent.h -- the spawner's own header: struct agent and the calls
 * between the spawner's files (not for the rest of the daemon; spawner.h
 * is the spawner's face).
 *
 * The spawner is five files around one struct:
 *   spawner.c        the registry of agents, their rows in the store, and
 *                    the calls the commands make (spawner.h);
 *   spawn-run.c      the run machine: run_table[state][input], one row
 *                    write per transition, restart policy, the end;
 *   spawn-exec.c     a run's process: argv, environment, confinement, the
 *                    job, and its output into the session log and glasspane;
 *   spawn-recover.c  what a previous daemon left behind, and what no
 *                    sandbox may show;
 *   spawn-explain.c  the chain of an agent's transitions and their causes
 *                    (agent-explain).
 *   spawn-park.c     quota parking: a run refused for volume waits for the
 *                    reset, and its profile with it.
 * The request's arguments were parsed before any of them (spawn-spec.c).
 */
#ifndef COLIBRI_SPAWNER_AGENT_H
#define COLIBRI_SPAWNER_AGENT_H

#include <uv.h>

#include "common/buf.h"
#include "confine/confine.h"
#include "daemon/session.h"
#include "daemon/spawn-spec.h"
#include "daemon/spawner.h"
#include "glasspane/glasspane.h"
#include "job/job.h"

/*
 * Where an agent's life is (spawn-run.c): new (not started), running (a
 * process exists), draining (reaped, its output not yet at EOF), backoff
 * (waiting to restart) and ended (its row final; freed once its handles
 * have closed).
 */
enum run_state { RUN_NEW, RUN_RUNNING, RUN_DRAINING, RUN_BACKOFF, RUN_ENDED, RUN_NSTATES };

/* What can happen to it. */
enum run_input {
	RI_START,        /* spawner_spawn: the first run */
	RI_EXIT,         /* the process was reaped */
	RI_DONE,         /* reaped and its output at EOF: the run is over */
	RI_STOP,         /* kill-agent, shutdown or a fault: no more runs */
	RI_GRACE,        /* the stop's grace period is over */
	RI_BACKOFF_OVER, /* the restart delay is over */
	RUN_NINPUTS
};

/* A glasspane transition kept until the run step writes the row (reason and cause copied). */
struct held_transition {
	enum glasspane_state from, to;
	char reason[GLASSPANE_REASON_MAX];
	char cause[GP_TYPE_MAX];
	long long line; /* the session log line (1-based) that caused it; 0: not a line */
	int64_t at_ms;
};

#define AGENT_HELD_MAX 4

/* One kill-agent waiting for the agent's end (spawner_kill). */
struct agent_waiter {
	spawner_ended_fn *done;
	void *arg;
};

struct agent {
	char *id;
	char *session_id;
	struct spawn_spec spec; /* what was asked for (owned) */
	enum run_state run;

	/* the current run */
	struct job job;
	int reaped;
	int exit_code, term_signal;
	struct buf line; /* a line split across reads */
	int discard;     /* a fault happened: stop ingesting */
	struct session_log slog, elog;
	struct confine_spawn *confine;
	struct glasspane gp;
	int faulted;                /* this run met a fault (agent_fault) */
	unsigned long long channel; /* the run's agent channel (server_channel_open), 0: none */

	int restarts;
	int64_t backoff_ms;           /* the delay before the pending restart */
	int stopping;                 /* kill-agent or shutdown: no restart */
	uv_timer_t timer;             /* backoff (in backoff) or kill grace (while running) */
	struct agent_waiter *waiters; /* kill-agent: told when the agent has ended */
	size_t nwaiters;
	int handles_open;         /* uv handles still closing */
	int row_written;          /* the row exists: later writes need not repeat kind, owner... */
	int holding;              /* inside a run step: glasspane transitions wait for its write */
	uint64_t message_written; /* gp.last_message_seq when the row last took last_message */
	/* A task-bound run (spawn-task.c): the task claimed for it and the claim's epoch. */
	long long task, epoch;
	int settled; /* the task was settled at the end */
	/* Quota parking (spawn-park.c): parks in a row without a reset time, and the park's end. */
	int parks;
	int64_t parked_until; /* ms epoch while parked (in backoff), else 0 */
	struct held_transition held[AGENT_HELD_MAX];
	int nheld;
	json_t *chain;      /* the last transitions, oldest first (spawn-explain.c) */
	json_t *spawn_json; /* the row's "spawn" detail (agent-resume's), built once from spec */
	struct agent *next;
};

/* A process exists (not yet reaped). */
#define agent_running(a) ((a)->run == RUN_RUNNING)
/* The job started and is not done. */
#define agent_in_run(a) ((a)->run == RUN_RUNNING || (a)->run == RUN_DRAINING)
#define agent_gone(a)   ((a)->run == RUN_ENDED)

/* spawner.c */
extern struct agent *spawner_agents;
extern struct confine_opts spawner_confine;
extern size_t spawner_max_line;
extern off_t spawner_max_session;
/* Store the agent's row once, with the transitions held since the last write as agent.state events.
 */
void agent_write(struct agent *a);
/* A glasspane transition (changed != 0): written now, or held by the run step in progress. */
void agent_transition(struct agent *a, int changed, const struct glasspane_transition *t);
/* The same, caused by the session log's line `line` (1-based; 0: not a line). */
void agent_transition_line(struct agent *a, int changed, const struct glasspane_transition *t,
                           long long line);
/* Force the agent into error with reason (a fault the glasspane cannot see). */
void agent_fault(struct agent *a, const char *reason);
/* Unlink and free an agent (its handles closed, or it never had any). */
void agent_free(struct agent *a);

/* spawn-run.c */
/*
 * Feed input to a's run machine.  cause: RI_START's failure (set, the caller
 * frees); grace_ms: RI_STOP's grace before SIGKILL.
 */
void run_step(struct agent *a, enum run_input in, int64_t grace_ms, char **cause);
/* Stop a (no more runs): SIGTERM, SIGKILL after grace_ms; a backoff ends at once. */
void run_stop(struct agent *a, int64_t grace_ms);
/*
 * a has ended (a->run is RUN_ENDED): tell kill-agent's waiters (its row is
 * final), close its logs and timer; it is freed once its handles close.
 */
void run_end(struct agent *a);
/* The last handle of a has closed: free it if it has ended. */
void run_handle_closed(struct agent *a);
const char *run_state_name(enum run_state st);

/* spawn-exec.c */
/* Start a's process (a job); 0, or -1 with *cause. */
int exec_start(struct agent *a, char **cause);
/* A last line without a newline still counts (at the end of a run). */
void exec_flush_line(struct agent *a);
/* Signal the agent's whole process tree (job.h). */
void exec_signal_tree(struct agent *a, int sig);

/* spawn-task.c */
/*
 * Claim a's task (a->spec.task) for a, in the transaction that records a, and render its
 * prompt into a->spec.prompt.  0, or -1 with *code and *cause (nothing claimed).
 */
int task_bind(struct agent *a, const char **code, char **cause);
/* a has ended: complete its task (done) or put it back / fail it (anything else). */
void task_settle(struct agent *a);
/* A previous daemon's agent row a (id) was interrupted: its task goes back, not counted. */
void task_recover(const char *id, json_t *row);

/* spawn-explain.c */
/* Add h to a's chain of transitions (the last EXPLAIN_CHAIN_MAX are kept). */
void explain_record(struct agent *a, const struct held_transition *h);
/* spawn-park.c */
/*
 * The run just judged (error) ended on a quota error: park it -- blocked "quota until HH:MM"
 * or "quota, retry in N s", a->backoff_ms until then, the profile parked too.  1 when
 * parked (the caller goes to backoff), 0 otherwise (and the no-time schedule starts over).
 */
int park_run(struct agent *a);
/* a is stopped while parked: error "stopped while parked (...)"; nothing when not parked. */
void park_stopped(struct agent *a);
/* The restart budget is spent: the error's reason becomes "gave up after N restarts: ...". */
void park_gave_up(struct agent *a);

/* spawn-recover.c */
void recover_agents(void);
void recover_confine_privates(void);

#endif
