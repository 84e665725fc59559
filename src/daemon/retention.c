/*
 * retention.c -- lifecycle and retention (retention.h): agent-forget's
 * work, CONFIG_DIR/retention.json, and the runs that forget old agents and
 * compact the events log.
 *
 * Ended means the agent's life is over: a spawned agent this daemon does
 * not run (not starting, running, draining, in backoff or parked:
 * spawner_agent_live) -- on a shared store, another host's agent only once
 * its row says done, error, interrupted or lost -- and a registered agent
 * whatever its state (a registered agent's life is its own; forgetting
 * one only drops the row, and retention forgets one only once it has
 * neither changed nor sent a heartbeat for agents_days).  Forgetting takes
 * the row and, when no other row names the same session, the session's
 * logs (.jsonl, .stderr, .stderr.1), and nothing else: tasks keep their
 * history.  The files go when the row does, before the commit: a commit
 * that fails then leaves a row whose logs are gone, never logs without a
 * row.
 *
 * A run is a small machine driven by an idle handle, one batch per loop
 * iteration: agents (AGENT_BATCH a turn), events (store_event_compact,
 * EVENT_BATCH a turn), reclaim (store_reclaim, RECLAIM_PAGES a turn), each
 * batch under a savepoint in that iteration's group commit (txn.c), so a
 * failing batch takes back only itself and a week of backlog costs many
 * short transactions instead of one long one.  The cut-offs are fixed when
 * the run starts, from now_ms() (which the test clock moves).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/config-file.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/retention.h"
#include "daemon/session.h"
#include "daemon/spawner.h"
#include "daemon/txn.h"
#include "store/store.h"

#define RETENTION_FILE "retention.json"
#define DAY_MS         (24LL * 3600 * 1000)
#define AGENT_BATCH    100
#define EVENT_BATCH    1000
#define RECLAIM_PAGES  1024

struct policy {
	long long agents_days, events_days, events_rows, interval_ms;
};

/* The keys of retention.json, their bounds and where they go. */
static const struct policy_key {
	const char *name;
	size_t off;
	long long min, max;
} policy_keys[] = {
        {"agents_days", offsetof(struct policy, agents_days), 0, 36500},
        {"events_days", offsetof(struct policy, events_days), 0, 36500},
        {"events_rows", offsetof(struct policy, events_rows), 0, 1000000000000LL},
        {"interval_ms", offsetof(struct policy, interval_ms), 0, 7 * DAY_MS},
        {NULL, 0, 0, 0},
};

static const struct policy policy_default = {14, 30, 0, 3600 * 1000};

enum run_phase { GC_IDLE, GC_AGENTS, GC_EVENTS, GC_RECLAIM };

struct gc_waiter {
	retention_done_fn *done;
	void *arg;
};

static struct {
	char *path;
	struct policy pol;
	uv_timer_t timer;
	uv_idle_t idle;
	int started;
	/* the run in progress */
	enum run_phase phase;
	int64_t agents_before, events_before;
	json_t *agents; /* every agent row at the start (session sharing) */
	json_t *todo;   /* the ids to forget */
	size_t next;
	long long forgotten, sessions, deleted, bytes_before;
	struct gc_waiter *waiters;
	size_t nwaiters;
} R;

static int
policy_parse(const json_t *o, struct policy *p, char **cause)
{
	static const char *const keys[] = {"agents_days", "events_days", "events_rows",
	                                   "interval_ms", NULL};
	const struct policy_key *k;
	json_t *v;

	*p = policy_default;
	if (o == NULL)
		return 0;
	if (config_keys_check(o, keys, R.path, cause) == -1)
		return -1;
	for (k = policy_keys; k->name != NULL; k++) {
		if ((v = json_object_get(o, k->name)) == NULL)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < k->min ||
		    json_integer_value(v) > k->max) {
			xasprintf(cause, "%s: %s must be an integer from %lld to %lld", R.path,
			          k->name, k->min, k->max);
			return -1;
		}
		*(long long *)((char *)p + k->off) = json_integer_value(v);
	}
	if (p->interval_ms > 0 && p->interval_ms < 1000) {
		xasprintf(cause, "%s: interval_ms must be 0 (no periodic run) or at least 1000",
		          R.path);
		return -1;
	}
	return 0;
}

