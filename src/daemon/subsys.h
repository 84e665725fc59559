/*
 * subsys.h -- the daemon's subsystems beyond the socket and the store
 * (spawner, vault, skills, host status), started and stopped in one place.
 */
#ifndef COLIBRI_SUBSYS_H
#define COLIBRI_SUBSYS_H

/* Start every subsystem; -1 with *cause on a start-up failure. */
int subsys_init(char **cause);
/* Begin stopping: agents get SIGTERM, no new work starts. */
void subsys_shutdown(void);
/* Is any subsystem still finishing work (live agents, a running provisioning)? */
int subsys_busy(void);
/* Release everything (handles closed, memory freed). */
void subsys_close(void);

#endif
