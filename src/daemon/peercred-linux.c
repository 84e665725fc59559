/*
 * peercred-linux.c -- peer credentials on Linux: SO_PEERCRED gives uid, gid
 * and pid; SO_PEERGROUPS gives the supplementary groups.  Both are the
 * credentials the kernel recorded when the peer called connect(), so they
 * cannot change under us -- unlike /proc/PID/status, which names whatever
 * process holds that pid now (a pid can be reused).  The server asks once,
 * when it accepts the connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "daemon/peercred.h"

int
peercred_get(int fd, struct peercred *pc)
{
	struct ucred uc;
	socklen_t len = sizeof uc;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1)
		return -1;
	pc->uid = uc.uid;
	pc->gid = uc.gid;
	pc->pid = uc.pid;
	return 0;
}

int
peercred_in_group(int fd, const struct peercred *pc, gid_t gid)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t *groups = NULL;
	size_t i, n;
	int found = 0;

	if (pc->gid == gid)
		return 1;
	if (fd < 0)
		return 0;
	for (;;) {
		groups = xrealloc(groups, len);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
			break;
		/* ERANGE: len now says how much the list needs. */
		if (errno != ERANGE || len == 0) {
			log_warn("SO_PEERGROUPS");
			free(groups);
			return 0;
		}
	}
	n = len / sizeof(gid_t);
	for (i = 0; i < n && !found; i++)
		found = groups[i] == gid;
	free(groups);
	return found;
}
