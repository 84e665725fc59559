/*
 * model.h -- what colibri-glasspane knows about the daemon, without curses.
 *
 * The dashboard keeps one row per agent, the task board counts, the
 * daemon's identity and a ring of recent events.  Everything here is fed
 * from protocol objects (list-agents items, agent-status results, status
 * results and subscribed events) and read by the view; no I/O, no ncurses,
 * so the unit tests drive it directly.
 *
 * Each row carries two flags: `dirty` (its text on screen is out of date;
 * the view clears it after drawing) and `stale` (an event said something
 * changed that the event itself does not carry, such as usage or activity;
 * the connection refreshes it with agent-status under a budget).
 *
 * Events are applied at most once: the model remembers the last seq it saw
 * and drops anything at or below it, so a resubscription after a reconnect
 * (since = last seq) neither loses nor doubles an event.  Events at or below
 * `snapshot_seq` (already reflected in the last list-agents snapshot) are
 * logged but do not touch the rows.
 */
#ifndef COLIBRI_TUI_MODEL_H
#define COLIBRI_TUI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define TUI_AGENT_EVENTS 8   /* recent events kept per agent (detail view) */
#define TUI_LOG_EVENTS   256 /* recent events kept overall (bottom area) */
#define TUI_EVENT_TEXT   112

struct tui_event {
	long long seq;
	int64_t ts; /* wall clock ms, from the event */
	char text[TUI_EVENT_TEXT];
};

struct tui_agent {
	char id[64];
	char kind[12];
	char provider[24];
	char place[48]; /* tenant, else jail name or path, else empty */
	char state[16];
	char reason[128];
	char activity[96];
	char session_id[64];
	char last_error[160];
	char exit_text[48]; /* "exit 0", "signal 15" or empty */
	int64_t since_ms;
	int64_t last_event_ms;
	long long pid;
	long long turns, tool_calls, restarts;
	long long input, output, cache_read, cache_write, total_tokens;
	double cost;
	int live;
	int dirty;
	int stale;
	int present;          /* seen in the current resync */
	int64_t refreshed_ms; /* monotonic time of the last agent-status */
	struct tui_event ev[TUI_AGENT_EVENTS];
	unsigned nev; /* total ever added; ring index nev % TUI_AGENT_EVENTS */
};

struct tui_model {
	struct tui_agent **agents;
	size_t n, cap;
	size_t *slots; /* open-addressing hash: index + 1, 0 empty */
	size_t nslots;
	char host[64];
	char version[32];
	long long tasks_open, tasks_ready, tasks_claimed, tasks_done;
	long long stale_claims; /* claims whose owner is neither running nor heartbeating */
	long long last_seq;     /* last event seq applied or logged */
	long long snapshot_seq; /* events at or below are in the snapshot */
	long long events_seen;  /* events accepted since start */
	struct tui_event log[TUI_LOG_EVENTS];
	unsigned nlog;
	int header_dirty; /* host, version or counts changed */
	int log_dirty;    /* a new event in the log */
	int order_dirty;  /* rows added/removed or a sort key changed */
	int tasks_stale;  /* a task.* event arrived: re-read the counts */
};

enum tui_sort { TUI_SORT_ID, TUI_SORT_STATE, TUI_SORT_LAST_EVENT, TUI_SORT_COST, TUI_SORT_COUNT };

void tui_model_init(struct tui_model *);
void tui_model_free(struct tui_model *);

/* The row of agent id, or NULL. */
struct tui_agent *tui_model_find(struct tui_model *, const char *id);

/*
 * Update (or add) the row of an agent object (list-agents item or
 * agent-status result).  Clears its stale flag and sets dirty.  Returns the
 * row, or NULL when the object has no string id.
 */
struct tui_agent *tui_model_apply_agent(struct tui_model *, json_t *obj, int64_t mono_now);

/*
 * Replace the rows by a list-agents result ({"items": [...]}) taken when the
 * daemon's last seq was snapshot_seq.  Rows not listed are removed.
 * Returns the number of rows, or -1 when result has no items array.
 */
int tui_model_resync(struct tui_model *, json_t *result, long long snapshot_seq, int64_t mono_now);

/* Host, version and task counts from a status result. */
void tui_model_apply_status(struct tui_model *, json_t *status);

/*
 * Apply one subscribed event line ({"event", "seq", "ts", "data"}).
 * Returns 1 when applied, 0 when dropped as already seen, -1 when it is not
 * an event.
 */
int tui_model_apply_event(struct tui_model *, json_t *msg);

/* The i-th most recent log event (0 newest), or NULL. */
const struct tui_event *tui_model_log_get(const struct tui_model *, unsigned i);
/* The i-th most recent event of an agent (0 newest), or NULL. */
const struct tui_event *tui_agent_event_get(const struct tui_agent *, unsigned i);

/*
 * The rows to show: those matching filter (case-insensitive substring of id,
 * provider or state; NULL or "" matches all), ordered by sort.  Writes row
 * pointers into *out (caller frees) and returns how many.
 */
size_t tui_model_view(const struct tui_model *, const char *filter, enum tui_sort,
                      struct tui_agent ***out);

const char *tui_sort_name(enum tui_sort);

/* Cache-hit share in percent (cache_read / (input + cache_read)), -1 when unknown. */
int tui_agent_hit_pct(const struct tui_agent *);

/* Formatting for narrow columns; each writes a NUL-terminated string into dst. */
void tui_fmt_age(char *dst, size_t n, int64_t ms);
void tui_fmt_count(char *dst, size_t n, long long v);
void tui_fmt_cost(char *dst, size_t n, double cost);

#endif
