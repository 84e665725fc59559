/*
 * model.c -- the dashboard's picture of the daemon, fed by protocol objects.
 *
 * Rows live in an array of pointers (stable across growth) indexed by an
 * open-addressing hash on the agent id: at ten thousand events a second a
 * linear search over a thousand ids would cost more than everything else
 * together.  Rows are only removed by a resync, which rebuilds the hash.
 *
 * Events update a row from their own data where they can (agent.state
 * carries the new state, reason and time) and mark it stale for what they
 * cannot (usage, activity, turns), which the connection refreshes with
 * agent-status under a budget.  Every accepted event also becomes one short
 * line in the overall log and in its agent's own ring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/xmalloc.h"
#include "tui/model.h"

void
tui_model_init(struct tui_model *m)
{
	memset(m, 0, sizeof *m);
	m->header_dirty = m->log_dirty = m->order_dirty = 1;
}

void
tui_model_free(struct tui_model *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->agents[i]);
	free(m->agents);
	free(m->slots);
	memset(m, 0, sizeof *m);
}

/* ---- the id hash ---- */

static size_t
tui_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static void
tui_slots_insert(struct tui_model *m, size_t idx)
{
	size_t mask = m->nslots - 1, i = tui_hash(m->agents[idx]->id) & mask;

	while (m->slots[i] != 0)
		i = (i + 1) & mask;
	m->slots[i] = idx + 1;
}

static void
tui_slots_rebuild(struct tui_model *m, size_t want)
{
	size_t i;

	free(m->slots);
	m->nslots = 64;
	while (m->nslots < want * 2)
		m->nslots *= 2;
	m->slots = xcalloc(m->nslots, sizeof *m->slots);
	for (i = 0; i < m->n; i++)
		tui_slots_insert(m, i);
}

struct tui_agent *
tui_model_find(struct tui_model *m, const char *id)
{
	size_t mask, i;

	if (m->nslots == 0 || id == NULL)
		return NULL;
	mask = m->nslots - 1;
	for (i = tui_hash(id) & mask; m->slots[i] != 0; i = (i + 1) & mask)
		if (strcmp(m->agents[m->slots[i] - 1]->id, id) == 0)
			return m->agents[m->slots[i] - 1];
	return NULL;
}

static struct tui_agent *
tui_model_add(struct tui_model *m, const char *id)
{
	struct tui_agent *a = xcalloc(1, sizeof *a);

	snprintf(a->id, sizeof a->id, "%s", id);
	a->dirty = a->stale = 1;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->agents = xreallocarray(m->agents, m->cap, sizeof *m->agents);
	}
	m->agents[m->n++] = a;
	if (m->n * 2 > m->nslots)
		tui_slots_rebuild(m, m->n);
	else
		tui_slots_insert(m, m->n - 1);
	m->order_dirty = m->header_dirty = 1;
	return a;
}

static struct tui_agent *
tui_model_get(struct tui_model *m, const char *id)
{
	struct tui_agent *a = tui_model_find(m, id);

	return a != NULL ? a : tui_model_add(m, id);
}

/* ---- agent objects ---- */

static void
tui_copy(char *dst, size_t n, json_t *v)
{
	const char *s = json_string_value(v);

	snprintf(dst, n, "%s", s != NULL ? s : "");
}

static long long
tui_int(json_t *v)
{
	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	return 0;
}

/* Tenant, else the jail's name, else the last part of its path. */
static void
tui_place(struct tui_agent *a, json_t *obj)
{
	json_t *jail = json_object_get(obj, "jail");
	const char *s = json_string_value(json_object_get(obj, "tenant")), *slash;

	if (s == NULL)
		s = json_string_value(json_object_get(jail, "name"));
	if (s == NULL && (s = json_string_value(json_object_get(jail, "path"))) != NULL &&
	    (slash = strrchr(s, '/')) != NULL && slash[1] != '\0')
		s = slash + 1;
	snprintf(a->place, sizeof a->place, "%s", s != NULL ? s : "");
}

