/*
 * vmsteps.h -- a test facility: the SQLite VM steps each request ran.
 *
 * With COLIBRI_TEST_VM_STEPS_FILE set when the daemon starts, every
 * request's handler is measured (the VM steps of the SQLite statements it
 * ran, sqlite3_stmt_status) and a line "<command> <steps>" is appended to
 * that file.  tests/integration/test_scale_steps.py builds boards of two
 * sizes and holds every command's steps bounded whatever the size, so that
 * a table scan cannot come back unnoticed.  Off (the default) it costs one
 * branch per request, and nothing of it ever reaches a reply.
 */
#ifndef COLIBRI_DAEMON_VMSTEPS_H
#define COLIBRI_DAEMON_VMSTEPS_H

/* Open path (NULL: off); 1 on, 0 off, -1 with errno. */
int vmsteps_init(const char *path);
/* The steps so far (0 when off), to hand to vmsteps_note after the handler. */
long long vmsteps_mark(void);
/* Append "cmd <steps since mark>" to the file (nothing when off). */
void vmsteps_note(const char *cmd, long long mark);

#endif
