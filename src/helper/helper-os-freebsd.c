/*
 * helper-os-freebsd.c -- FreeBSD side of colibri-jail-spawn.
 *
 * issetugid() is the secure-exec flag.  jail_get(2) looks up a running jail
 * by name so that `exec NAME` can be refused unless the jail's root lies under
 * the configured root base: the helper must not open a root shell in a jail
 * Colibri does not manage.
 *
 * Capsicum: the helper's last act is execve of jexec or jail, which then need
 * jail_attach(2)/jail_set(2).  Capability mode forbids execve (only fexecve
 * survives, and the new image would stay in capability mode, where
 * jail_attach is not allowed), so cap_enter() cannot be used in this process
 * or inherited by its successor.  What Capsicum would protect here -- the
 * parsing and validation -- is a few hundred lines over argv and paths with no
 * network or descriptor input; the helper instead keeps its attack surface
 * small: a fixed request grammar, a cleared environment, closed descriptors
 * beyond stdio, default signal dispositions, and absolute program paths.
 */
#include "helper/helper-os.h"

#include <sys/param.h>
#include <sys/jail.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
helper_os_privileged(void)
{
	return issetugid() != 0 || getuid() != geteuid() || getgid() != getegid();
}

int
helper_os_jail_path(const char *name, char *path, size_t len, char *err, size_t errlen)
{
	char errmsg[256] = "";
	struct iovec iov[6];

	iov[0].iov_base = (void *)(uintptr_t) "name";
	iov[0].iov_len = sizeof "name";
	iov[1].iov_base = (void *)(uintptr_t)name;
	iov[1].iov_len = strlen(name) + 1;
	iov[2].iov_base = (void *)(uintptr_t) "path";
	iov[2].iov_len = sizeof "path";
	iov[3].iov_base = path;
	iov[3].iov_len = len;
	iov[4].iov_base = (void *)(uintptr_t) "errmsg";
	iov[4].iov_len = sizeof "errmsg";
	iov[5].iov_base = errmsg;
	iov[5].iov_len = sizeof errmsg;
	path[0] = '\0';
	if (jail_get(iov, 6, 0) == -1) {
		snprintf(err, errlen, "no running jail %s: %s", name,
		         errmsg[0] != '\0' ? errmsg : strerror(errno));
		return -1;
	}
	return 0;
}
