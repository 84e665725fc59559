/*
 * glasspane.c -- the agent state machine, as a transition table.
 *
 * Every line, tick and exit becomes one machine input (enum gp_input).  Before
 * the table is consulted the event is "absorbed": counters, usage totals, the
 * current activity and two facts the table's actions need (is a run in
 * progress; did the last assistant message fail without a successful retry
 * since).  Then gp_table[state][input] names an action, s6-supervise style;
 * an empty cell means "stay".  Actions are tiny: they pick the next state and
 * write the reason, and gp_step() records the transition.
 *
 * The subtle parts come from pi's behaviour (DESIGN.md):
 *   - exit code 0 is not success: a final assistant stopReason error/aborted
 *     is an error even when pi exits 0;
 *   - agent_end is not the end of a run: pi writes auto_retry_start right
 *     after a retryable failure's agent_end, sleeps delayMs and starts a new
 *     agent_start ... agent_end; auto_retry_end {success} closes the series.
 *     So in JSON mode a failed run is judged at exit, and in RPC mode (where
 *     there is no exit between prompts) GLASSPANE_SETTLE_MS after agent_end.
 *
 * A `local` program may be any program.  In JSON mode it is supervised by its
 * process: the process start (IN_START) puts it in working, its exit judges
 * it, and its lines count only when they are pi events.  For the same reason
 * the stall clock starts at the first event: silence from a program that
 * speaks no events is not a stall.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "glasspane.h"
#include "harness-json.h"
#include "quota.h"

enum gp_input {
	IN_NONE = -1,
	IN_RUN_START,
	IN_PROGRESS,
	IN_RUN_END,
	IN_RETRY_START,
	IN_RETRY_OK,
	IN_RETRY_FAIL,
	IN_UI_WAIT,
	IN_RUN_FAILED,
	IN_STALL,
	IN_SETTLE,
	IN_EXIT_OK,
	IN_EXIT_FAIL,
	IN_SIGNAL,
	IN_FAULT,
	IN_START,
	IN_PARK,
	GP_NINPUTS
};

enum { BLOCK_NONE, BLOCK_STALL, BLOCK_RETRY, BLOCK_UI, BLOCK_PARK };

#define GP_KEEP (-1)

static void gp_printf(char *dst, size_t n, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* snprintf into dst[n], truncated on a UTF-8 boundary (through a larger scratch). */
static void
gp_printf(char *dst, size_t n, const char *fmt, ...)
{
	char tmp[GLASSPANE_REASON_MAX * 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	gp_copy(dst, n, tmp);
}

/* What an action may look at besides the glasspane itself. */
struct gp_ctx {
	const struct gp_event *ev; /* NULL for ticks and exits */
	int64_t now;
	int status;
	int signo;
	const char *why; /* a fault's reason */
};

struct gp_rule;
typedef int gp_action(struct glasspane *, const struct gp_ctx *, const struct gp_rule *);

struct gp_rule {
	gp_action *act;          /* NULL: no transition */
	enum glasspane_state to; /* the usual target */
	const char *why;         /* the usual reason */
};

/* Go to rule->to with rule->why. */
static int
act_go(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	gp_copy(gp->scratch, sizeof(gp->scratch), r->why);
	return (int)r->to;
}

static int
act_run_start(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	if (gp->state == GLASSPANE_BLOCKED && gp->block_kind == BLOCK_RETRY)
		gp_copy(gp->scratch, sizeof(gp->scratch), "retry started");
	else
		gp_copy(gp->scratch, sizeof(gp->scratch), "run started");
	return GLASSPANE_WORKING;
}

/* A sign of life ends a stall or a UI wait, not a retry delay (that ends with agent_start). */
static int
act_resume(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	if (gp->block_kind == BLOCK_RETRY)
		return GP_KEEP;
	gp_copy(gp->activity, sizeof(gp->activity), "running");
	return act_go(gp, cx, r);
}

static int
act_fail(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	gp_copy(gp->scratch, sizeof(gp->scratch),
	        gp->last_error[0] ? gp->last_error : "run failed");
	return GLASSPANE_ERROR;
}

static int
act_run_end(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	int resumed = gp->state == GLASSPANE_BLOCKED ? GLASSPANE_WORKING : GP_KEEP;

	if (gp->mode != GLASSPANE_MODE_RPC) {
		gp_copy(gp->scratch, sizeof(gp->scratch), "resumed");
		return resumed;
	}
	if (!gp->failed) {
		gp_copy(gp->scratch, sizeof(gp->scratch), "prompt finished");
		return GLASSPANE_IDLE;
	}
	if (gp->harness == GLASSPANE_HARNESS_ZOT)
		return act_fail(gp, cx, r);
	gp->settle_at = cx->now + GLASSPANE_SETTLE_MS;
	gp->settle_line = gp->lines;
	gp_copy(gp->scratch, sizeof(gp->scratch), "resumed");
	return resumed;
}

static int
act_retry_wait(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	const struct gp_event *ev = cx->ev;

	gp_printf(gp->scratch, sizeof(gp->scratch), "retry %d/%d in %lldms%s%s", ev->attempt,
	          ev->max_attempts, (long long)ev->delay_ms, ev->message[0] ? ": " : "",
	          ev->message);
	gp->block_kind = BLOCK_RETRY;
	return GLASSPANE_BLOCKED;
}

static int
act_retry_fail(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	gp_printf(gp->scratch, sizeof(gp->scratch), "%s (gave up after %d retries)",
	          gp->last_error[0] ? gp->last_error : "run failed", cx->ev->attempt);
	return GLASSPANE_ERROR;
}

static int
act_ui_wait(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	const struct gp_event *ev = cx->ev;

	gp_printf(gp->scratch, sizeof(gp->scratch), "waiting for extension UI: %s%s%s", ev->name,
	          ev->message[0] ? " " : "", ev->message);
	gp->block_kind = BLOCK_UI;
	return GLASSPANE_BLOCKED;
}

static int
act_stall(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	gp_printf(gp->scratch, sizeof(gp->scratch), "stalled %llds",
	          (long long)((cx->now - gp->last_event_ms) / 1000));
	gp_copy(gp->activity, sizeof(gp->activity), gp->scratch);
	gp->block_kind = BLOCK_STALL;
	return GLASSPANE_BLOCKED;
}

static int
act_exit_ok(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	if (gp->failed)
		return act_fail(gp, cx, r);
	if (gp->in_run) {
		gp_copy(gp->scratch, sizeof(gp->scratch),
		        "exited with status 0 before the run ended");
		return GLASSPANE_ERROR;
	}
	gp_copy(gp->scratch, sizeof(gp->scratch), "exited cleanly");
	return GLASSPANE_DONE;
}

static int
act_exit_fail(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	if (gp->failed && gp->last_error[0])
		gp_printf(gp->scratch, sizeof(gp->scratch), "%s (exited with status %d)",
		          gp->last_error, cx->status);
	else
		gp_printf(gp->scratch, sizeof(gp->scratch), "exited with status %d", cx->status);
	return GLASSPANE_ERROR;
}

static int
act_signal(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	const char *name = glasspane_signal_name(cx->signo);

	if (name != NULL)
		gp_printf(gp->scratch, sizeof(gp->scratch), "killed by signal %d (%s)", cx->signo,
		          name);
	else
		gp_printf(gp->scratch, sizeof(gp->scratch), "killed by signal %d", cx->signo);
	return GLASSPANE_ERROR;
}

/*
 * The process started.  A local program in JSON mode is supervised by its
 * process: working from now until its exit, whatever it prints.  pi and zot
 * wait for their run's first event, an RPC agent for a prompt.
 */
static int
act_process_start(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	if (gp->harness != GLASSPANE_HARNESS_LOCAL || gp->mode != GLASSPANE_MODE_JSON)
		return GP_KEEP;
	gp_copy(gp->activity, sizeof(gp->activity), "running");
	return act_go(gp, cx, r);
}

/* A fault the glasspane cannot see (the spawner's): error from any state with the fault's reason.
 */
static int
act_fault(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	gp_copy(gp->scratch, sizeof(gp->scratch), cx->why);
	gp_copy(gp->last_error, sizeof(gp->last_error), cx->why);
	return GLASSPANE_ERROR;
}

/* A failed run on a quota error waits for its reset (the spawner's word, cx->why). */
static int
act_park(struct glasspane *gp, const struct gp_ctx *cx, const struct gp_rule *r)
{
	gp_copy(gp->scratch, sizeof(gp->scratch), cx->why);
	gp->block_kind = BLOCK_PARK;
	return GLASSPANE_BLOCKED;
}

#define RUN_START  [IN_RUN_START] = {act_run_start, GLASSPANE_WORKING, NULL}
#define RETRY_WAIT [IN_RETRY_START] = {act_retry_wait, GLASSPANE_BLOCKED, NULL}
#define RETRY_FAIL [IN_RETRY_FAIL] = {act_retry_fail, GLASSPANE_ERROR, NULL}
#define UI_WAIT    [IN_UI_WAIT] = {act_ui_wait, GLASSPANE_BLOCKED, NULL}
#define RUN_FAILED [IN_RUN_FAILED] = {act_fail, GLASSPANE_ERROR, NULL}
#define RUN_END    [IN_RUN_END] = {act_run_end, GLASSPANE_WORKING, NULL}
#define SETTLE     [IN_SETTLE] = {act_fail, GLASSPANE_ERROR, NULL}
#define EXITS                                                                                      \
	[IN_EXIT_OK] = {act_exit_ok, GLASSPANE_DONE, NULL},                                        \
	[IN_EXIT_FAIL] = {act_exit_fail, GLASSPANE_ERROR, NULL},                                   \
	[IN_SIGNAL] = {act_signal, GLASSPANE_ERROR, NULL}
#define FAULT [IN_FAULT] = {act_fault, GLASSPANE_ERROR, NULL}

/* gp_table[state][input]; empty cells keep the state.  done is final but for a fault. */
static const struct gp_rule gp_table[GLASSPANE_NSTATES][GP_NINPUTS] = {
        [GLASSPANE_IDLE] =
                {RUN_START, RETRY_WAIT, RETRY_FAIL, UI_WAIT, RUN_FAILED, EXITS,
                 FAULT, [IN_START] = {act_process_start, GLASSPANE_WORKING, "process started"}},
        [GLASSPANE_WORKING] = {RUN_END, RETRY_WAIT, RETRY_FAIL, UI_WAIT, RUN_FAILED, SETTLE, EXITS,
                               FAULT, [IN_STALL] = {act_stall, GLASSPANE_BLOCKED, NULL}},
        [GLASSPANE_BLOCKED] = {RUN_START, RUN_END, RETRY_WAIT, RETRY_FAIL, UI_WAIT, RUN_FAILED,
                               SETTLE, EXITS,
                               FAULT, [IN_PROGRESS] = {act_resume, GLASSPANE_WORKING, "resumed"},
                               [IN_RETRY_OK] = {act_go, GLASSPANE_WORKING, "retry succeeded"}},
        [GLASSPANE_DONE] = {FAULT},
        [GLASSPANE_ERROR] = {RUN_START, RETRY_WAIT,
                             FAULT, [IN_PARK] = {act_park, GLASSPANE_BLOCKED, NULL}},
};

static int
gp_step(struct glasspane *gp, enum gp_input in, const char *cause, const struct gp_ctx *cx,
        struct glasspane_transition *out)
{
	const struct gp_rule *r = &gp_table[gp->state][in];
	enum glasspane_state from = gp->state;
	int to;

	if (r->act == NULL || (to = r->act(gp, cx, r)) == GP_KEEP)
		return 0;
	gp->state = (enum glasspane_state)to;
	if (gp->state != GLASSPANE_BLOCKED)
		gp->block_kind = BLOCK_NONE;
	gp_copy(gp->reason, sizeof(gp->reason), gp->scratch);
	gp_copy(gp->cause, sizeof(gp->cause), cause);
	gp->since_ms = cx->now;
	if (out != NULL) {
		out->from = from;
		out->to = gp->state;
		out->reason = gp->reason;
		out->cause = gp->cause;
		out->at_ms = cx->now;
	}
	return 1;
}

static enum gp_input
gp_input_of(const struct glasspane *gp, const struct gp_event *ev)
{
	switch (ev->kind) {
	case GP_EV_UNKNOWN:
	case GP_EV_SESSION:
	case GP_EV_QUEUE_UPDATE:
	case GP_EV_RESPONSE:
		return IN_NONE;
	case GP_EV_RUN_START:
		return IN_RUN_START;
	case GP_EV_TURN_START:
		return gp->harness == GLASSPANE_HARNESS_ZOT && !gp->in_run ? IN_RUN_START
		                                                           : IN_PROGRESS;
	case GP_EV_RUN_END:
		return IN_RUN_END;
	case GP_EV_RETRY_START:
		return IN_RETRY_START;
	case GP_EV_RETRY_END:
		return ev->success ? IN_RETRY_OK : IN_RETRY_FAIL;
	case GP_EV_UI_REQUEST:
		return ev->blocking ? IN_UI_WAIT : IN_NONE;
	case GP_EV_ERROR:
		return IN_RUN_FAILED;
	default:
		return IN_PROGRESS;
	}
}

static void
gp_add_usage(struct glasspane *gp, const struct gp_usage *u)
{
	gp->usage.input += u->input;
	gp->usage.output += u->output;
	gp->usage.cache_read += u->cache_read;
	gp->usage.cache_write += u->cache_write;
	gp->usage.total_tokens += u->total_tokens;
	gp->usage.cost += u->cost;
}

/* An assistant message with text: the run's last message, so far. */
static void
gp_absorb_text(struct glasspane *gp, const struct gp_event *ev)
{
	if (ev->role != GP_ROLE_ASSISTANT || ev->text_len == 0)
		return;
	memcpy(gp->last_message, ev->text, ev->text_len + 1);
	gp->last_message_seq++;
}

/* zot: text_delta streams an answer; assistant_message is the whole of it. */
static void
gp_absorb_zot_text(struct glasspane *gp, const struct gp_event *ev)
{
	if (ev->kind == GP_EV_TEXT)
		gp_copy(gp->activity, sizeof(gp->activity), "answering");
	else
		gp_absorb_text(gp, ev);
}

/*
 * A failure's text: is it a rate limit or quota, and when does it lift (the reset in the
 * caller's clock, which must be the wall clock for an absolute reset to mean anything)?
 */
static void
gp_absorb_quota(struct glasspane *gp, const char *text, int64_t now)
{
	struct gp_quota q;

	gp->quota = gp_quota_parse(text, now, &q);
	gp->quota_until_ms = gp->quota ? gp_quota_until(&q, now) : 0;
}

static void
gp_absorb_message_end(struct glasspane *gp, const struct gp_event *ev, int64_t now)
{
	if (ev->role != GP_ROLE_ASSISTANT)
		return;
	gp_absorb_text(gp, ev);
	if (ev->has_usage)
		gp_add_usage(gp, &ev->usage);
	if (ev->stop == GP_STOP_OK) {
		gp->failed = 0;
		gp_absorb_quota(gp, NULL, now);
		return;
	}
	if (ev->stop == GP_STOP_NONE)
		return;
	gp->failed = 1;
	gp_absorb_quota(gp, ev->stop == GP_STOP_ERROR ? ev->message : NULL, now);
	if (ev->message[0])
		gp_copy(gp->last_error, sizeof(gp->last_error), ev->message);
	else
		gp_copy(gp->last_error, sizeof(gp->last_error),
		        ev->stop == GP_STOP_ABORTED ? "run aborted" : "model error");
}

static void
gp_absorb_retry(struct glasspane *gp, const struct gp_event *ev, int64_t now)
{
	gp->settle_at = 0;
	if (ev->kind == GP_EV_RETRY_START) {
		gp_printf(gp->activity, sizeof(gp->activity), "retry %d/%d in %lldms", ev->attempt,
		          ev->max_attempts, (long long)ev->delay_ms);
		if (ev->message[0]) {
			gp_copy(gp->last_error, sizeof(gp->last_error), ev->message);
			gp_absorb_quota(gp, ev->message, now);
		}
		return;
	}
	gp->failed = !ev->success;
	if (ev->success)
		gp_absorb_quota(gp, NULL, now);
	else if (ev->message[0]) {
		gp_copy(gp->last_error, sizeof(gp->last_error), ev->message);
		gp_absorb_quota(gp, ev->message, now);
	}
}

static void
gp_absorb_update(struct glasspane *gp, const struct gp_event *ev)
{
	if (ev->delta == GP_DELTA_TEXT)
		gp_copy(gp->activity, sizeof(gp->activity), "answering");
	else if (ev->delta == GP_DELTA_THINKING)
		gp_copy(gp->activity, sizeof(gp->activity), "thinking");
	else if (ev->delta == GP_DELTA_TOOLCALL)
		gp_copy(gp->activity, sizeof(gp->activity), "writing a tool call");
}

static void
gp_absorb_run(struct glasspane *gp, const struct gp_event *ev)
{
	if (ev->kind == GP_EV_RUN_START) {
		gp->in_run = 1;
		gp->settle_at = 0;
		gp_copy(gp->activity, sizeof(gp->activity), "run started");
		return;
	}
	gp->in_run = 0;
	gp_copy(gp->activity, sizeof(gp->activity),
	        gp->mode == GLASSPANE_MODE_RPC ? "waiting for a prompt" : "run ended");
}

static void
gp_absorb_tool(struct glasspane *gp, const struct gp_event *ev)
{
	if (ev->kind == GP_EV_TOOL_END) {
		gp_copy(gp->activity, sizeof(gp->activity), "waiting for the model");
		return;
	}
	if (ev->kind == GP_EV_TOOL_START)
		gp->tool_calls++;
	gp_printf(gp->activity, sizeof(gp->activity), "tool %s", ev->name[0] ? ev->name : "?");
}

static void
gp_absorb_error(struct glasspane *gp, const struct gp_event *ev, int64_t now)
{
	gp->failed = 1;
	gp_absorb_quota(gp, ev->message, now);
	gp->in_run = 0;
	gp_copy(gp->last_error, sizeof(gp->last_error), ev->message);
	gp_copy(gp->activity, sizeof(gp->activity), "failed");
}

/* Counters, activity and the facts the actions read. */
static void
gp_absorb(struct glasspane *gp, const struct gp_event *ev, int64_t now)
{
	gp->events++;
	gp->last_event_ms = now;
	switch (ev->kind) {
	case GP_EV_RUN_START:
	case GP_EV_RUN_END:
		gp_absorb_run(gp, ev);
		break;
	case GP_EV_TURN_START:
		gp->turns++;
		gp->in_run = 1;
		gp_copy(gp->activity, sizeof(gp->activity), "waiting for the model");
		break;
	case GP_EV_MESSAGE_START:
		if (ev->role == GP_ROLE_ASSISTANT)
			gp_copy(gp->activity, sizeof(gp->activity), "waiting for the model");
		break;
	case GP_EV_MESSAGE_UPDATE:
		gp_absorb_update(gp, ev);
		break;
	case GP_EV_MESSAGE_END:
		gp_absorb_message_end(gp, ev, now);
		break;
	case GP_EV_TOOL_START:
	case GP_EV_TOOL_UPDATE:
	case GP_EV_TOOL_END:
		gp_absorb_tool(gp, ev);
		break;
	case GP_EV_RETRY_START:
	case GP_EV_RETRY_END:
		gp_absorb_retry(gp, ev, now);
		break;
	case GP_EV_COMPACTION:
		gp_copy(gp->activity, sizeof(gp->activity),
		        strcmp(ev->type, "compaction_start") == 0 ? "compacting" : "compacted");
		break;
	case GP_EV_UI_REQUEST:
		if (ev->blocking)
			gp_printf(gp->activity, sizeof(gp->activity), "waiting for UI: %s",
			          ev->name);
		break;
	case GP_EV_RESPONSE:
		if (!ev->success && ev->message[0])
			gp_copy(gp->last_error, sizeof(gp->last_error), ev->message);
		break;
	case GP_EV_TEXT:
	case GP_EV_ASSISTANT:
		gp_absorb_zot_text(gp, ev);
		break;
	case GP_EV_USAGE:
		gp_add_usage(gp, &ev->usage);
		break;
	case GP_EV_ERROR:
		gp_absorb_error(gp, ev, now);
		break;
	default:
		break;
	}
}

void
glasspane_init(struct glasspane *gp, enum glasspane_harness harness, enum glasspane_mode mode,
               int64_t stall_ms, int64_t now_ms)
{
	memset(gp, 0, sizeof(*gp));
	gp->harness = harness;
	gp->mode = mode;
	gp->stall_ms = stall_ms > 0 ? stall_ms : 0;
	gp->state = GLASSPANE_IDLE;
	gp_copy(gp->reason, sizeof(gp->reason), "spawned");
	gp_copy(gp->cause, sizeof(gp->cause), "spawn");
	gp_copy(gp->activity, sizeof(gp->activity), "starting");
	gp->since_ms = now_ms;
}

int
glasspane_feed_event(struct glasspane *gp, const struct gp_event *ev, int64_t now_ms,
                     struct glasspane_transition *out)
{
	struct gp_ctx cx = {ev, now_ms, 0, 0, NULL};
	enum gp_input in;

	if (ev->kind == GP_EV_UNKNOWN) {
		gp->ignored_lines++;
		return 0;
	}
	in = gp_input_of(gp, ev);
	if (ev->kind == GP_EV_SESSION && ev->name[0] != '\0')
		gp_copy(gp->session, sizeof(gp->session), ev->name);
	gp_absorb(gp, ev, now_ms);
	if (in == IN_NONE || gp->exited)
		return 0;
	return gp_step(gp, in, ev->type, &cx, out);
}

int
glasspane_feed(struct glasspane *gp, const char *line, size_t len, int64_t now_ms,
               struct glasspane_transition *out)
{
	struct gp_event ev;
	int rc;

	gp->lines++;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (gp->harness == GLASSPANE_HARNESS_ZOT)
		rc = harness_zot_decode(line, len, &ev);
	else
		rc = harness_pi_decode(line, len, &ev);
	if (rc < 0) {
		gp->ignored_lines++;
		return 0;
	}
	return glasspane_feed_event(gp, &ev, now_ms, out);
}

int
glasspane_start(struct glasspane *gp, int64_t now_ms, struct glasspane_transition *out)
{
	struct gp_ctx cx = {NULL, now_ms, 0, 0, NULL};

	if (gp->exited)
		return 0;
	return gp_step(gp, IN_START, "start", &cx, out);
}

int
glasspane_tick(struct glasspane *gp, int64_t now_ms, struct glasspane_transition *out)
{
	struct gp_ctx cx = {NULL, now_ms, 0, 0, NULL};

	if (gp->exited)
		return 0;
	if (gp->settle_at != 0 && now_ms >= gp->settle_at) {
		gp->settle_at = 0;
		if (gp->failed)
			return gp_step(gp, IN_SETTLE, "settle", &cx, out);
	}
	if (gp->state == GLASSPANE_BLOCKED && gp->block_kind == BLOCK_STALL) {
		gp_printf(gp->activity, sizeof(gp->activity), "stalled %llds",
		          (long long)((now_ms - gp->last_event_ms) / 1000));
		return 0;
	}
	/* A program that has spoken no event yet (a plain local one) is judged by its process. */
	if (gp->state == GLASSPANE_WORKING && gp->stall_ms > 0 && gp->last_event_ms != 0 &&
	    now_ms - gp->last_event_ms >= gp->stall_ms)
		return gp_step(gp, IN_STALL, "stall", &cx, out);
	return 0;
}

int
glasspane_exit(struct glasspane *gp, int status, int signo, int64_t now_ms,
               struct glasspane_transition *out)
{
	struct gp_ctx cx = {NULL, now_ms, status, signo, NULL};
	enum gp_input in = signo > 0 ? IN_SIGNAL : status != 0 ? IN_EXIT_FAIL : IN_EXIT_OK;

	if (gp->exited)
		return 0;
	gp->exited = 1;
	gp->settle_at = 0;
	if (signo > 0)
		gp_printf(gp->activity, sizeof(gp->activity), "killed by signal %d", signo);
	else
		gp_printf(gp->activity, sizeof(gp->activity), "exited %d", status);
	return gp_step(gp, in, signo > 0 ? "signal" : "exit", &cx, out);
}

int
glasspane_fault(struct glasspane *gp, const char *reason, const char *cause, int64_t now_ms,
                struct glasspane_transition *out)
{
	struct gp_ctx cx = {NULL, now_ms, 0, 0, reason};

	/* The exit that follows must not overwrite the fault. */
	gp->exited = 1;
	return gp_step(gp, IN_FAULT, cause, &cx, out);
}

int
glasspane_park(struct glasspane *gp, const char *reason, int64_t now_ms,
               struct glasspane_transition *out)
{
	struct gp_ctx cx = {NULL, now_ms, 0, 0, reason};

	return gp_step(gp, IN_PARK, "quota", &cx, out);
}

int
glasspane_gave_up(struct glasspane *gp, int restarts)
{
	if (gp->state != GLASSPANE_ERROR)
		return 0;
	gp_printf(gp->scratch, sizeof(gp->scratch), "gave up after %d restart%s: %s", restarts,
	          restarts == 1 ? "" : "s", gp->reason);
	gp_copy(gp->reason, sizeof(gp->reason), gp->scratch);
	return 1;
}

int
glasspane_restart(struct glasspane *gp, int64_t now_ms, struct glasspane_transition *out)
{
	struct glasspane prev = *gp;

	glasspane_init(gp, prev.harness, prev.mode, prev.stall_ms, now_ms);
	/* Totals are over the agent's life, not one run. */
	gp->usage = prev.usage;
	gp->turns = prev.turns;
	gp->tool_calls = prev.tool_calls;
	gp->ignored_lines = prev.ignored_lines;
	gp->lines = prev.lines;
	gp->last_message_seq = prev.last_message_seq + 1; /* the text was this run's: forgotten */
	memcpy(gp->session, prev.session, sizeof gp->session);
	gp_copy(gp->reason, sizeof(gp->reason), "restarted");
	gp_copy(gp->cause, sizeof(gp->cause), "restart");
	if (out != NULL) {
		out->from = prev.state;
		out->to = gp->state;
		out->reason = gp->reason;
		out->cause = gp->cause;
		out->at_ms = now_ms;
	}
	return 1;
}

static json_t *
gp_usage_json(const struct gp_usage *u)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "input", (json_int_t)u->input, "output",
	                 (json_int_t)u->output, "cache_read", (json_int_t)u->cache_read,
	                 "cache_write", (json_int_t)u->cache_write, "total_tokens",
	                 (json_int_t)u->total_tokens, "cost", u->cost);
}

