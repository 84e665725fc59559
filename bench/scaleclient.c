/*
 * scaleclient.c -- the load client of bench/scale.py (`make bench-scale`).
 *
 * lineclient.c runs for a time with one request in flight; building a
 * board of a million tasks needs the opposite: an exact number of
 * requests, many in flight on each connection (pipelined), over several
 * connections, so that the daemon, not the round trip, sets the rate.  And
 * the per-command latencies need exact arguments (which task ids a claim,
 * a complete or a release touches), so every request's "%d" is a number
 * computed from its index.
 *
 *   scaleclient SOCKET CONNS DEPTH COUNT START STEP RANGE LINE
 *
 * COUNT requests in all, request i (0-based) going to connection i % CONNS,
 * each connection keeping at most DEPTH requests in flight.  LINE (no
 * newline; one is added) may hold "%d" once: request i puts
 * START + (i * STEP) % RANGE there (STEP 1: START, START+1, ...; a large
 * STEP prime to RANGE spreads reads over the board so no memo answers).
 * A reply is one line; one whose envelope says "ok":false counts as failed
 * (its first bytes go to stderr once).  Latency is from the request's
 * write to its reply's last byte (with DEPTH > 1 it includes the queue).
 * Prints one line of JSON (the exit status is 0 even when requests failed;
 * the caller reads "failed"):
 * {"requests", "seconds", "rps", "p50_us", "p99_us", "max_us", "failed"}.
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

#define HIST_US 1000000 /* latencies up to 1 s at 1 us resolution, the rest in the last bucket */
#define RBUF    (1 << 20)
#define HEAD    64 /* bytes of a reply's envelope kept to judge "ok" */

struct conn {
	pthread_t th;
	int id;
	long long requests, failed, max_us;
	unsigned *hist;
};

static const char *sock_path;
static char *line_head, *line_tail; /* LINE split at its "%d" (tail NULL: none) */
static long long count, start, step, range;
static int conns, depth;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static int err_shown;

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

/* Append request i's line (with its newline) to out; returns its length. */
static int
format_request(char *out, size_t cap, long long i)
{
	int n;

	if (line_tail != NULL)
		n = snprintf(out, cap - 1, "%s%lld%s", line_head, start + (i * step) % range,
		             line_tail);
	else
		n = snprintf(out, cap - 1, "%s", line_head);
	out[n++] = '\n';
	return n;
}

/* One reply's envelope head has arrived complete: judge it. */
static void
reply_done(struct conn *c, const char *head, size_t n, double sent)
{
	long us = (long)((now_s() - sent) * 1e6);

	if (memmem(head, n, "\"ok\":false", 10) != NULL) {
		c->failed++;
		pthread_mutex_lock(&err_lock);
		if (!err_shown++)
			fprintf(stderr, "scaleclient: a request failed: %.*s\n", (int)n, head);
		pthread_mutex_unlock(&err_lock);
	}
	if (us > c->max_us)
		c->max_us = us;
	c->hist[us < HIST_US ? us : HIST_US - 1]++;
	c->requests++;
}

static void *
conn_run(void *arg)
{
	struct conn *c = arg;
	char *out = malloc((size_t)depth * 4096 + 65536), *in = malloc(RBUF), head[HEAD];
	double *sent = calloc((size_t)depth, sizeof *sent);
	long long next = c->id, inflight = 0, done_ix = 0, send_ix = 0;
	size_t headlen = 0, used;
	int fd = connect_unix(sock_path);
	ssize_t r;
	char *p, *nl;

	if (fd == -1) {
		perror(sock_path);
		exit(1);
	}
	for (;;) {
		/* Fill the pipe up to DEPTH, in one write. */
		used = 0;
		while (inflight < depth && next < count && used < (size_t)depth * 4096) {
			used += (size_t)format_request(out + used, 65536, next);
			sent[send_ix++ % depth] = now_s();
			inflight++;
			next += conns;
		}
		if (used > 0 && write_all(fd, out, used) == -1) {
			perror("scaleclient: write");
			exit(1);
		}
		if (inflight == 0)
			break;
		if ((r = read(fd, in, RBUF)) <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "scaleclient: connection lost\n");
			exit(1);
		}
		for (p = in; p < in + r; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(in + r - p));
			size_t take = (size_t)((nl != NULL ? nl : in + r) - p);
			if (headlen < HEAD) {
				size_t k = take < HEAD - headlen ? take : HEAD - headlen;
				memcpy(head + headlen, p, k);
				headlen += k;
			}
			if (nl == NULL)
				break;
			reply_done(c, head, headlen, sent[done_ix++ % depth]);
			headlen = 0;
			inflight--;
		}
	}
	close(fd);
	free(out);
	free(in);
	free(sent);
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
	struct conn *cs;
	unsigned *hist;
	long long reqs = 0, failed = 0, max_us = 0;
	double t0, secs;
	int i, j;

	if (argc != 9) {
		fprintf(stderr,
		        "usage: scaleclient SOCKET CONNS DEPTH COUNT START STEP RANGE LINE\n");
		return 2;
	}
	sock_path = argv[1];
	conns = atoi(argv[2]);
	depth = atoi(argv[3]);
	count = atoll(argv[4]);
	start = atoll(argv[5]);
	step = atoll(argv[6]);
	range = atoll(argv[7]);
	if (conns < 1 || depth < 1 || count < 0 || step < 0 || range < 1) {
		fprintf(stderr, "scaleclient: CONNS, DEPTH and RANGE must be positive\n");
		return 2;
	}
	line_head = strdup(argv[8]);
	if ((line_tail = strstr(line_head, "%d")) != NULL) {
		*line_tail = '\0';
		line_tail += 2;
	}
	cs = calloc((size_t)conns, sizeof *cs);
	hist = calloc(HIST_US, sizeof *hist);
	t0 = now_s();
	for (i = 0; i < conns; i++) {
		cs[i].id = i;
		cs[i].hist = calloc(HIST_US, sizeof *cs[i].hist);
		pthread_create(&cs[i].th, NULL, conn_run, &cs[i]);
	}
	for (i = 0; i < conns; i++) {
		pthread_join(cs[i].th, NULL);
		reqs += cs[i].requests;
		failed += cs[i].failed;
		if (cs[i].max_us > max_us)
			max_us = cs[i].max_us;
		for (j = 0; j < HIST_US; j++)
			hist[j] += cs[i].hist[j];
		free(cs[i].hist);
	}
	secs = now_s() - t0;
	printf("{\"requests\": %lld, \"seconds\": %.3f, \"rps\": %.0f, \"p50_us\": %ld, "
	       "\"p99_us\": %ld, \"max_us\": %lld, \"failed\": %lld}\n",
	       reqs, secs, secs > 0 ? (double)reqs / secs : 0.0, percentile(hist, reqs, 0.50),
	       percentile(hist, reqs, 0.99), max_us, failed);
	free(hist);
	free(line_head);
	free(cs);
	return 0;
}
