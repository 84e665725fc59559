/*
 * peercred-freebsd.c -- peer credentials on FreeBSD: LOCAL_PEERCRED returns
 * a struct xucred with the effective uid and the group list (cr_groups[0]
 * is the effective gid).  The peer's pid is cr_pid where the kernel has it.
 * Both are what the kernel recorded at connect(), so the group list cannot
 * be another process's (as /proc/PID could be, after a pid is reused).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/ucred.h>
#include <sys/un.h>

#include "daemon/peercred.h"

int
peercred_get(int fd, struct peercred *pc)
{
	struct xucred xu;
	socklen_t len = sizeof xu;

	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xu, &len) == -1 ||
	    xu.cr_version != XUCRED_VERSION)
		return -1;
	pc->uid = xu.cr_uid;
	pc->gid = xu.cr_ngroups > 0 ? xu.cr_groups[0] : (gid_t)-1;
	pc->pid = xu.cr_pid;
	return 0;
}

int
peercred_in_group(int fd, const struct peercred *pc, gid_t gid)
{
	struct xucred xu;
	socklen_t len = sizeof xu;
	int i;

	(void)pc;
	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xu, &len) == -1 ||
	    xu.cr_version != XUCRED_VERSION)
		return 0;
	for (i = 0; i < xu.cr_ngroups; i++)
		if (xu.cr_groups[i] == gid)
			return 1;
	return 0;
}