static int
policy_load(struct policy *p, char **cause)
{
	json_t *o;
	int rc;

	if (config_load_json(R.path, &o, cause) == -1)
		return -1;
	rc = policy_parse(o, p, cause);
	json_decref(o);
	return rc;
}

static void run_start(void);
static void idle_cb(uv_idle_t *);

static void
timer_cb(uv_timer_t *t)
{
	(void)t;
	if (R.phase == GC_IDLE)
		run_start();
}

static void
timer_arm(void)
{
	uv_timer_stop(&R.timer);
	if (R.pol.interval_ms > 0)
		uv_timer_start(&R.timer, timer_cb, (uint64_t)R.pol.interval_ms,
		               (uint64_t)R.pol.interval_ms);
}

static void
policy_log(const char *what)
{
	/* (0 days: kept for ever; row cap 0: none; every 0 ms: only on gc) */
	log_info(
	        "retention %s: agents %lld day(s), events %lld day(s), row cap %lld, every %lld ms "
	        "(%s)",
	        what, R.pol.agents_days, R.pol.events_days, R.pol.events_rows, R.pol.interval_ms,
	        R.path);
}

int
retention_init(char **cause)
{
	R.path = config_path(RETENTION_FILE);
	if (policy_load(&R.pol, cause) == -1)
		return -1;
	uv_timer_init(D.loop, &R.timer);
	uv_unref((uv_handle_t *)&R.timer);
	uv_idle_init(D.loop, &R.idle);
	R.started = 1;
	timer_arm();
	policy_log("policy");
	return 0;
}

void
retention_reload(void)
{
	struct policy p;
	char *cause = NULL;

	if (!R.started)
		return;
	if (policy_load(&p, &cause) == -1) {
		log_warnx("retention not reloaded, the old policy stays: %s", cause);
		free(cause);
		return;
	}
	R.pol = p;
	timer_arm();
	policy_log("reloaded");
}

/* ---- forgetting one agent ---- */

/* Does a row other than id's (in list: {"items": [...]}) name session sid? */
static int
session_shared(json_t *list, const char *sid, const char *id)
{
	json_t *a;
	size_t i;

	json_array_foreach(json_object_get(list, "items"), i, a)
	{
		const char *s = json_string_value(json_object_get(a, "session_id"));
		const char *aid = json_string_value(json_object_get(a, "id"));
		if (s != NULL && strcmp(s, sid) == 0 && (aid == NULL || strcmp(aid, id) != 0))
			return 1;
	}
	return 0;
}

/* Remove session sid's logs; 1 when any file went. */
static int
session_remove(const char *sid)
{
	static const char *const suffixes[] = {".jsonl", ".stderr", ".stderr.1", NULL};
	char name[SESSION_ID_MAX + 16], *path;
	int i, gone = 0;

	if (!session_id_valid(sid))
		return 0;
	for (i = 0; suffixes[i] != NULL; i++) {
		snprintf(name, sizeof name, "%s%s", sid, suffixes[i]);
		path = path_join(D.cfg.sessions_dir, name);
		if (unlink(path) == 0)
			gone = 1;
		else if (errno != ENOENT)
			log_warn("forget: %s", path);
		free(path);
	}
	return gone;
}

/* Has row's life ended (see the top)?  0 with *why when not. */
static int
agent_ended(json_t *row, const char **why)
{
	static const char *const over[] = {"done", "error", "interrupted", "lost", NULL};
	const char *id = json_string_value(json_object_get(row, "id"));
	const char *kind = json_string_value(json_object_get(row, "kind"));
	const char *host = json_string_value(json_object_get(row, "host"));
	const char *state = json_string_value(json_object_get(row, "state"));
	int i;

	*why = state != NULL ? state : "live";
	if (kind == NULL || strcmp(kind, "spawned") != 0)
		return 1;
	if (id != NULL && spawner_agent_live(id))
		return 0;
	if (host != NULL && strcmp(host, D.hostname) == 0)
		return 1;
	for (i = 0; over[i] != NULL; i++)
		if (state != NULL && strcmp(state, over[i]) == 0)
			return 1;
	return 0;
}

