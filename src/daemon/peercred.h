/*
 * peercred.h -- who is on the other end of a Unix socket.
 *
 * One implementation per OS: peercred-linux.c (SO_PEERCRED and
 * /proc/PID/status for supplementary groups), peercred-freebsd.c
 * (LOCAL_PEERCRED's xucred).
 */
#ifndef COLIBRI_PEERCRED_H
#define COLIBRI_PEERCRED_H

#include <sys/types.h>

struct peercred {
	uid_t uid;
	gid_t gid;
	pid_t pid; /* -1 when the OS does not say */
};

/* Fill pc for the peer of fd; -1 on error. */
int peercred_get(int fd, struct peercred *pc);
/* Is the peer a member of gid (primary or supplementary)?  1 yes, 0 no. */
int peercred_in_group(int fd, const struct peercred *pc, gid_t gid);

#endif
