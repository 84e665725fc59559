/*
 * peercred-linux.c -- peer credentials on Linux: SO_PEERCRED gives uid, gid
 * and pid; supplementary groups come from /proc/PID/status ("Groups:").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/peercred.h"

int peercred_get(int fd, struct peercred *pc)
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

int peercred_in_group(int fd, const struct peercred *pc, gid_t gid)
{
	char path[64], line[4096], *p, *end;
	FILE *fp;
	int found = 0;

	(void)fd;
	if (pc->gid == gid)
		return 1;
	if (pc->pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pc->pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof line, fp) != NULL) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7; *p != '\0' && !found; p = end) {
			unsigned long g = strtoul(p, &end, 10);
			if (end == p)
				break;
			found = (gid_t)g == gid;
		}
	}
	fclose(fp);
	return found;
}