/* Forget row (ended) in the open transaction; all is every agent row ({"items"}). */
static int
forget_row(json_t *row, json_t *all, const char *by)
{
	const char *id = json_string_value(json_object_get(row, "id"));
	const char *sid = json_string_value(json_object_get(row, "session_id"));
	int sessions = 0;
	json_t *ev;

	if (store_agent_delete(D.store, id) < 0)
		return -1;
	if (sid != NULL && !session_shared(all, sid, id))
		sessions = session_remove(sid);
	ev = json_pack("{s:s, s:O, s:b, s:s}", "id", id, "kind", json_object_get(row, "kind"),
	               "sessions_removed", sessions, "by", by);
	if (sid != NULL)
		json_object_set_new(ev, "session_id", json_string(sid));
	events_emit(EV_AGENT_FORGOTTEN, ev);
	log_info("agent %s forgotten (%s)%s", id, by, sessions ? ", its session logs removed" : "");
	return sessions;
}

int
retention_forget(const char *id, const char *by, int *sessions, const char **code, char **cause)
{
	struct store_err e;
	json_t *row, *all = NULL;
	const char *why;
	int rc = -1;

	*code = ERR_INTERNAL;
	if ((row = store_agent_get(D.store, id, &e)) == NULL) {
		*code = e.code;
		*cause = xstrdup(e.msg);
		return -1;
	}
	if (!agent_ended(row, &why)) {
		*code = ERR_CONFLICT;
		xasprintf(cause, "agent %.128s has not ended (%s): kill-agent it first", id, why);
	} else if ((all = store_agent_list(D.store, NULL, NULL, &e)) == NULL) {
		*code = e.code;
		*cause = xstrdup(e.msg);
	} else if ((*sessions = forget_row(row, all, by)) < 0)
		xasprintf(cause, "agent %.128s: the row could not be deleted", id);
	else
		rc = 0;
	json_decref(all);
	json_decref(row);
	return rc;
}

/* ---- runs ---- */

/* The instant a row last showed life: its last change or heartbeat. */
static int64_t
row_last_seen(json_t *row)
{
	int64_t u = json_integer_value(json_object_get(row, "updated_ms"));
	int64_t h = json_integer_value(json_object_get(row, "heartbeat_ms"));

	return h > u ? h : u;
}

/* The ids of the agents ended and unseen since agents_before, into R.todo. */
static void
agents_collect(void)
{
	struct store_err e;
	const char *why;
	json_t *a;
	size_t i;

	R.todo = json_array();
	R.next = 0;
	if (R.agents_before <= 0)
		return;
	if ((R.agents = store_agent_list(D.store, NULL, NULL, &e)) == NULL) {
		log_warnx("retention: agents: %s", e.msg);
		return;
	}
	json_array_foreach(json_object_get(R.agents, "items"), i, a)
	{
		if (row_last_seen(a) < R.agents_before && agent_ended(a, &why))
			json_array_append(R.todo, json_object_get(a, "id"));
	}
}

static void
run_start(void)
{
	int64_t now = now_ms();

	R.agents_before = R.pol.agents_days > 0 ? now - R.pol.agents_days * DAY_MS : 0;
	R.events_before = R.pol.events_days > 0 ? now - R.pol.events_days * DAY_MS : 0;
	R.forgotten = R.sessions = R.deleted = 0;
	R.bytes_before = store_db_bytes(D.store);
	R.phase = GC_AGENTS;
	agents_collect();
	uv_idle_start(&R.idle, idle_cb);
}

/* Drop id's row from list ({"items"}): forgotten, it names no session any more. */
static void
list_drop(json_t *list, const char *id)
{
	json_t *items = json_object_get(list, "items"), *a;
	size_t i;

	json_array_foreach(items, i, a)
	{
		const char *aid = json_string_value(json_object_get(a, "id"));
		if (aid != NULL && strcmp(aid, id) == 0) {
			json_array_remove(items, i);
			return;
		}
	}
}

