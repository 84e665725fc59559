/*
 * reaper-linux.c -- subreaper and process-tree discovery on Linux.
 *
 * PR_SET_CHILD_SUBREAPER makes orphans of our descendants our children
 * instead of init's.  Discovery reads /proc once: a parent map for the
 * ancestry walk, and /proc/PID/environ for the COLIBRI_AGENT_ID marker that
 * every agent process and its children inherit (a process that setsid()s
 * and whose parent then dies is no longer anyone's descendant, but it keeps
 * its environment).
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "daemon/reaper.h"

int
reaper_acquire(void)
{
	return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/* Read /proc/PID/stat: parent pid and start time (field 22). */
static int
stat_of(pid_t pid, pid_t *ppid, int64_t *start)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	ssize_t n;
	int fd, i, pp;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name is in parentheses and may hold anything: skip to the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	p += 2; /* state */
	if (sscanf(p, "%*c %d", &pp) != 1)
		return -1;
	for (i = 0; i < 19 && p != NULL; i++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	if (p == NULL || sscanf(p, "%llu", &st) != 1)
		return -1;
	if (ppid != NULL)
		*ppid = pp;
	if (start != NULL)
		*start = (int64_t)st;
	return 0;
}

int64_t
reaper_start_time(pid_t pid)
{
	int64_t st;

	return stat_of(pid, NULL, &st) == 0 ? st : -1;
}

static int
environ_has(pid_t pid, const char *needle, size_t nlen)
{
	char path[64], buf[65536];
	ssize_t n;
	int fd, found = 0;
	size_t off = 0, len;

	snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	while (off < (size_t)n && !found) {
		len = strlen(buf + off);
		found = len == nlen && memcmp(buf + off, needle, nlen) == 0;
		off += len + 1;
	}
	return found;
}

int
reaper_descendants(pid_t root, const char *agent_id, pid_t **out)
{
	pid_t *pids = NULL, *ppids = NULL, *res = NULL, self = getpid();
	size_t n = 0, cap = 0, nres = 0, i, j;
	char *needle = NULL;
	struct dirent *de;
	DIR *d;
	int changed;

	*out = NULL;
	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		pid_t pid, pp;
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atol(de->d_name);
		if (pid == self || stat_of(pid, &pp, NULL) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			pids = xreallocarray(pids, cap, sizeof *pids);
			ppids = xreallocarray(ppids, cap, sizeof *ppids);
		}
		pids[n] = pid;
		ppids[n++] = pp;
	}
	closedir(d);
	res = xcalloc(n + 1, sizeof *res);
	if (agent_id != NULL) {
		size_t nl = (size_t)xasprintf(&needle, "COLIBRI_AGENT_ID=%s", agent_id);
		for (i = 0; i < n; i++)
			if (pids[i] != root && environ_has(pids[i], needle, nl))
				res[nres++] = pids[i];
	}
	/* Close the set under "child of root or of a member". */
	do {
		changed = 0;
		for (i = 0; i < n; i++) {
			int member = 0, parent_in = ppids[i] == root;
			if (pids[i] == root)
				continue;
			for (j = 0; j < nres && !(member && parent_in); j++) {
				member |= res[j] == pids[i];
				parent_in |= res[j] == ppids[i];
			}
			if (parent_in && !member) {
				res[nres++] = pids[i];
				changed = 1;
			}
		}
	} while (changed);
	free(needle);
	free(pids);
	free(ppids);
	*out = res;
	return (int)nres;
}
