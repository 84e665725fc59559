/*
 * spawn-explain.c -- why an agent is in its state: the chain of its
 * transitions, each with the event that caused it.
 *
 * Every glasspane transition of a spawned agent passes agent_transition_line
 * (spawner.c), which knows its cause: the event type of the stdout line that
 * caused it, and that line's number in the session log (1-based, as
 * session-read counts: line N is the one `session-read --since N-1` returns
 * first; a settle, an RPC run's failure judged a moment after its agent_end,
 * names that agent_end's line), or no line for a cause that is not one (the process start or exit,
 * a signal, a stall, a restart, a fault of the spawner's).  explain_record
 * keeps the last EXPLAIN_CHAIN_MAX of them with the agent, oldest first, as
 * the JSON array the row stores: the row's detail carries it ("transitions"),
 * so the chain outlives the agent's process and the daemon.  One entry is a
 * small object with its reason cut to EXPLAIN_REASON_MAX bytes, so the row
 * write it rides on stays small; the array is shared (not copied) by every
 * write.  Replies that show agents (agent-status, list-agents) leave it out
 * (spawner_detail); agent-explain (spawner_explain) is its one reader.
 */
#include <string.h>

#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/spawner-agent.h"
#include "store/store.h"

#define EXPLAIN_CHAIN_MAX  64
#define EXPLAIN_REASON_MAX 160

void
explain_record(struct agent *a, const struct held_transition *h)
{
	size_t n = utf8_cut_len(h->reason, strlen(h->reason), EXPLAIN_REASON_MAX);
	json_t *t;

	if (a->chain == NULL)
		a->chain = json_array();
	while (json_array_size(a->chain) >= EXPLAIN_CHAIN_MAX)
		json_array_remove(a->chain, 0);
	t = json_pack("{s:s, s:s, s:s%, s:s, s:o, s:I}", "from", glasspane_state_name(h->from),
	              "to", glasspane_state_name(h->to), "reason", h->reason, n, "cause", h->cause,
	              "line", h->line > 0 ? json_integer(h->line) : json_null(), "at_ms",
	              (json_int_t)h->at_ms);
	/* The process's end names how it ended: the run has been reaped by then. */
	if (a->reaped && strcmp(h->cause, "exit") == 0)
		json_object_set_new(t, "status", json_integer(a->exit_code));
	else if (a->reaped && strcmp(h->cause, "signal") == 0)
		json_object_set_new(t, "signal", json_integer(a->term_signal));
	json_array_append_new(a->chain, t);
}

static struct agent *
explain_find(const char *id)
{
	struct agent *a;

	for (a = spawner_agents; a != NULL; a = a->next)
		if (!agent_gone(a) && strcmp(a->id, id) == 0)
			return a;
	return NULL;
}

/* The answer for a running agent: its chain and counts in memory. */
static json_t *
explain_live(struct agent *a)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:o}", "id", a->id, "session_id",
	                 a->session_id, "state", glasspane_state_name(a->gp.state), "reason",
	                 a->gp.reason, "live", 1, "unrecognized_lines",
	                 (json_int_t)a->gp.ignored_lines, "transitions",
	                 a->chain != NULL ? json_incref(a->chain) : json_array());
}

/* The answer for an agent of the store only (ended, or a previous daemon's): its row's. */
static json_t *
explain_row(json_t *row)
{
	json_t *chain = json_object_get(row, "transitions");
	json_t *unrec = json_object_get(row, "unrecognized_lines");
	json_t *res;

	res = json_pack("{s:O, s:O?, s:O?, s:O?, s:b}", "id", json_object_get(row, "id"),
	                "session_id", json_object_get(row, "session_id"), "state",
	                json_object_get(row, "state"), "reason", json_object_get(row, "reason"),
	                "live", 0);
	json_object_set_new(res, "unrecognized_lines",
	                    json_is_integer(unrec) ? json_incref(unrec) : json_integer(0));
	json_object_set_new(res, "transitions",
	                    json_is_array(chain) ? json_incref(chain) : json_array());
	return res;
}

json_t *
spawner_explain(const char *id, const char **code, char **cause)
{
	struct store_err e;
	struct agent *a = explain_find(id);
	json_t *row, *res;
	const char *kind;

	if (a != NULL)
		return explain_live(a);
	if ((row = store_agent_get(D.store, id, &e)) == NULL) {
		*code = e.code;
		*cause = xstrdup(e.msg);
		return NULL;
	}
	kind = json_string_value(json_object_get(row, "kind"));
	if (kind == NULL || strcmp(kind, "spawned") != 0) {
		*code = ERR_INVALID_ARGUMENT;
		xasprintf(cause,
		          "%s is a registered agent: only a spawned agent's states are recorded",
		          id);
		json_decref(row);
		return NULL;
	}
	res = explain_row(row);
	json_decref(row);
	return res;
}
