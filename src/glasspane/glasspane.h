/*
 * glasspane.h -- one agent's live state, computed from its JSONL stream.
 *
 * The spawner owns one struct glasspane per agent process and drives it:
 *
 *   glasspane_init()  when the process is spawned (state idle);
 *   glasspane_start() once the process runs (a local program goes working);
 *   glasspane_feed()  for every complete stdout line (without the newline);
 *   glasspane_tick()  from a timer, about once a second, to notice stalls;
 *   glasspane_exit()  once, after the process was reaped AND its stdout
 *                     drained to EOF (so no line is judged after the exit).
 *
 * Each of the last three returns 1 and fills *out when the state changed
 * (or a blocked agent got a new reason), 0 otherwise; the caller stores and
 * publishes the transition (agent.state event).  out->reason points into the
 * struct glasspane and stays valid until the next call on it; out->cause is
 * the stream's event type ("agent_end", "auto_retry_start", ...) or one of
 * "start", "exit", "signal", "stall", "settle".
 *
 * States (DESIGN.md "Glasspane"):
 *   idle     spawned, no run yet; or an RPC agent between prompts
 *   working  inside a run; a local program in JSON mode from its start to its
 *            exit (its lines that are pi events are decoded, anything else
 *            is only counted in ignored_lines)
 *   blocked  waiting: an auto-retry delay, an extension UI dialog, or no event
 *            for stall_ms while working (the next event returns it to working);
 *            or parked by the spawner on a quota error until its reset
 *            (glasspane_park, quota.h);
 *            the stall clock starts at the first event, so a plain program
 *            that speaks no events never stalls
 *   done     the run ended without error and the process exited with 0
 *   error    final stopReason error/aborted without a successful retry (the
 *            errorMessage is the reason, even though pi exits 0), a non-zero
 *            exit ("exited with status N"), or a death by signal ("killed by
 *            signal 15 (SIGTERM)").  The first cause is kept: a later exit
 *            does not overwrite it.  In RPC mode a new prompt leaves error.
 *
 * The module is pure: no I/O, no clock (the caller passes now_ms, any
 * monotonic or wall clock as long as it is the same for every call), no heap.
 * A struct glasspane needs no destructor.
 */
#ifndef COLIBRI_GLASSPANE_H
#define COLIBRI_GLASSPANE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "glasspane/harness.h"

enum glasspane_state {
	GLASSPANE_IDLE,
	GLASSPANE_WORKING,
	GLASSPANE_BLOCKED,
	GLASSPANE_DONE,
	GLASSPANE_ERROR,
};
#define GLASSPANE_NSTATES 5

enum glasspane_harness {
	GLASSPANE_HARNESS_PI,
	GLASSPANE_HARNESS_ZOT,
	GLASSPANE_HARNESS_LOCAL, /* any local program: pi's dialect when it speaks one, else plain
	                          */
};

enum glasspane_mode {
	GLASSPANE_MODE_JSON, /* one run, then the process exits */
	GLASSPANE_MODE_RPC,  /* prompts on stdin; idle between them */
};

/* Default stall time when the caller has no configuration. */
#define GLASSPANE_STALL_DEFAULT_MS 30000
/*
 * RPC only: a failed run's agent_end is judged this long after it, unless an
 * auto_retry_* line came first (pi writes that right after agent_end).
 */
#define GLASSPANE_SETTLE_MS 250

#define GLASSPANE_REASON_MAX   GP_MESSAGE_MAX
#define GLASSPANE_ACTIVITY_MAX 96

struct glasspane_transition {
	enum glasspane_state from;
	enum glasspane_state to;
	const char *reason; /* into the struct glasspane; valid until the next call */
	const char *cause;  /* event type or "exit", "signal", "stall", "settle" */
	int64_t at_ms;
};

/* Read the public fields freely; change them only through the functions below. */
struct glasspane {
	enum glasspane_harness harness;
	enum glasspane_mode mode;
	int64_t stall_ms; /* 0 disables stall detection */

	enum glasspane_state state;
	char reason[GLASSPANE_REASON_MAX];
	char cause[GP_TYPE_MAX];
	int64_t since_ms; /* time of the last transition (init time at first) */

	uint64_t turns;
	uint64_t tool_calls;
	uint64_t events;        /* decoded lines, known types only */
	uint64_t ignored_lines; /* garbage, truncated lines and unknown types (every run) */
	uint64_t lines;         /* lines fed by glasspane_feed (every run) */
	uint64_t settle_line;   /* RPC: `lines` at the failed agent_end a settle judges */
	char activity[GLASSPANE_ACTIVITY_MAX];
	int64_t last_event_ms; /* 0 until the first event */
	struct gp_usage usage; /* totals over the agent's life */
	char last_error[GLASSPANE_REASON_MAX];
	/*
	 * The text of the last assistant message that had any, in this run (up to GP_TEXT_MAX
	 * bytes), and a count of its changes (a writer compares it to skip unchanged text).
	 */
	char last_message[GP_TEXT_MAX];
	uint64_t last_message_seq;
	/* The agent's own session id (pi's session header), kept across restarts; "" if none. */
	char session[GP_NAME_MAX];
	/*
	 * The run's failure so far is a provider's rate limit or quota (glasspane/quota.h): pi's
	 * errorMessage or auto_retry_* text, zot's error.  quota_until_ms is the reset the text
	 * gave, in the caller's clock (a wall clock: an absolute reset is read as one); 0 when it
	 * gave none.  Cleared by a success and by a failure of another kind.
	 */
	int quota;
	int64_t quota_until_ms;