static void
tui_exit_text(struct tui_agent *a, json_t *obj)
{
	json_t *code = json_object_get(obj, "exit_code"), *sig = json_object_get(obj, "signal");

	if (json_is_integer(sig))
		snprintf(a->exit_text, sizeof a->exit_text, "signal %lld", tui_int(sig));
	else if (json_is_integer(code))
		snprintf(a->exit_text, sizeof a->exit_text, "exit %lld", tui_int(code));
	else
		a->exit_text[0] = '\0';
}

static void
tui_usage(struct tui_agent *a, json_t *u)
{
	a->input = tui_int(json_object_get(u, "input"));
	a->output = tui_int(json_object_get(u, "output"));
	a->cache_read = tui_int(json_object_get(u, "cache_read"));
	a->cache_write = tui_int(json_object_get(u, "cache_write"));
	a->total_tokens = tui_int(json_object_get(u, "total_tokens"));
	a->cost = json_number_value(json_object_get(u, "cost"));
}

struct tui_agent *
tui_model_apply_agent(struct tui_model *m, json_t *obj, int64_t mono_now)
{
	const char *id = json_string_value(json_object_get(obj, "id"));
	struct tui_agent *a;
	json_t *v;

	if (id == NULL)
		return NULL;
	a = tui_model_get(m, id);
	tui_copy(a->kind, sizeof a->kind, json_object_get(obj, "kind"));
	tui_copy(a->provider, sizeof a->provider, json_object_get(obj, "provider"));
	tui_copy(a->state, sizeof a->state, json_object_get(obj, "state"));
	tui_copy(a->reason, sizeof a->reason, json_object_get(obj, "reason"));
	tui_copy(a->activity, sizeof a->activity, json_object_get(obj, "activity"));
	tui_copy(a->session_id, sizeof a->session_id, json_object_get(obj, "session_id"));
	tui_copy(a->last_error, sizeof a->last_error, json_object_get(obj, "last_error"));
	tui_place(a, obj);
	tui_exit_text(a, obj);
	tui_usage(a, json_object_get(obj, "usage"));
	a->since_ms = tui_int(json_object_get(obj, "since_ms"));
	a->last_event_ms = tui_int(json_object_get(obj, "last_event_ms"));
	if (a->last_event_ms <= 0)
		a->last_event_ms = tui_int(json_object_get(obj, "heartbeat_ms"));
	a->pid = tui_int(json_object_get(obj, "pid"));
	a->turns = tui_int(json_object_get(obj, "turns"));
	a->tool_calls = tui_int(json_object_get(obj, "tool_calls"));
	a->restarts = tui_int(json_object_get(obj, "restarts"));
	v = json_object_get(obj, "live");
	a->live = v != NULL ? json_is_true(v) : json_is_integer(json_object_get(obj, "pid"));
	a->present = 1;
	a->stale = 0;
	a->dirty = 1;
	a->refreshed_ms = mono_now;
	m->order_dirty = 1;
	return a;
}

int
tui_model_resync(struct tui_model *m, json_t *result, long long snapshot_seq, int64_t mono_now)
{
	json_t *items = json_object_get(result, "items"), *it;
	size_t i, j;

	if (!json_is_array(items))
		return -1;
	for (i = 0; i < m->n; i++)
		m->agents[i]->present = 0;
	json_array_foreach(items, i, it) tui_model_apply_agent(m, it, mono_now);
	for (i = j = 0; i < m->n; i++) {
		if (m->agents[i]->present)
			m->agents[j++] = m->agents[i];
		else
			free(m->agents[i]);
	}
	m->n = j;
	tui_slots_rebuild(m, m->n);
	m->snapshot_seq = snapshot_seq;
	m->order_dirty = m->header_dirty = 1;
	return (int)m->n;
}

