/*
 * conn.h -- colibri-glasspane's connection to the daemon.
 *
 * One client connection (client.h) carries both the requests and the
 * subscribed event stream.  tui_conn_open connects, reads status and
 * list-agents into the model and subscribes to agent.* and task.* events
 * from the model's last seq, so a reconnect resumes where the stream broke.
 * While down, the main loop calls tui_conn_open once a second; nothing here
 * ever exits the program.
 *
 * Rows an event marked stale are refreshed with agent-status under a
 * budget (tui_conn_refresh), so a flood of events costs a bounded number of
 * round trips.  kill-agent, which replies only once the agent has exited,
 * runs in a child process on its own connection so the dashboard never
 * freezes; its outcome comes back through a pipe.
 */
#ifndef COLIBRI_TUI_CONN_H
#define COLIBRI_TUI_CONN_H

#include <stdint.h>
#include <sys/types.h>

#include "client/client.h"
#include "tui/model.h"

#define TUI_TAIL_LINES 200

struct tui_conn {
	char *path;
	struct client *c;
	int up;
	char why[256];      /* why the daemon is unreachable */
	int64_t next_try;   /* monotonic ms of the next reconnect attempt */
	int64_t tasks_read; /* monotonic ms of the last task counts read */
	size_t rr;          /* round-robin cursor over stale rows */
	pid_t kill_pid;     /* a kill-agent child, or 0 */
	int kill_fd;        /* its result pipe, or -1 */
	char kill_id[64];
};

/* The session-log tail shown by the detail view. */
struct tui_tail {
	char id[64];
	char *lines[TUI_TAIL_LINES]; /* ring of the newest lines */
	unsigned n;                  /* lines ever added */
	long long next;              /* session-read cursor */
	int stderr_stream;           /* 1: the agent's stderr log, 0: its JSONL session log */
	char error[160];             /* why the log cannot be read, or empty */
};

void tui_conn_init(struct tui_conn *, const char *path);
void tui_conn_free(struct tui_conn *);

/*
 * Connect, load status and agents into the model and subscribe.  Returns 0,
 * or -1 with conn->why set (the connection is then closed and next_try set
 * one second ahead).
 */
int tui_conn_open(struct tui_conn *, struct tui_model *, int64_t mono_now);

/* The socket to poll, or -1 while down. */
int tui_conn_fd(const struct tui_conn *);
/* Nonzero when whole lines already wait in the client's buffers. */
int tui_conn_buffered(const struct tui_conn *);

/*
 * Apply up to max waiting events without blocking.  Returns how many were
 * read, or -1 when the connection was lost (conn->why says why).
 */
int tui_conn_drain(struct tui_conn *, struct tui_model *, int max, int64_t mono_now);

/*
 * Refresh rows with agent-status: first those in want (the visible rows and
 * the detail's agent) that are stale or live and older than a second, then
 * other stale rows round-robin, at most budget calls.  Returns the calls
 * made, or -1 when the connection was lost.
 */
int tui_conn_refresh(struct tui_conn *, struct tui_model *, struct tui_agent **want, size_t nwant,
                     int budget, int64_t mono_now);

/* Re-read the task counts (status) when a task event asked for it, at most once a second. */
int tui_conn_tasks(struct tui_conn *, struct tui_model *, int64_t mono_now);

/*
 * Append the session-log lines after tail->next (the whole log the first
 * time, keeping the newest TUI_TAIL_LINES).  Returns 0, or -1 when the
 * connection was lost.  A refusal is stored in tail->error.
 */
int tui_conn_tail(struct tui_conn *, struct tui_tail *);
void tui_tail_reset(struct tui_tail *, const char *id);
/* Switch the tail between the session log and the stderr log (and reload). */
void tui_tail_toggle_stream(struct tui_tail *);
/* The i-th newest line of the tail, or NULL. */
const char *tui_tail_get(const struct tui_tail *, unsigned i);

/* Start kill-agent id in a child; returns 0, or -1 with msg filled (one kill at a time). */
int tui_conn_kill_start(struct tui_conn *, const char *id, char *msg, size_t n);
/* Collect the kill's outcome into msg (call when kill_fd is readable). */
void tui_conn_kill_finish(struct tui_conn *, char *msg, size_t n);

#endif
