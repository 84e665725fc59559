/*
 * sweep.h -- the timer that expires task leases and declares agents lost.
 */
#ifndef COLIBRI_SWEEP_H
#define COLIBRI_SWEEP_H

void sweep_init(void);
void sweep_close(void);
/* Run one sweep now (also used by tests through the timer). */
void sweep_run(void);
/* Declare a registered agent lost: mark it and release its claims (in the current txn). */
void sweep_agent_lost(const char *id, const char *reason);

#endif
