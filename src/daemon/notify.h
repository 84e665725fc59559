/*
 * notify.h -- notifications: an operator's command hook, run on the
 * transitions an operator acts on (notify.c).
 *
 * The policy is CONFIG_DIR/notify.json (config-file.h strictness; none:
 * no notifications).  The server hands over every event it published after
 * a commit (notify_published); the few that matter -- an agent blocked
 * needing input or parked by a quota, a task failed for good, the ready
 * queue drained -- become notifications, queued (bounded) and given one at
 * a time to the hook on its stdin.  Nothing here blocks the loop or writes
 * to the store.
 *
 * Life cycle: notify_init (subsys.c; a bad file fails the start), then
 * notify_published after each commit and notify_reload on SIGHUP (a bad file
 * keeps the old policy), notify_shutdown, notify_busy until the running hook
 * ended, notify_free.
 */
#ifndef COLIBRI_NOTIFY_H
#define COLIBRI_NOTIFY_H

#include <stddef.h>

#include "daemon/events.h"

#define NOTIFY_FILE "notify.json"

/* Load CONFIG_DIR/notify.json.  0, or -1 with *cause (the daemon does not start). */
int notify_init(char **cause);
/* Load it again (SIGHUP); a file that does not load keeps the old policy (logged). */
void notify_reload(void);
/* The events of one commit, as published (seq order); borrowed for the call. */
void notify_published(const struct event_out *ev, size_t n);
/* Stop: queued notifications are dropped (logged); a running hook may finish. */
void notify_shutdown(void);
/* Does a hook still run? */
int notify_busy(void);
/* Release everything (a hook still running is killed). */
void notify_free(void);

#endif
