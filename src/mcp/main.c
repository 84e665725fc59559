/*
 * main.c -- colibri-mcp: options, stdio, the loop.
 *
 * stdout belongs to the protocol: nothing but whole JSON-RPC lines is ever
 * written there, each one with a single write loop (no stdio buffering),
 * so a message is on the wire as soon as it is produced.  Logs go to
 * stderr.  stdin is read through libuv whatever it is (a pipe, a socket, a
 * terminal, or a file such as /dev/null), and its end -- or SIGTERM/SIGINT
 * -- stops the external servers and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "mcp/hostcfg.h"
#include "mcp/rpc.h"
#include "mcp/server.h"

#define MCP_TIMEOUT_DEFAULT_MS 30000
#define MCP_SETTLE_DEFAULT_MS  15000
#define MCP_GRACE_MS           2000

static struct {
	uv_loop_t *loop;
	struct mcp_server *srv;
	struct rpc_lines lines;
	union {
		uv_pipe_t pipe;
		uv_tty_t tty;
	} in;
	int in_stream; /* in is a stream handle (else: file reads) */
	uv_fs_t fs_req;
	char fs_buf[65536];
	uv_signal_t sig_term, sig_int;
	int stopping;
	int out_dead;
} M;

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: colibri-mcp [--socket PATH] [--config FILE] [--log-level LEVEL]\n"
	            "                   [--timeout MS] [--settle MS] [--max-line BYTES]\n"
	            "                   [--allow-spawn]\n"
	            "       colibri-mcp [--allow-spawn] --list-size | --version\n");
}

/* Write all of line to stdout; waits (poll) if stdout was made non-blocking. */
static void
mcp_stdout(void *arg, const char *line, size_t len)
{
	struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
	ssize_t w;

	while (len > 0 && !M.out_dead) {
		w = write(STDOUT_FILENO, line, len);
		if (w > 0) {
			line += w;
			len -= (size_t)w;
		} else if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			poll(&p, 1, 1000);
		} else if (w == -1 && errno != EINTR) {
			log_warn("stdout");
			M.out_dead = 1;
		}
	}
}

static void
mcp_done(void *arg)
{
	uv_stop(M.loop);
}

static void
mcp_stop(const char *why)
{
	if (M.stopping)
		return;
	M.stopping = 1;
	log_info("%s; stopping", why);
	if (M.in_stream && !uv_is_closing((uv_handle_t *)&M.in))
		uv_close((uv_handle_t *)&M.in, NULL);
	uv_close((uv_handle_t *)&M.sig_term, NULL);
	uv_close((uv_handle_t *)&M.sig_int, NULL);
	mcp_server_shutdown(M.srv, MCP_GRACE_MS, mcp_done, NULL);
}

static void
mcp_input(const char *data, size_t n, int eof)
{
	const char *line;
	size_t len;
	int r;

	rpc_lines_feed(&M.lines, data, n);
	while (!M.stopping && (r = rpc_lines_next(&M.lines, eof, &line, &len)) != 0) {
		if (r == -1)
			mcp_server_line_too_long(M.srv);
		else
			mcp_server_line(M.srv, line, len);
	}
	if (eof)
		mcp_stop("end of input");
}

static void
mcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	b->base = M.fs_buf;
	b->len = sizeof M.fs_buf;
}

static void
mcp_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	if (n > 0)
		mcp_input(b->base, (size_t)n, 0);
	else if (n < 0) {
		if (n != UV_EOF)
			log_warnx("stdin: %s", uv_strerror((int)n));
		mcp_input(NULL, 0, 1);
	}
}

static void mcp_fs_read(void);

static void
mcp_on_fs_read(uv_fs_t *req)
{
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	if (n > 0) {
		mcp_input(M.fs_buf, (size_t)n, 0);
		if (!M.stopping)
			mcp_fs_read();
		return;
	}
	if (n < 0)
		log_warnx("stdin: %s", uv_strerror((int)n));
	mcp_input(NULL, 0, 1);
}

static void
mcp_fs_read(void)
{
	uv_buf_t b = uv_buf_init(M.fs_buf, sizeof M.fs_buf);

	uv_fs_read(M.loop, &M.fs_req, STDIN_FILENO, &b, 1, -1, mcp_on_fs_read);
}

static void
mcp_open_stdin(void)
{
	uv_handle_type t = uv_guess_handle(STDIN_FILENO);
	int rc = -1;

	if (t == UV_NAMED_PIPE || t == UV_TCP) {
		if ((rc = uv_pipe_init(M.loop, &M.in.pipe, 0)) == 0)
			rc = uv_pipe_open(&M.in.pipe, STDIN_FILENO);
	} else if (t == UV_TTY) {
		rc = uv_tty_init(M.loop, &M.in.tty, STDIN_FILENO, 1);
	}
	if (rc == 0 && uv_read_start((uv_stream_t *)&M.in, mcp_alloc, mcp_on_read) == 0) {
		M.in_stream = 1;
		return;
	}
	mcp_fs_read();
}

