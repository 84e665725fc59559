/*
 * vmsteps.c -- a test facility: the SQLite VM steps each request ran
 * (see vmsteps.h; man colibri-daemon, TEST FACILITIES).
 *
 * The store counts the VM steps of the connection's statements
 * (store_vm_steps: the counters of the live ones, plus those of every
 * statement that finished, taken by a profile hook, so a statement
 * prepared and finalized inside a request counts too; a trigger's program
 * counts in the statement that fired it); a request's steps are the
 * difference around its handler.  The hook is set at the first request.
 * What runs outside a handler (the group commit, timers) is not counted.
 * The numbers are a test's and go to a file, never into a reply or the
 * log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/vmsteps.h"
#include "store/store.h"

static int fd = -1;

int
vmsteps_init(const char *path)
{
	struct stat sb;

	if (path == NULL || *path == '\0')
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
		close(fd);
		fd = -1;
		errno = EPERM;
		return -1;
	}
	return 1;
}

long long
vmsteps_mark(void)
{
	return fd == -1 ? 0 : store_vm_steps(D.store);
}

void
vmsteps_note(const char *cmd, long long mark)
{
	char line[128];
	long long steps;
	int n;

	if (fd == -1)
		return;
	steps = store_vm_steps(D.store);
	n = snprintf(line, sizeof line, "%s %lld\n", cmd, steps < 0 ? -1 : steps - mark);
	if (n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) != n)
		return; /* a test's file: a short write shows as a missing line */
}
