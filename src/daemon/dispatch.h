/*
 * dispatch.h -- the dispatcher: agents kept working the ready queue under
 * the caps of CONFIG_DIR/dispatch.json (dispatch-policy.h).
 *
 * Life cycle: dispatch_init (a subsystem, after the spawner) loads the
 * file (a bad one refuses start-up) and the on/off switch kept in the
 * store; dispatch_reload on SIGHUP (a bad file keeps the old policy);
 * dispatch_kick whenever a slot may have opened (the server calls it after
 * publishing task or agent events), coalesced into one walk on the next
 * turn of the loop; a timer walks as a safety net.  dispatch_shutdown
 * stops the walks; dispatch_close frees the policy.  The `dispatch`
 * command turns it on or off (dispatch_switch) and reads dispatch_status.
 */
#ifndef COLIBRI_DISPATCH_H
#define COLIBRI_DISPATCH_H

#include <jansson.h>

int dispatch_init(char **cause);
void dispatch_shutdown(void);
void dispatch_close(void);
/* SIGHUP: load dispatch.json again; on failure the old policy stays (the log says why). */
void dispatch_reload(void);
/* A slot may have opened or a task become ready: walk the queue soon (once per loop turn). */
void dispatch_kick(void);
/*
 * Turn the dispatcher on or off, over the file's "enabled", until the file
 * changes; kept in the store, so a restart keeps it.  0, or -1 with *cause.
 */
int dispatch_switch(int on, char **cause);
/* The status object (docs/protocol.md, "dispatch"): a new reference. */
json_t *dispatch_status(void);

#endif
