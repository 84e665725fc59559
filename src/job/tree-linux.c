/*
 * tree-linux.c -- one cgroup v2 per child, killed with cgroup.kill.
 *
 * tree_init reads which cgroup the daemon is in ("0::" of /proc/self/cgroup)
 * and where cgroup2 is mounted (/proc/self/mountinfo; on a hybrid layout it
 * is /sys/fs/cgroup/unified), and creates colibri-<key> below the daemon's
 * own group.  If any of that fails -- no cgroup2, a read-only or not
 * delegated subtree, a kernel without cgroup.kill -- groups are off for
 * this daemon and the job layer uses process groups and the reaper instead
 * (logged once, here).  COLIBRI_PROCESS_TREES=off chooses that fallback
 * on purpose (the tests use it to keep the fallback covered).
 *
 * Only the daemon writes these files; a child enters its group by writing
 * "0" to the cgroup.procs descriptor tree_enter_fd opened, between fork and
 * exec, so it is inside before it runs a single instruction of its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "job/tree.h"

static char *base; /* <mount><own cgroup>/colibri-<key>, or NULL: no groups */

static char *
tree_slurp(const char *path)
{
	char *buf = NULL;
	size_t cap = 0, have = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	for (;;) {
		if (have + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap);
		}
		if ((n = read(fd, buf + have, cap - have - 1)) <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	return buf;
}

static char *
tree_path(const char *name, const char *file)
{
	char *p;

	if (file == NULL)
		xasprintf(&p, "%s/%s", base, name);
	else
		xasprintf(&p, "%s/%s/%s", base, name, file);
	return p;
}

/* Write s to path; 0 or -1 (errno set). */
static int
tree_write(const char *path, const char *s)
{
	int fd, rc = 0, e;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		rc = -1;
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

/*
 * Can a child of ours enter a group below dir?  (A subtree can be writable
 * and still refuse processes, e.g. with controllers enabled above.)  A
 * short-lived child tries it, as every job's child will.
 */
static const char *
tree_probe(const char *dir)
{
	char *probe = path_join(dir, "probe"), *procs = path_join(probe, "cgroup.procs");
	const char *why = NULL;
	pid_t pid;
	int fd, st = 0;

	if (mkdir(probe, 0700) == -1 && errno != EEXIST)
		why = "cannot create a cgroup below the daemon's (not delegated?)";
	else if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) == -1)
		why = "cannot open cgroup.procs below the daemon's";
	else {
		if ((pid = fork()) == 0)
			_exit(write(fd, "0", 1) == 1 ? 0 : 1);
		close(fd);
		while (pid > 0 && waitpid(pid, &st, 0) == -1 && errno == EINTR)
			;
		if (pid == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			why = "a child cannot enter a cgroup below the daemon's";
	}
	rmdir(probe);
	free(procs);
	free(probe);
	return why;
}

static const char *
tree_setup(const char *key, char **dir)
{
	char *text, *own, *mnt, name[64], *kill;
	struct stat sb;

	*dir = NULL;
	if ((text = getenv("COLIBRI_PROCESS_TREES")) != NULL && strcmp(text, "off") == 0)
		return "turned off by COLIBRI_PROCESS_TREES=off";
	if ((text = tree_slurp("/proc/self/cgroup")) == NULL)
		return "cannot read /proc/self/cgroup";
	own = tree_parse_cgroup(text);
	free(text);
	if (own == NULL)
		return "the daemon is in no cgroup v2";
	text = tree_slurp("/proc/self/mountinfo");
	mnt = text != NULL ? tree_parse_mountinfo(text) : NULL;
	free(text);
	if (mnt == NULL) {
		free(own);
		return "cgroup2 is not mounted";
	}
	tree_key_name(key, name, sizeof name);
	xasprintf(dir, "%s%s/%s", mnt, strcmp(own, "/") == 0 ? "" : own, name);
	free(own);
	free(mnt);
	if (mkdir(*dir, 0700) == -1 && errno != EEXIST)
		return "cannot create a cgroup below the daemon's (not delegated?)";
	kill = path_join(*dir, "cgroup.kill");
	if (stat(kill, &sb) == -1) {
		free(kill);
		return "the kernel has no cgroup.kill";
	}
	free(kill);
	return tree_probe(*dir);
}

void
tree_init(const char *key)
{
	char *dir;
	const char *why = tree_setup(key, &dir);

	if (why != NULL) {
		log_info("process trees: %s%s%s; falling back to process groups and the reaper",
		         why, dir != NULL ? ": " : "", dir != NULL ? dir : "");
		free(dir);
		return;
	}
	base = dir;
	log_debug("process trees: one cgroup per child under %s", base);
}

int
tree_available(void)
{
	return base != NULL;
}

void
tree_close(void)
{
	if (base != NULL)
		rmdir(base); /* only when empty: fine to fail */
	free(base);
	base = NULL;
}

int
tree_enter_fd(const char *name)
{
	char *dir, *procs;
	int fd;

	if (base == NULL || !tree_name_valid(name))
		return -1;
	dir = tree_path(name, NULL);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("process tree %s", dir);
		free(dir);
		return -1;
	}
	procs = path_join(dir, "cgroup.procs");
	if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) == -1)
		log_warn("process tree %s", procs);
	free(procs);
	free(dir);
	return fd;
}

