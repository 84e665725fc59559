/*
 * spawn-task.c -- task-bound runs: the board in an agent's hands.
 *
 * spawn-agent {task: ID | "next"} binds a run to a task.  task_bind claims
 * the task for the new agent in the transaction that records the agent (the
 * spawn's own savepoint: a spawn that cannot start leaves the task as it
 * was), keeps the claim's epoch on the agent (its row's task and epoch),
 * and renders the prompt from the task (task-prompt.h).  The claim carries
 * no lease: it cannot go stale, because it ends with the run -- in the
 * transaction that records the run's end (exit, kill, fault), or at the
 * next start after a daemon was killed (task_recover) -- never when a
 * timer runs out.  (Registered agents, which the daemon does not watch,
 * keep leases.)
 *
 * When the run ends, task_settle writes the outcome in the transaction of
 * the agent's final row:
 *   done               the task is completed with the result
 *                      {text, usage, exit_code, agent, epoch};
 *   error, kill, fault the task goes back to the ready queue with attempts
 *                      counted and the reason kept, or is failed once
 *                      attempts reach the task's max_attempts;
 *   daemon shutdown    the claim is released, nothing counted (the run was
 *                      not the task's fault).
 * Every write carries the claim's epoch, so a task the agent completed
 * itself through its channel (the same epoch: one completion), released,
 * or that was claimed again since (a newer epoch) is left alone.  A daemon
 * killed meanwhile commits neither the agent's final row nor the task's
 * outcome; the next daemon finds the agent's row still live, marks it
 * interrupted, and task_recover puts the task back in the queue without
 * counting the attempt.  So a task is completed once or back in the queue,
 * never lost, never held twice, and no claim outlives its run.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/spawner-agent.h"
#include "daemon/task-prompt.h"
#include "daemon/txn.h"
#include "store/store.h"

/* The longest prompt one argument (or environment value) can carry on Linux (MAX_ARG_STRLEN). */
#define TASK_PROMPT_MAX (128 * 1024 - 1)

int
task_bind(struct agent *a, const char **code, char **cause)
{
	struct store_err e;
	json_t *t;
	char *prompt;
	long long id = a->spec.task == SPAWN_TASK_NEXT ? 0 : a->spec.task;

	t = store_task_claim(D.store, a->id, id, 0 /* no lease */, a->spec.max_attempts, now_ms(),
	                     &e);
	if (t == NULL) {
		*code = e.code;
		xasprintf(cause, "%s", e.msg);
		return -1;
	}
	prompt = task_prompt_render(a->spec.prompt_template, t);
	if (prompt == NULL || strlen(prompt) > TASK_PROMPT_MAX) {
		*code = ERR_INVALID_ARGUMENT;
		if (prompt == NULL)
			xasprintf(cause,
			          "task %lld's text holds a NUL byte: no prompt can carry it",
			          (long long)json_integer_value(json_object_get(t, "id")));
		else
			xasprintf(cause,
			          "task %lld's prompt is %zu bytes; at most %d fit in an argument",
			          (long long)json_integer_value(json_object_get(t, "id")),
			          strlen(prompt), TASK_PROMPT_MAX);
		free(prompt);
		json_decref(t);
		return -1;
	}
	free(a->spec.prompt);
	a->spec.prompt = prompt;
	a->task = json_integer_value(json_object_get(t, "id"));
	a->epoch = json_integer_value(json_object_get(t, "epoch"));
	log_info("agent %s: bound to task %lld (epoch %lld)", a->id, a->task, a->epoch);
	events_emit(EV_TASK_CLAIMED, t);
	return 0;
}

/* The outcome of a failed run: back in the queue, or failed; its event. */
static void
task_run_failed(long long task, const char *agent, long long epoch, const char *reason)
{
	struct store_err e;
	json_t *t;
	const char *st;

	t = store_task_run_failed(D.store, task, agent, epoch, reason, now_ms(), &e);
	if (t == NULL) {
		log_info("agent %s: task %lld left as it is (%s)", agent, task, e.msg);
		return;
	}
	st = json_string_value(json_object_get(t, "status"));
	log_info("agent %s: task %lld %s after a failed run (%s)", agent, task,
	         st != NULL && strcmp(st, "failed") == 0 ? "failed" : "back in the queue", reason);
	events_emit(EV_TASK_FAILED, t); /* open again or failed: the status says which */
}

/* The result a done run leaves on its task. */
static json_t *
task_result(struct agent *a)
{
	json_t *snap = glasspane_to_json(&a->gp), *res;

	res = json_pack("{s:s?, s:O, s:o, s:s, s:I}", "text",
	                a->gp.last_message[0] != '\0' ? a->gp.last_message : NULL, "usage",
	                json_object_get(snap, "usage"), "exit_code",
	                a->reaped && a->term_signal == 0 ? json_integer(a->exit_code) : json_null(),
	                "agent", a->id, "epoch", (json_int_t)a->epoch);
	json_decref(snap);
	return res;
}

void
task_settle(struct agent *a)
{
	struct store_err e;
	json_t *t, *res;
	int repeated = 0;

	if (a->task == 0 || a->settled || !a->row_written)
		return;
	a->settled = 1;
	if (txn_write(&e) == -1) {
		log_warnx("agent %s: task %lld not settled: %s", a->id, a->task, e.msg);
		return;
	}
	if (a->gp.state == GLASSPANE_DONE) {
		res = task_result(a);
		t = store_task_complete(D.store, a->task, a->id, a->epoch, res, now_ms(), &repeated,
		                        &e);
		json_decref(res);
		if (t == NULL)
			log_info("agent %s: task %lld left as it is (%s)", a->id, a->task, e.msg);
		else if (!repeated)
			events_emit(EV_TASK_COMPLETED, t);
		else
			json_decref(t);
		return;
	}
	if (D.shutting_down && !a->faulted) {
		/* Not the task's fault: back in the queue, nothing counted. */
		if ((t = store_task_release(D.store, a->task, a->id, a->epoch, now_ms(), &e)) !=
		    NULL)
			events_emit(EV_TASK_RELEASED, t);
		return;
	}
	task_run_failed(a->task, a->id, a->epoch, a->gp.reason);
}

void
task_recover(const char *id, json_t *row)
{
	json_t *task = json_object_get(row, "task"), *epoch = json_object_get(row, "epoch");
	struct store_err e;
	json_t *t;

	if (!json_is_integer(task) || !json_is_integer(epoch) || txn_write(&e) == -1)
		return;
	/* Interrupted, not failed: back in the queue, the attempt not counted. */
	t = store_task_release(D.store, json_integer_value(task), id, json_integer_value(epoch),
	                       now_ms(), &e);
	if (t == NULL) {
		log_info("agent %s: task %lld left as it is (%s)", id,
		         (long long)json_integer_value(task), e.msg);
		return;
	}
	log_info("agent %s: task %lld back in the queue (the daemon restarted)", id,
	         (long long)json_integer_value(task));
	events_emit(EV_TASK_RELEASED, t);
}