/* One batch of agents: forget the next AGENT_BATCH still ended and unseen.  More to do: 1. */
static int
agents_batch(void)
{
	struct store_err e;
	const char *why;
	json_t *row;
	int n = 0, s;

	while (R.next < json_array_size(R.todo) && n++ < AGENT_BATCH) {
		const char *id = json_string_value(json_array_get(R.todo, R.next++));
		/* Looked at again: it may have been resumed, heartbeat or gone meanwhile. */
		if ((row = store_agent_get(D.store, id, &e)) == NULL)
			continue;
		if (row_last_seen(row) < R.agents_before && agent_ended(row, &why) &&
		    (s = forget_row(row, R.agents, "retention")) >= 0) {
			R.forgotten++;
			R.sessions += s;
			list_drop(R.agents, id);
		}
		json_decref(row);
	}
	return R.next < json_array_size(R.todo);
}

/* One batch of the current phase, in the loop's transaction.  More to do: 1; -1 error. */
static int
run_batch(void)
{
	struct store_err e;
	long long n;

	if (R.phase == GC_AGENTS)
		return agents_batch();
	if (R.phase == GC_EVENTS) {
		n = store_event_compact(D.store, R.events_before, R.pol.events_rows, EVENT_BATCH,
		                        &e);
		if (n > 0)
			R.deleted += n;
	} else
		n = store_reclaim(D.store, RECLAIM_PAGES, &e);
	if (n < 0)
		log_warnx("retention: %s", e.msg);
	return n > 0 ? 1 : n < 0 ? -1 : 0;
}

static json_t *
run_report(void)
{
	return json_pack(
	        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "agents_forgotten", (json_int_t)R.forgotten,
	        "sessions_removed", (json_int_t)R.sessions, "events_deleted", (json_int_t)R.deleted,
	        "oldest_seq", (json_int_t)store_event_oldest(D.store), "compacted_through",
	        (json_int_t)store_event_floor(D.store), "db_bytes_before",
	        (json_int_t)R.bytes_before, "db_bytes_after", (json_int_t)store_db_bytes(D.store));
}

/* The run is over (report NULL: cut short by the shutdown): tell the waiters, tidy up. */
static void
run_end(json_t *report)
{
	struct gc_waiter *w = R.waiters;
	size_t i, n = R.nwaiters;

	uv_idle_stop(&R.idle);
	R.phase = GC_IDLE;
	json_decref(R.agents);
	json_decref(R.todo);
	R.agents = R.todo = NULL;
	R.waiters = NULL;
	R.nwaiters = 0;
	if (report != NULL)
		log_info("retention: %lld agent(s) forgotten, %lld session(s) removed, %lld "
		         "event(s) deleted",
		         R.forgotten, R.sessions, R.deleted);
	for (i = 0; i < n; i++)
		w[i].done(w[i].arg, report);
	free(w);
	json_decref(report);
}

static void
idle_cb(uv_idle_t *h)
{
	struct store_err e;
	size_t mark;
	int more, sp;

	(void)h;
	if (txn_write(&e) == -1) {
		log_warnx("retention: %s", e.msg);
		run_end(run_report()); /* the store is failing: the next run tries again */
		return;
	}
	mark = events_mark();
	sp = store_savepoint(D.store) == 0;
	more = run_batch();
	if (more == -1 && sp) {
		store_savepoint_rollback(D.store);
		events_rollback_to(mark);
	} else if (sp)
		store_savepoint_release(D.store);
	if (more == 1)
		return;
	if (R.phase == GC_RECLAIM || more == -1)
		run_end(run_report());
	else
		R.phase++;
}

void
retention_run(retention_done_fn *done, void *arg)
{
	R.waiters = xreallocarray(R.waiters, R.nwaiters + 1, sizeof *R.waiters);
	R.waiters[R.nwaiters].done = done;
	R.waiters[R.nwaiters++].arg = arg;
	if (R.phase == GC_IDLE)
		run_start();
}

void
retention_close(void)
{
	if (!R.started)
		return;
	if (R.phase != GC_IDLE)
		run_end(NULL);
	uv_close((uv_handle_t *)&R.timer, NULL);
	uv_close((uv_handle_t *)&R.idle, NULL);
	R.started = 0;
	free(R.path);
	R.path = NULL;
}