	/* private bookkeeping */
	int in_run;        /* a run started and has not ended */
	int failed;        /* the last assistant message failed and no retry succeeded since */
	int block_kind;    /* why blocked: stall, retry or UI */
	int exited;        /* glasspane_exit was called */
	int64_t settle_at; /* RPC: judge a failed agent_end at this time; 0 = none */
	char scratch[GLASSPANE_REASON_MAX];
};

/* Start an agent's glasspane in state idle.  stall_ms <= 0 disables stalls. */
void glasspane_init(struct glasspane *gp, enum glasspane_harness harness, enum glasspane_mode mode,
                    int64_t stall_ms, int64_t now_ms);

/*
 * Feed one stdout line (no newline needed; a trailing '\n' or "\r\n" is
 * tolerated).  Garbage, truncated lines and unknown event types change
 * nothing but ignored_lines.  Returns 1 with *out filled on a transition.
 */
int glasspane_feed(struct glasspane *gp, const char *line, size_t len, int64_t now_ms,
                   struct glasspane_transition *out);

/* Feed an already decoded event (the same contract as glasspane_feed). */
int glasspane_feed_event(struct glasspane *gp, const struct gp_event *ev, int64_t now_ms,
                         struct glasspane_transition *out);

/*
 * The process runs (after init or restart).  A local program in JSON mode
 * goes idle -> working, reason "process started", cause "start"; pi, zot and
 * RPC agents stay idle until their first run event.  Returns 1 with *out
 * filled on a transition.
 */
int glasspane_start(struct glasspane *gp, int64_t now_ms, struct glasspane_transition *out);

/* Let time pass: stall detection, RPC settle, and the "stalled Ns" activity. */
int glasspane_tick(struct glasspane *gp, int64_t now_ms, struct glasspane_transition *out);

/*
 * The process ended: signo > 0 means killed by that signal (status ignored),
 * else status is the exit code.  Only the first call counts.
 */
int glasspane_exit(struct glasspane *gp, int status, int signo, int64_t now_ms,
                   struct glasspane_transition *out);

/*
 * A fault the glasspane cannot see (an output flood, a confinement that
 * failed, a run that could not start): error with reason (also the
 * last_error) and cause, from any state, always a transition (1, *out
 * filled).  Later exits, lines and ticks change no state.
 */
int glasspane_fault(struct glasspane *gp, const char *reason, const char *cause, int64_t now_ms,
                    struct glasspane_transition *out);

/*
 * Park a failed run (state error) on a quota error: blocked with reason (the
 * spawner's "quota until 15:04"), cause "quota".  Returns 1 with *out filled,
 * 0 from any other state.
 */
int glasspane_park(struct glasspane *gp, const char *reason, int64_t now_ms,
                   struct glasspane_transition *out);

/*
 * The restart policy gave up on an error: its reason becomes "gave up after N
 * restarts: <reason>" (no transition: the state stays error).  Returns 1, or
 * 0 (nothing changed) when the state is not error.
 */
int glasspane_gave_up(struct glasspane *gp, int restarts);

/*
 * A new run of the same agent: idle, reason "restarted", cause "restart",
 * the per-run facts forgotten and the totals (usage, turns, tool calls,
 * ignored_lines, lines) kept.  Always a transition (1, *out filled).
 */
int glasspane_restart(struct glasspane *gp, int64_t now_ms, struct glasspane_transition *out);

/*
 * The snapshot as a new JSON object (caller json_decref()s):
 * {"state", "reason", "cause", "since", "activity", "turns", "tool_calls",
 *  "last_event_ms", "last_error" (string or null),
 *  "usage": {"input", "output", "cache_read", "cache_write", "total_tokens", "cost"}}
 */
json_t *glasspane_to_json(const struct glasspane *gp);

/* "idle", "working", "blocked", "done", "error". */
const char *glasspane_state_name(enum glasspane_state st);
/* Parse "pi", "zot", "local" / "json", "rpc"; return -1 on anything else. */
int glasspane_harness_parse(const char *s, enum glasspane_harness *out);
int glasspane_mode_parse(const char *s, enum glasspane_mode *out);
/* "SIGTERM" for 15 and the other common signals, NULL when unknown. */
const char *glasspane_signal_name(int signo);

#endif
