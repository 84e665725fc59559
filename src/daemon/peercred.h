/*
 * peercred.h -- who is on the other end of a Unix socket.
 *
 * One implementation per OS: peercred-linux.c (SO_PEERCRED and
 * SO_PEERGROUPS), peercred-freebsd.c (LOCAL_PEERCRED's xucred).  Both
 * return what the kernel recorded at connect(), never what a pid holds
 * now; the server asks once per connection, at accept.
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
/*
 * Was the peer a member of gid (primary or supplementary) when it
 * connected?  1 yes, 0 no (also when the kernel does not say).
 */
int peercred_in_group(int fd, const struct peercred *pc, gid_t gid);

#endif