/* Signal each pid listed in the group's cgroup.procs; the count. */
static int
tree_signal_each(const char *name, int sig)
{
	char *path = tree_path(name, "cgroup.procs"), *text, *p, *end;
	long pid;
	int n = 0;

	text = tree_slurp(path);
	free(path);
	for (p = text; p != NULL && *p != '\0'; p = end) {
		pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 1 && kill((pid_t)pid, sig) == 0)
			n++;
		while (*end == '\n')
			end++;
	}
	free(text);
	return n;
}

int
tree_populated(const char *name)
{
	char *path, *text;
	int pop;

	if (base == NULL || !tree_name_valid(name))
		return 0;
	path = tree_path(name, "cgroup.events");
	text = tree_slurp(path);
	free(path);
	pop = text != NULL && strstr(text, "populated 1") != NULL;
	free(text);
	return pop;
}

int
tree_signal(const char *name, pid_t root, int sig)
{
	char *path;
	int rc;

	(void)root;
	if (base == NULL || !tree_name_valid(name))
		return -1;
	if (!tree_populated(name))
		return 0;
	if (sig != SIGKILL)
		return tree_signal_each(name, sig);
	path = tree_path(name, "cgroup.kill");
	rc = tree_write(path, "1");
	if (rc == -1 && errno != ENOENT)
		log_warn("%s", path);
	free(path);
	return rc == 0 ? 1 : tree_signal_each(name, sig);
}

int
tree_remove(const char *name)
{
	char *dir;
	int rc;

	if (base == NULL || !tree_name_valid(name))
		return -1;
	dir = tree_path(name, NULL);
	rc = rmdir(dir);
	if (rc == -1 && errno == ENOENT)
		rc = 0;
	free(dir);
	return rc;
}

static void
tree_nap(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};

	nanosleep(&ts, NULL);
}

int
tree_recover(void)
{
	struct dirent *de;
	DIR *d;
	int found = 0, tries;

	if (base == NULL || (d = opendir(base)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_DIR || !tree_name_valid(de->d_name))
			continue;
		if (tree_signal(de->d_name, -1, SIGKILL) > 0) {
			log_info("process tree %s left by a previous daemon: killed", de->d_name);
			found++;
		}
		for (tries = 0; tries < 200 && tree_populated(de->d_name); tries++)
			tree_nap(10);
		if (tree_remove(de->d_name) == -1)
			log_warn("cannot remove process tree %s/%s", base, de->d_name);
	}
	closedir(d);
	return found;
}
