/*
 * reaper-freebsd.c -- reaper and process-tree discovery on FreeBSD.
 *
 * procctl(PROC_REAP_ACQUIRE) makes the daemon the reaper of its
 * descendants; PROC_REAP_GETPIDS lists them with the reaper's direct child
 * they descend from (pi_subtree), which is exactly "the agent's tree",
 * even for processes that left the agent's process group or session.
 */
#include <sys/param.h>
#include <sys/procctl.h>
#include <sys/sysctl.h>
#include <sys/user.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "job/reaper.h"

int
reaper_acquire(void)
{
	return procctl(P_PID, getpid(), PROC_REAP_ACQUIRE, NULL);
}

int
reaper_descendants(pid_t root, const char *agent_id, pid_t **out)
{
	struct procctl_reaper_status rs;
	struct procctl_reaper_pids rp;
	struct procctl_reaper_pidinfo *pi;
	pid_t *res;
	u_int i, n = 0;

	(void)agent_id;
	*out = NULL;
	if (procctl(P_PID, getpid(), PROC_REAP_STATUS, &rs) == -1)
		return 0;
	pi = xcalloc(rs.rs_descendants + 16, sizeof *pi);
	memset(&rp, 0, sizeof rp);
	rp.rp_count = rs.rs_descendants + 16;
	rp.rp_pids = pi;
	if (procctl(P_PID, getpid(), PROC_REAP_GETPIDS, &rp) == -1) {
		free(pi);
		return 0;
	}
	res = xcalloc(rp.rp_count + 1, sizeof *res);
	for (i = 0; i < rp.rp_count; i++) {
		if ((pi[i].pi_flags & REAPER_PIDINFO_VALID) == 0)
			continue;
		if (pi[i].pi_subtree == root && pi[i].pi_pid != root)
			res[n++] = pi[i].pi_pid;
	}
	free(pi);
	*out = res;
	return (int)n;
}

int64_t
reaper_start_time(pid_t pid)
{
	struct kinfo_proc kp;
	size_t len = sizeof kp;
	int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)pid};

	if (sysctl(mib, 4, &kp, &len, NULL, 0) == -1 || len == 0)
		return -1;
	return (int64_t)kp.ki_start.tv_sec * 1000000 + kp.ki_start.tv_usec;
}

pid_t
reaper_parent(pid_t pid, int64_t *start)
{
	struct kinfo_proc kp;
	size_t len = sizeof kp;
	int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)pid};

	if (sysctl(mib, 4, &kp, &len, NULL, 0) == -1 || len == 0)
		return -1;
	*start = (int64_t)kp.ki_start.tv_sec * 1000000 + kp.ki_start.tv_usec;
	return kp.ki_ppid;
}
