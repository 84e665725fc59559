/*
 * tree-freebsd.c -- a child's tree is the reaper subtree it roots.
 *
 * The daemon is the reaper of its descendants (reaper-freebsd.c), and the
 * kernel remembers for every descendant which direct child of the reaper it
 * descends from, whatever setsid() or reparenting happened on the way.
 * PROC_REAP_KILL with REAPER_KILL_SUBTREE signals exactly those processes.
 * There are no named groups: a restarted daemon is not the reaper of what
 * the previous one left (init inherited it), so tree_recover finds nothing
 * and the spawner's marker scan (reaper.h) does that work.
 */
#include <sys/param.h>
#include <sys/procctl.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "job/tree.h"

static int reaping;

void
tree_init(const char *key)
{
	struct procctl_reaper_status rs;

	(void)key;
	reaping = procctl(P_PID, getpid(), PROC_REAP_STATUS, &rs) == 0 &&
	          (rs.rs_flags & REAPER_STATUS_OWNED) != 0;
	if (!reaping)
		log_info("process trees: the daemon is not a reaper; falling back to process "
		         "groups");
}

int
tree_available(void)
{
	return reaping;
}

void
tree_close(void)
{
}

int
tree_enter_fd(const char *name)
{
	(void)name;
	return -1;
}

int
tree_signal(const char *name, pid_t root, int sig)
{
	struct procctl_reaper_kill rk;

	(void)name;
	if (!reaping || root <= 1)
		return -1;
	memset(&rk, 0, sizeof rk);
	rk.rk_sig = sig;
	rk.rk_flags = REAPER_KILL_SUBTREE;
	rk.rk_subtree = root;
	if (procctl(P_PID, getpid(), PROC_REAP_KILL, &rk) == -1)
		return errno == ESRCH ? 0 : -1;
	kill(root, sig); /* the subtree's root itself, if it still lives */
	return (int)rk.rk_killed;
}

int
tree_populated(const char *name)
{
	(void)name;
	return 0;
}

int
tree_remove(const char *name)
{
	(void)name;
	return 0;
}

int
tree_recover(void)
{
	return 0;
}
