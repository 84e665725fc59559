/*
 * reaper.h -- the daemon as the reaper of everything its agents start.
 *
 * One implementation per OS: reaper-linux.c (PR_SET_CHILD_SUBREAPER, /proc)
 * and reaper-freebsd.c (procctl PROC_REAP_ACQUIRE / PROC_REAP_GETPIDS,
 * kinfo_proc).  Orphaned descendants of an agent are reparented to the
 * daemon, whose SIGCHLD handler reaps them; reaper_descendants finds them
 * while they live, so kill-agent can end the whole tree -- including
 * processes that left the agent's process group (pi's bash tool children).
 * Where a child has a process tree of its own (tree.h: a cgroup on Linux)
 * that does the killing, and this scan is the job layer's fallback and the
 * spawner's restart recovery by marker.
 */
#ifndef COLIBRI_REAPER_H
#define COLIBRI_REAPER_H

#include <stdint.h>
#include <sys/types.h>

/* Become the reaper of our descendants.  -1 on failure (logged, not fatal). */
int reaper_acquire(void);

/*
 * Descendants of root (not root itself), and every process whose
 * environment carries COLIBRI_AGENT_ID=agent_id (agent_id may be NULL).
 * Returns the count and a malloc'd array in *out (caller frees).
 */
int reaper_descendants(pid_t root, const char *agent_id, pid_t **out);

/* The process's start time in an OS-specific unit, or -1 if it does not exist. */
int64_t reaper_start_time(pid_t pid);

/*
 * The process's parent pid (0 for the kernel's own), or -1 if it does not
 * exist; its start time (as reaper_start_time) in *start.
 */
pid_t reaper_parent(pid_t pid, int64_t *start);

#endif
