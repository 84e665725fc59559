/*
 * retention.h -- lifecycle and retention: forgetting ended agents, the
 * events log's compaction, CONFIG_DIR/retention.json and gc.
 *
 * An agent is forgotten (its row and, when no other row names its
 * session, its session logs) by agent-forget, or by retention once it has
 * been ended for agents_days.  Events older than events_days, or more than
 * events_rows below the last seq, are deleted a batch at a time (each batch
 * in the group commit of one loop iteration, so nothing else waits long),
 * as a prefix of the log: the store's floor (store_event_floor) then tells
 * a reader whose cursor fell below it that events went (cursor_expired).
 * A run goes every interval_ms, or now on gc; a gc during a run joins it.
 */
#ifndef COLIBRI_RETENTION_H
#define COLIBRI_RETENTION_H

#include <jansson.h>

int retention_init(char **cause);
/* SIGHUP: read retention.json again; a bad file keeps the old policy (the log says why). */
void retention_reload(void);
void retention_close(void);

/*
 * Forget agent id now, in the open transaction (the caller holds it):
 * 0 with *sessions (1 when its session logs went, else 0), or -1 with
 * *code (not_found; conflict while it runs) and *cause (the caller frees).
 * by names who asked ("agent-forget" or "retention"), for the event.
 */
int retention_forget(const char *id, const char *by, int *sessions, const char **code,
                     char **cause);

/*
 * gc: run retention now (or join the run in progress) and call done(arg,
 * report) once it is over; report is borrowed, NULL when the daemon shuts
 * down first.  {agents_forgotten, sessions_removed, events_deleted,
 * oldest_seq, compacted_through, db_bytes_before, db_bytes_after}.
 */
typedef void retention_done_fn(void *arg, json_t *report);
void retention_run(retention_done_fn *done, void *arg);

#endif