static void
mcp_on_signal(uv_signal_t *h, int sig)
{
	mcp_stop(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

struct mcp_args {
	const char *socket, *config;
	enum log_level level;
	int timeout_ms, settle_ms, list_size, allow_spawn;
	size_t max_line;
};

static long
mcp_number(const char *s, const char *opt, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "colibri-mcp: %s wants a number from %ld to %ld\n", opt, min, max);
		exit(EXIT_USAGE);
	}
	return v;
}

static const struct option mcp_opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"settle", required_argument, NULL, 'S'},
                                         {"max-line", required_argument, NULL, 'm'},
                                         {"list-size", no_argument, NULL, 'L'},
                                         {"allow-spawn", no_argument, NULL, 'A'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};

/* An option that sets a field of a (a bad value is a usage error); 0 if ch is not one. */
static int
mcp_set_opt(struct mcp_args *a, int ch, const char *arg)
{
	switch (ch) {
	case 's':
		a->socket = arg;
		break;
	case 'c':
		a->config = arg;
		break;
	case 'l':
		if (log_parse_level(arg, &a->level) == -1) {
			fprintf(stderr, "colibri-mcp: log level: error, warn, info or debug\n");
			exit(EXIT_USAGE);
		}
		break;
	case 't':
		a->timeout_ms = (int)mcp_number(arg, "--timeout", 1, 3600000);
		break;
	case 'S':
		a->settle_ms = (int)mcp_number(arg, "--settle", 0, 600000);
		break;
	case 'm':
		a->max_line = (size_t)mcp_number(arg, "--max-line", 1024, 1L << 30);
		break;
	case 'L':
		a->list_size = 1;
		break;
	case 'A':
		a->allow_spawn = 1;
		break;
	default:
		return 0;
	}
	return 1;
}

static void
mcp_parse_args(int argc, char **argv, struct mcp_args *a)
{
	int ch;

	memset(a, 0, sizeof *a);
	a->level = LOG_LEVEL_INFO;
	a->timeout_ms = MCP_TIMEOUT_DEFAULT_MS;
	a->settle_ms = MCP_SETTLE_DEFAULT_MS;
	a->max_line = RPC_MAX_LINE_DEFAULT;
	while ((ch = getopt_long(argc, argv, "s:c:l:h", mcp_opts, NULL)) != -1) {
		if (mcp_set_opt(a, ch, optarg))
			continue;
		switch (ch) {
		case 'V':
			printf("colibri-mcp %s\n", COLIBRI_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
}

static int
mcp_list_size(int allow_spawn)
{
	size_t len;
	char *line = mcp_server_tools_list_line(allow_spawn, &len);

	printf("%zu\n", len - 1);
	free(line);
	return 0;
}

static void
mcp_start(const struct mcp_args *a)
{
	struct mcp_server_opts o;
	struct hostcfg cfg;
	char *cause = NULL;

	memset(&o, 0, sizeof o);
	o.socket = a->socket != NULL ? a->socket : client_default_socket();
	o.daemon_timeout_ms = a->timeout_ms;
	o.max_line = a->max_line;
	o.settle_ms = a->settle_ms;
	o.allow_spawn = a->allow_spawn;
	o.send = mcp_stdout;
	if (a->config != NULL) {
		if (hostcfg_load(a->config, &cfg, &cause) == -1)
			fatalx("%s", cause);
		o.cfg = &cfg;
	}
	if ((M.srv = mcp_server_new(M.loop, &o, &cause)) == NULL)
		fatalx("%s", cause);
	if (o.cfg != NULL)
		hostcfg_clear(&cfg);
	log_info("colibri-mcp %s: daemon at %s", COLIBRI_VERSION, o.socket);
}

static void
mcp_close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int
main(int argc, char **argv)
{
	struct mcp_args a;

	mcp_parse_args(argc, argv, &a);
	if (a.list_size)
		return mcp_list_size(a.allow_spawn);
	if (log_init("colibri-mcp", a.level, NULL) == -1)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	M.loop = uv_default_loop();
	rpc_lines_init(&M.lines, a.max_line);
	mcp_start(&a);
	uv_signal_init(M.loop, &M.sig_term);
	uv_signal_start(&M.sig_term, mcp_on_signal, SIGTERM);
	uv_signal_init(M.loop, &M.sig_int);
	uv_signal_start(&M.sig_int, mcp_on_signal, SIGINT);
	mcp_open_stdin();
	uv_run(M.loop, UV_RUN_DEFAULT);
	/* A daemon call stuck in the thread pool or a child that would not die: just leave. */
	if (!mcp_server_clean(M.srv))
		_exit(0);
	mcp_server_free(M.srv);
	rpc_lines_free(&M.lines);
	uv_walk(M.loop, mcp_close_walk, NULL);
	uv_run(M.loop, UV_RUN_DEFAULT);
	uv_loop_close(M.loop);
	log_close();
	return 0;
}