void
tui_model_apply_status(struct tui_model *m, json_t *st)
{
	json_t *t = json_object_get(json_object_get(st, "counts"), "tasks");

	tui_copy(m->host, sizeof m->host, json_object_get(st, "host"));
	tui_copy(m->version, sizeof m->version, json_object_get(st, "version"));
	m->tasks_open = tui_int(json_object_get(t, "open"));
	m->tasks_ready = tui_int(json_object_get(t, "ready"));
	m->tasks_claimed = tui_int(json_object_get(t, "claimed"));
	m->tasks_done = tui_int(json_object_get(t, "done"));
	m->stale_claims = tui_int(json_object_get(t, "stale_claims"));
	m->tasks_stale = 0;
	m->header_dirty = 1;
}

/* ---- events ---- */

static const char *
tui_str(json_t *data, const char *key)
{
	const char *s = json_string_value(json_object_get(data, key));

	return s != NULL ? s : "";
}

/* Append s to dst (holding *len bytes of n), cutting at the end. */
static void
tui_cat(char *dst, size_t *len, size_t n, const char *s)
{
	size_t k = strlen(s);

	if (*len + 1 >= n)
		return;
	if (k > n - 1 - *len)
		k = n - 1 - *len;
	memcpy(dst + *len, s, k);
	*len += k;
	dst[*len] = '\0';
}

/*
 * One line describing the event, without its time (the view adds it).
 * agent.state, nine in ten events under load, is built by appending:
 * snprintf cost more than anything else of ours in the benchmark's profile.
 */
static void
tui_event_text(char *dst, size_t n, const char *name, json_t *data)
{
	size_t len = 0;

	dst[0] = '\0';
	if (strcmp(name, EV_AGENT_STATE) == 0) {
		const char *parts[] = {name,
		                       " ",
		                       tui_str(data, "id"),
		                       " ",
		                       tui_str(data, "from"),
		                       "->",
		                       tui_str(data, "to"),
		                       " ",
		                       tui_str(data, "reason")};
		size_t i;
		for (i = 0; i < sizeof parts / sizeof parts[0]; i++)
			tui_cat(dst, &len, n, parts[i]);
	} else if (strcmp(name, EV_AGENT_EXITED) == 0)
		snprintf(dst, n, "%s %s %s: %s", name, tui_str(data, "id"), tui_str(data, "state"),
		         tui_str(data, "reason"));
	else if (strcmp(name, EV_AGENT_RESTARTED) == 0)
		snprintf(dst, n, "%s %s %lld/%lld in %lldms: %s", name, tui_str(data, "id"),
		         tui_int(json_object_get(data, "restart")),
		         tui_int(json_object_get(data, "max_restarts")),
		         tui_int(json_object_get(data, "delay_ms")), tui_str(data, "reason"));
	else if (strncmp(name, EV_PREFIX_TASK, sizeof EV_PREFIX_TASK - 1) == 0)
		snprintf(dst, n, "%s #%lld %s %s", name, tui_int(json_object_get(data, "id")),
		         tui_str(data, "status"), tui_str(data, "title"));
	else
		snprintf(dst, n, "%s %s", name, tui_str(data, "id"));
}

static void
tui_agent_from_state(struct tui_agent *a, json_t *data)
{
	int64_t at = tui_int(json_object_get(data, "at_ms"));

	tui_copy(a->state, sizeof a->state, json_object_get(data, "to"));
	tui_copy(a->reason, sizeof a->reason, json_object_get(data, "reason"));
	if (at > 0)
		a->since_ms = a->last_event_ms = at;
}

static void
tui_agent_from_exit(struct tui_agent *a, json_t *data)
{
	tui_copy(a->state, sizeof a->state, json_object_get(data, "state"));
	tui_copy(a->reason, sizeof a->reason, json_object_get(data, "reason"));
	tui_exit_text(a, data);
	a->live = 0;
}

static void
tui_agent_from_restart(struct tui_agent *a, json_t *data)
{
	a->restarts = tui_int(json_object_get(data, "restart"));
	snprintf(a->activity, sizeof a->activity, "restart %lld/%lld in %lldms", a->restarts,
	         tui_int(json_object_get(data, "max_restarts")),
	         tui_int(json_object_get(data, "delay_ms")));
	a->live = 1;
}

