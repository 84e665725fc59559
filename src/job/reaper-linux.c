/*
 * reaper-linux.c -- subreaper and process-tree discovery on Linux.
 *
 * PR_SET_CHILD_SUBREAPER makes orphans of our descendants our children
 * instead of init's.  Discovery reads /proc once: a parent map for the
 * ancestry walk, and /proc/PID/environ for the COLIBRI_AGENT_ID marker that
 * every agent process and its children inherit (a process that setsid()s
 * and whose parent then dies is no longer anyone's descendant, but it keeps
 * its environment).
 *
 * Reading every process's environment on every call made ending n agents
 * cost n^2 reads while n agents were alive, so the marker a process carries
 * is remembered by (pid, start time).  Only markers are remembered, not
 * their absence: a launch chain (jexec, sh launch.sh) execs into the
 * marked environment under the same pid.  The memo is rebuilt from each
 * scan, so it holds only live processes; a match is confirmed by a fresh
 * read.
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
#include "job/reaper.h"

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

pid_t
reaper_parent(pid_t pid, int64_t *start)
{
	pid_t pp;

	return stat_of(pid, &pp, start) == 0 ? pp : -1;
}

#define MARKER          "COLIBRI_AGENT_ID="
#define ENV_READ_MAX    (4 * 1024 * 1024)
#define MARK_UNREADABLE 1 /* environ_marker: the environment could not be read */

struct mark {
	pid_t pid; /* 0: empty slot */
	int64_t start;
	uint64_t hash; /* of the marker's value */
};

static struct mark *marks;
static size_t marks_cap; /* a power of two, or 0 */

/* FNV-1a, never 0 or MARK_UNREADABLE. */
static uint64_t
mark_hash(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	while (n-- > 0)
		h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
	return h > MARK_UNREADABLE ? h : h + 2;
}

/* The slot of pid in tab (its own, or the empty one where it would go). */
static struct mark *
mark_slot(struct mark *tab, size_t cap, pid_t pid)
{
	size_t i = ((size_t)pid * 2654435761U) & (cap - 1);

	while (tab[i].pid != 0 && tab[i].pid != pid)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

/* The whole of /proc/PID/environ (NUL-separated) in *buf; its length, or -1. */
static ssize_t
environ_read(pid_t pid, char **buf, size_t *cap)
{
	char path[64];
	ssize_t n;
	size_t have = 0;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		if (have + 1 >= *cap) {
			if (*cap >= ENV_READ_MAX)
				break;
			*cap = *cap ? *cap * 2 : 65536;
			*buf = xrealloc(*buf, *cap);
		}
		if ((n = read(fd, *buf + have, *cap - have - 1)) <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	(*buf)[have] = '\0';
	return have > 0 ? (ssize_t)have : -1;
}

/* The hash of pid's marker value: 0 when it has none, MARK_UNREADABLE. */
static uint64_t
environ_marker(pid_t pid, const char *exact, int *is_exact)
{
	static char *buf;
	static size_t cap;
	ssize_t n = environ_read(pid, &buf, &cap);
	size_t off = 0, len, ml = sizeof MARKER - 1;

	*is_exact = 0;
	if (n < 0)
		return MARK_UNREADABLE;
	while (off < (size_t)n) {
		len = strlen(buf + off);
		if (len >= ml && memcmp(buf + off, MARKER, ml) == 0) {
			*is_exact = exact != NULL && strcmp(buf + off + ml, exact) == 0;
			return mark_hash(buf + off + ml, len - ml);
		}
		off += len + 1;
	}
	return 0;
}

/*
 * Which of pids[0..n) carry agent_id's marker: the memo answers for a
 * process seen before (same start time), a read for a new one; a hash match
 * is confirmed by reading again.  Rebuilds the memo from this scan.
 */
static size_t
marked(const pid_t *pids, const int64_t *starts, size_t n, pid_t root, const char *agent_id,
       pid_t *res)
{
	uint64_t want = mark_hash(agent_id, strlen(agent_id)), h;
	size_t cap = 64, i, nres = 0;
	struct mark *tab, *old, *slot;
	int exact;

	while (cap < n * 2)
		cap *= 2;
	tab = xcalloc(cap, sizeof *tab);
	for (i = 0; i < n; i++) {
		old = marks_cap > 0 ? mark_slot(marks, marks_cap, pids[i]) : NULL;
		exact = -1;
		if (old != NULL && old->pid == pids[i] && old->start == starts[i])
			h = old->hash;
		else
			h = environ_marker(pids[i], agent_id, &exact);
		if (h != 0 && h != MARK_UNREADABLE) {
			slot = mark_slot(tab, cap, pids[i]);
			slot->pid = pids[i];
			slot->start = starts[i];
			slot->hash = h;
		}
		if (h != want || pids[i] == root)
			continue;
		if (exact == -1)
			environ_marker(pids[i], agent_id, &exact);
		if (exact == 1)
			res[nres++] = pids[i];
	}
	free(marks);
	marks = tab;
	marks_cap = cap;
	return nres;
}

int
reaper_descendants(pid_t root, const char *agent_id, pid_t **out)
{
	pid_t *pids = NULL, *ppids = NULL, *res = NULL, self = getpid();
	int64_t *starts = NULL;
	size_t n = 0, cap = 0, nres = 0, i, j;
	struct dirent *de;
	DIR *d;
	int changed;

	*out = NULL;
	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		pid_t pid, pp;
		int64_t st;
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atol(de->d_name);
		if (pid == self || stat_of(pid, &pp, &st) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			pids = xreallocarray(pids, cap, sizeof *pids);
			ppids = xreallocarray(ppids, cap, sizeof *ppids);
			starts = xreallocarray(starts, cap, sizeof *starts);
		}
		pids[n] = pid;
		starts[n] = st;
		ppids[n++] = pp;
	}
	closedir(d);
	res = xcalloc(n + 1, sizeof *res);
	if (agent_id != NULL)
		nres = marked(pids, starts, n, root, agent_id, res);
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
	free(pids);
	free(ppids);
	free(starts);
	*out = res;
	return (int)nres;
}
