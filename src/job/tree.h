/*
 * tree.h -- a child's whole process tree, so that killing it misses nothing.
 *
 * A process group is not a tree: a grandchild that calls setsid() (and
 * clears its environment, so the COLIBRI_AGENT_ID marker is gone too) leaves
 * it, and once its parent exits nothing links it to the agent any more.
 * The kernel can keep the link for us:
 *
 *   Linux    every child the job layer starts gets a cgroup v2 of its own,
 *            <cgroup2 mount><the daemon's cgroup>/colibri-<key>/<name>, when
 *            that subtree is writable (a root daemon, or a delegated
 *            subtree).  The child enters it before exec, so everything it
 *            ever starts is inside, and cgroup.kill ends the lot at once.
 *            <key> is a hash of the daemon's state directory, so daemons
 *            with different state directories never touch each other's
 *            groups, and a restarted daemon finds what the previous one
 *            left (tree_recover) and kills and removes it.
 *   FreeBSD  the daemon is the reaper of its descendants (reaper-freebsd.c)
 *            and procctl(PROC_REAP_KILL, REAPER_KILL_SUBTREE) signals every
 *            process that descends from one direct child, however it was
 *            reparented.  Nothing survives a daemon restart there to find.
 *
 * Without either (no writable cgroup v2, a daemon that is not a reaper) the
 * job layer falls back to the process group plus the reaper's descendant
 * scan (reaper.h); tree_init logs that once.
 *
 * The text parsing (which cgroup the daemon is in, where cgroup2 is
 * mounted) is pure and lives in tree.c, unit-tested; the side effects are
 * in tree-linux.c and tree-freebsd.c.
 */
#ifndef COLIBRI_TREE_H
#define COLIBRI_TREE_H

#include <stdint.h>
#include <sys/types.h>

#define TREE_NAME_MAX 160

/*
 * Choose the place for this daemon's groups, keyed by key (the state
 * directory, or the database path).  Never fails: without groups every
 * tree_* call below is a no-op returning -1, and tree_available() says 0.
 */
void tree_init(const char *key);
int tree_available(void);
/* Free what tree_init allocated. */
void tree_close(void);

/*
 * Create (or reuse) the group called name and return a descriptor of its
 * cgroup.procs opened for writing (close-on-exec): the forked child writes
 * "0" to it before exec.  -1 when there are no groups or it failed (logged).
 */
int tree_enter_fd(const char *name);
/*
 * Signal every process of the tree: on Linux the group called name
 * (SIGKILL through cgroup.kill), on FreeBSD the reaper subtree of root, the
 * daemon's direct child (which may be reaped already).  Returns the number
 * of processes signalled or 1 for cgroup.kill, 0 when the tree is empty,
 * -1 without groups.
 */
int tree_signal(const char *name, pid_t root, int sig);
/* Non-zero while the group holds a live process (Linux), else 0. */
int tree_populated(const char *name);
/* Remove the group if it is empty.  0, or -1 (still populated, or no groups). */
int tree_remove(const char *name);
/*
 * At start: kill every process of every group a previous daemon with the
 * same key left, wait for them to go (up to about two seconds) and remove
 * the groups.  Returns how many groups held processes.
 */
int tree_recover(void);

/* ---- pure parts (tree.c) ---- */

/*
 * The daemon's cgroup v2 path from the text of /proc/self/cgroup (its
 * "0::PATH" line), or NULL when there is none.  Caller frees.
 */
char *tree_parse_cgroup(const char *proc_self_cgroup);
/*
 * The mount point of the cgroup2 file system from the text of
 * /proc/self/mountinfo (octal escapes such as \040 decoded), or NULL.
 * Caller frees.
 */
char *tree_parse_mountinfo(const char *mountinfo);
/* The directory name for key: "colibri-" and 16 hex digits of its FNV-1a hash. */
void tree_key_name(const char *key, char *out, size_t len);
/* Non-zero when name is usable as one path component of a group. */
int tree_name_valid(const char *name);

#endif