/* Apply an agent.* event to its row; returns the row (NULL for no id). */
static struct tui_agent *
tui_apply_agent_event(struct tui_model *m, const char *name, json_t *data, int64_t ts)
{
	const char *id = json_string_value(json_object_get(data, "id"));
	struct tui_agent *a;

	if (id == NULL)
		return NULL;
	if (strcmp(name, EV_AGENT_REGISTERED) == 0 || strcmp(name, EV_AGENT_LOST) == 0)
		return tui_model_apply_agent(m, data, 0);
	a = tui_model_get(m, id);
	if (strcmp(name, EV_AGENT_STATE) == 0)
		tui_agent_from_state(a, data);
	else if (strcmp(name, EV_AGENT_EXITED) == 0)
		tui_agent_from_exit(a, data);
	else if (strcmp(name, EV_AGENT_RESTARTED) == 0)
		tui_agent_from_restart(a, data);
	else if (strcmp(name, EV_AGENT_SPAWNED) == 0) {
		tui_copy(a->provider, sizeof a->provider, json_object_get(data, "provider"));
		tui_copy(a->session_id, sizeof a->session_id, json_object_get(data, "session_id"));
		a->pid = tui_int(json_object_get(data, "pid"));
		a->live = 1;
		if (a->state[0] == '\0')
			snprintf(a->state, sizeof a->state, "idle");
	}
	if (strcmp(name, EV_AGENT_HEARTBEAT) == 0 || a->last_event_ms < ts)
		a->last_event_ms = ts;
	a->stale = a->dirty = 1;
	m->order_dirty = 1;
	return a;
}

static void
tui_event_push(struct tui_event *ring, unsigned *count, unsigned size, const struct tui_event *e)
{
	ring[*count % size] = *e;
	(*count)++;
}

int
tui_model_apply_event(struct tui_model *m, json_t *msg)
{
	const char *name = json_string_value(json_object_get(msg, "event"));
	json_t *data = json_object_get(msg, "data");
	long long seq = tui_int(json_object_get(msg, "seq"));
	struct tui_agent *a = NULL;
	struct tui_event e;

	if (name == NULL)
		return -1;
	if (seq > 0 && seq <= m->last_seq)
		return 0;
	if (seq > 0)
		m->last_seq = seq;
	m->events_seen++;
	e.seq = seq;
	e.ts = tui_int(json_object_get(msg, "ts"));
	tui_event_text(e.text, sizeof e.text, name, data);
	tui_event_push(m->log, &m->nlog, TUI_LOG_EVENTS, &e);
	m->log_dirty = 1;
	if (strncmp(name, EV_PREFIX_TASK, sizeof EV_PREFIX_TASK - 1) == 0)
		m->tasks_stale = 1;
	else if (strncmp(name, EV_PREFIX_AGENT, sizeof EV_PREFIX_AGENT - 1) == 0 &&
	         (seq == 0 || seq > m->snapshot_seq))
		a = tui_apply_agent_event(m, name, data, e.ts);
	else if (strncmp(name, EV_PREFIX_AGENT, sizeof EV_PREFIX_AGENT - 1) == 0)
		a = tui_model_find(m, tui_str(data, "id"));
	if (a != NULL)
		tui_event_push(a->ev, &a->nev, TUI_AGENT_EVENTS, &e);
	return 1;
}

const struct tui_event *
tui_model_log_get(const struct tui_model *m, unsigned i)
{
	if (i >= m->nlog || i >= TUI_LOG_EVENTS)
		return NULL;
	return &m->log[(m->nlog - 1 - i) % TUI_LOG_EVENTS];
}

const struct tui_event *
tui_agent_event_get(const struct tui_agent *a, unsigned i)
{
	if (i >= a->nev || i >= TUI_AGENT_EVENTS)
		return NULL;
	return &a->ev[(a->nev - 1 - i) % TUI_AGENT_EVENTS];
}

/* ---- the view: filter and sort ---- */

static int
tui_state_rank(const char *s)
{
	static const char *order[] = {"error", "blocked", "working", "idle", "done"};
	size_t i;

	for (i = 0; i < sizeof order / sizeof order[0]; i++)
		if (strcmp(s, order[i]) == 0)
			return (int)i;
	return 5;
}

