/*
 * spawn-bare.c -- the reference for bench/spawn.py: posix_spawn a program
 * with stdout on a pipe, stdin on /dev/null and its own process group (as
 * the daemon does), and time until a line containing MARK arrives on its
 * stdout -- the agent's first event.  Repeats N times, reaping each child,
 * and prints one latency per line in microseconds.
 *
 * usage: spawn-bare N MARK PROGRAM [ARG...]
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Read from fd until MARK has been seen; 0 when it was, -1 at EOF. */
static int
wait_mark(int fd, const char *mark)
{
	static char buf[1 << 16];
	size_t have = 0;
	ssize_t n;

	while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, mark) != NULL)
			return 0;
		if (have > sizeof buf / 2)
			have = 0;
	}
	return -1;
}

static int
one(char **argv, const char *mark, double *us)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int p[2], st;
	pid_t pid;
	double t0;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	t0 = now_us();
	if (posix_spawn(&pid, argv[0], &fa, &attr, argv, environ) != 0)
		return -1;
	close(p[1]);
	st = wait_mark(p[0], mark);
	*us = now_us() - t0;
	close(p[0]);
	waitpid(pid, NULL, 0);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return st;
}

int
main(int argc, char **argv)
{
	int i, n;
	double us;

	if (argc < 4 || (n = atoi(argv[1])) <= 0) {
		fprintf(stderr, "usage: spawn-bare N MARK PROGRAM [ARG...]\n");
		return 2;
	}
	for (i = 0; i < n; i++) {
		if (one(argv + 3, argv[2], &us) == -1) {
			fprintf(stderr, "spawn-bare: %s did not print %s\n", argv[3], argv[2]);
			return 1;
		}
		printf("%.1f\n", us);
	}
	return 0;
}
