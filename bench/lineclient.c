/*
 * lineclient.c -- the one load generator of `make bench`.
 *
 * N threads, each with its own Unix-socket connection, send one request
 * line and wait for its reply (one request in flight per connection), for
 * a fixed time or until the server refuses.  The same code drives the
 * daemon, the raw epoll echo server and redis-server, so the ratios
 * compare servers and not clients.  A reply is complete after `nl`
 * newlines (1 for newline-JSON and the echo, 2 for a redis bulk string).
 *
 *   lineclient SOCKET CLIENTS SECONDS NL LINE [--until-fail]
 *
 * LINE (without its newline; one is added) may hold "%d" once: it is replaced by a per-request
 * counter (so task-create titles differ); with LINECLIENT_CYCLE=N in the environment the counter
 * runs 1..N round and round instead (task-show of N existing tasks, one after another).
 * --until-fail stops a thread at the first reply holding "ok":false (task-claim until the queue is
 * empty); SECONDS is then only a safety limit.  Prints one line of JSON:
 * {"clients", "requests", "seconds", "rps", "p50_us", "p99_us", "failed"}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HIST_US                                                                                    \
	100000 /* latencies up to 100 ms at 1 us resolution, the rest in the last bucket           \
	        */

struct worker {
	pthread_t th;
	int id;
	long long requests;
	long long failed;
	unsigned *hist;
};

static const char *sock_path;
static char *line_head, *line_tail; /* LINE split at its "%d" (tail NULL: none) */
static long long cycle;             /* LINECLIENT_CYCLE: the counter runs 1..cycle */
static int nl_per_reply, until_fail;
static double deadline;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd == -1)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until nl newlines have arrived; returns the reply length or -1. */
static ssize_t
read_reply(int fd, char *buf, size_t cap, int nl)
{
	size_t have = 0;
	ssize_t r;
	int seen = 0;
	char *p;

	while (seen < nl) {
		if (have == cap)
			return -1;
		if ((r = read(fd, buf + have, cap - have)) <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		for (p = buf + have; p < buf + have + r; p++)
			seen += *p == '\n';
		have += (size_t)r;
	}
	return (ssize_t)have;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char *line = malloc(65536), *reply = malloc(1 << 20);
	int fd = connect_unix(sock_path), n;
	long long k = 0;
	ssize_t rn;
	double t0, t1;
	long us;

	if (fd == -1) {
		perror(sock_path);
		exit(1);
	}
	while ((t0 = now_s()) < deadline) {
		if (line_tail != NULL)
			n = snprintf(line, 65534, "%s%lld%s", line_head,
			             cycle > 0 ? 1 + (w->id * 7919LL + k++) % cycle
			                       : w->id * 10000000LL + k++,
			             line_tail);
		else
			n = snprintf(line, 65534, "%s", line_head);
		line[n++] = '\n';
		if (write_all(fd, line, (size_t)n) == -1 ||
		    (rn = read_reply(fd, reply, 1 << 20, nl_per_reply)) < 0) {
			fprintf(stderr, "lineclient: connection lost\n");
			exit(1);
		}
		t1 = now_s();
		if (memmem(reply, (size_t)rn, "\"ok\":false", 10) != NULL) {
			w->failed++;
			if (until_fail)
				break;
		}
		us = (long)((t1 - t0) * 1e6);
		w->hist[us < HIST_US ? us : HIST_US - 1]++;
		w->requests++;
	}
	close(fd);
	free(line);
	free(reply);
	return NULL;
}

static long
percentile(unsigned *hist, long long total, double p)
{
	long long want = (long long)(p * (double)total), acc = 0;
	long i;

	for (i = 0; i < HIST_US; i++)
		if ((acc += hist[i]) > want)
			return i;
	return HIST_US;
}

int
main(int argc, char **argv)
{
	struct worker *ws;
	unsigned *hist;
	long long reqs = 0, failed = 0;
	double t0, secs;
	int clients, i, j;

	if (argc < 6) {
		fprintf(stderr,
		        "usage: lineclient SOCKET CLIENTS SECONDS NL LINE [--until-fail]\n");
		return 2;
	}
	sock_path = argv[1];
	clients = atoi(argv[2]);
	nl_per_reply = atoi(argv[4]);
	line_head = strdup(argv[5]);
	if ((line_tail = strstr(line_head, "%d")) != NULL) {
		*line_tail = '\0';
		line_tail += 2;
	}
	if (getenv("LINECLIENT_CYCLE") != NULL)
		cycle = atoll(getenv("LINECLIENT_CYCLE"));
	until_fail = argc > 6 && strcmp(argv[6], "--until-fail") == 0;
	ws = calloc((size_t)clients, sizeof *ws);
	hist = calloc(HIST_US, sizeof *hist);
	t0 = now_s();
	deadline = t0 + atof(argv[3]);
	for (i = 0; i < clients; i++) {
		ws[i].id = i;
		ws[i].hist = calloc(HIST_US, sizeof *ws[i].hist);
		pthread_create(&ws[i].th, NULL, worker_run, &ws[i]);
	}
	for (i = 0; i < clients; i++) {
		pthread_join(ws[i].th, NULL);
		reqs += ws[i].requests;
		failed += ws[i].failed;
		for (j = 0; j < HIST_US; j++)
			hist[j] += ws[i].hist[j];
		free(ws[i].hist);
	}
	secs = now_s() - t0;
	printf("{\"clients\": %d, \"requests\": %lld, \"seconds\": %.3f, \"rps\": %.0f, "
	       "\"p50_us\": %ld, \"p90_us\": %ld, \"p99_us\": %ld, \"p999_us\": %ld, "
	       "\"failed\": %lld}\n",
	       clients, reqs, secs, (double)reqs / secs, percentile(hist, reqs, 0.50),
	       percentile(hist, reqs, 0.90), percentile(hist, reqs, 0.99),
	       percentile(hist, reqs, 0.999), failed);
	free(hist);
	free(line_head);
	free(ws);
	return 0;
}