static int
tui_cmp_id(const void *x, const void *y)
{
	return strcmp((*(struct tui_agent *const *)x)->id, (*(struct tui_agent *const *)y)->id);
}

static int
tui_cmp_state(const void *x, const void *y)
{
	const struct tui_agent *a = *(struct tui_agent *const *)x,
	                       *b = *(struct tui_agent *const *)y;
	int d = tui_state_rank(a->state) - tui_state_rank(b->state);

	return d != 0 ? d : strcmp(a->id, b->id);
}

static int
tui_cmp_last_event(const void *x, const void *y)
{
	const struct tui_agent *a = *(struct tui_agent *const *)x,
	                       *b = *(struct tui_agent *const *)y;

	if (a->last_event_ms != b->last_event_ms)
		return a->last_event_ms > b->last_event_ms ? -1 : 1;
	return strcmp(a->id, b->id);
}

static int
tui_cmp_cost(const void *x, const void *y)
{
	const struct tui_agent *a = *(struct tui_agent *const *)x,
	                       *b = *(struct tui_agent *const *)y;

	if (a->cost != b->cost)
		return a->cost > b->cost ? -1 : 1;
	return strcmp(a->id, b->id);
}

static int
tui_matches(const struct tui_agent *a, const char *f)
{
	return strcasestr(a->id, f) != NULL || strcasestr(a->provider, f) != NULL ||
	       strcasestr(a->state, f) != NULL;
}

size_t
tui_model_view(const struct tui_model *m, const char *filter, enum tui_sort sort,
               struct tui_agent ***out)
{
	static int (*const cmp[TUI_SORT_COUNT])(const void *, const void *) = {
	        tui_cmp_id, tui_cmp_state, tui_cmp_last_event, tui_cmp_cost};
	struct tui_agent **v = xcalloc(m->n + 1, sizeof *v);
	size_t i, n = 0;

	for (i = 0; i < m->n; i++)
		if (filter == NULL || filter[0] == '\0' || tui_matches(m->agents[i], filter))
			v[n++] = m->agents[i];
	if ((unsigned)sort >= TUI_SORT_COUNT)
		sort = TUI_SORT_ID;
	qsort(v, n, sizeof *v, cmp[sort]);
	*out = v;
	return n;
}

const char *
tui_sort_name(enum tui_sort s)
{
	static const char *names[TUI_SORT_COUNT] = {"id", "state", "last event", "cost"};

	return (unsigned)s < TUI_SORT_COUNT ? names[s] : "id";
}

/* ---- formatting ---- */

int
tui_agent_hit_pct(const struct tui_agent *a)
{
	long long denom = a->input + a->cache_read;

	if (denom <= 0 || a->cache_read < 0)
		return -1;
	return (int)((a->cache_read * 100 + denom / 2) / denom);
}

void
tui_fmt_age(char *dst, size_t n, int64_t ms)
{
	long long s = ms / 1000;

	if (ms < 0)
		snprintf(dst, n, "-");
	else if (s < 60)
		snprintf(dst, n, "%llds", s);
	else if (s < 3600)
		snprintf(dst, n, "%lldm", s / 60);
	else if (s < 86400)
		snprintf(dst, n, "%lldh", s / 3600);
	else
		snprintf(dst, n, "%lldd", s / 86400);
}

void
tui_fmt_count(char *dst, size_t n, long long v)
{
	if (v < 10000)
		snprintf(dst, n, "%lld", v);
	else if (v < 10000000)
		snprintf(dst, n, "%lldk", v / 1000);
	else if (v < 10000000000LL)
		snprintf(dst, n, "%lldM", v / 1000000);
	else
		snprintf(dst, n, "%lldG", v / 1000000000);
}

void
tui_fmt_cost(char *dst, size_t n, double cost)
{
	if (cost < 10.0)
		snprintf(dst, n, "$%.4f", cost);
	else if (cost < 10000.0)
		snprintf(dst, n, "$%.2f", cost);
	else
		snprintf(dst, n, "$%.0f", cost);
}