json_t *
glasspane_to_json(const struct glasspane *gp)
{
	json_t *o = json_object();

	json_object_set_new(o, "state", json_string(glasspane_state_name(gp->state)));
	json_object_set_new(o, "reason", json_string(gp->reason));
	json_object_set_new(o, "cause", json_string(gp->cause));
	json_object_set_new(o, "since", json_integer((json_int_t)gp->since_ms));
	json_object_set_new(o, "activity", json_string(gp->activity));
	json_object_set_new(o, "turns", json_integer((json_int_t)gp->turns));
	json_object_set_new(o, "tool_calls", json_integer((json_int_t)gp->tool_calls));
	json_object_set_new(o, "last_event_ms", json_integer((json_int_t)gp->last_event_ms));
	json_object_set_new(o, "last_error",
	                    gp->last_error[0] ? json_string(gp->last_error) : json_null());
	json_object_set_new(o, "usage", gp_usage_json(&gp->usage));
	return o;
}

const char *
glasspane_state_name(enum glasspane_state st)
{
	static const char *const names[GLASSPANE_NSTATES] = {"idle", "working", "blocked", "done",
	                                                     "error"};

	return (unsigned)st < GLASSPANE_NSTATES ? names[st] : "unknown";
}

int
glasspane_harness_parse(const char *s, enum glasspane_harness *out)
{
	if (strcmp(s, "pi") == 0)
		*out = GLASSPANE_HARNESS_PI;
	else if (strcmp(s, "zot") == 0)
		*out = GLASSPANE_HARNESS_ZOT;
	else if (strcmp(s, "local") == 0)
		*out = GLASSPANE_HARNESS_LOCAL;
	else
		return -1;
	return 0;
}

int
glasspane_mode_parse(const char *s, enum glasspane_mode *out)
{
	if (strcmp(s, "json") == 0)
		*out = GLASSPANE_MODE_JSON;
	else if (strcmp(s, "rpc") == 0)
		*out = GLASSPANE_MODE_RPC;
	else
		return -1;
	return 0;
}

const char *
glasspane_signal_name(int signo)
{
	static const struct {
		int no;
		const char *name;
	} sigs[] = {
	        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
	        {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
	        {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
	        {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
	        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
	        {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"},
	};
	size_t i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigs[i].no == signo)
			return sigs[i].name;
	return NULL;
}
