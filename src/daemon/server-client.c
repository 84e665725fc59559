/*
 * server-client.c -- a connection's bytes: framing, back-pressure, output.
 *
 * Bytes arrive in the client's input buffer (on_read); each complete line
 * goes to the request path (server_request_line, server-request.c), and a
 * line longer than --max-line costs its sender the connection, after an
 * error line that says so.  Nothing a client sends costs anyone else
 * anything.
 *
 * Output is appended to the client's buffer (server_client_write) and
 * written once per loop iteration (server_flush_all, from the loop hook in
 * server.c), so a burst of pipelined requests is answered with one write.
 * One uv_write is in flight per client at most; what accumulates meanwhile
 * waits in `out`.
 *
 * Back-pressure: while a client's unsent output (queued, in flight, or
 * held for the commit) is at the pause threshold (pause_bytes: large while
 * the total is low, 128 KiB once it is not), its next request is not read;
 * it resumes when the output drains (client_drained).  A client that
 * pipelines and never reads holds one threshold and one reply.  The client
 * list and the output total of all clients live here; server-int.h shares
 * them with the server's other files.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/server-int.h"
#include "daemon/server.h"

struct client *server_clients;
int server_nclients;
size_t server_out_total;
static struct client *dirty; /* clients with output to write this iteration */

static void client_flush(struct client *);
static void client_drained(struct client *);
static void on_alloc(uv_handle_t *, size_t, uv_buf_t *);
static void on_read(uv_stream_t *, ssize_t, const uv_buf_t *);

/* Output held for c: queued, being written, or waiting for the commit. */
size_t
server_client_pending(const struct client *c)
{
	return buf_used(&c->out) + buf_used(&c->wbuf) + c->held;
}

/*
 * Back-pressure thresholds.  A client's requests are not read while its
 * unsent output is at --max-output (where it used to be dropped), or at
 * the small threshold (128 KiB, or a quarter of --max-output when that is
 * less) once all clients together hold a quarter of --max-output-total:
 * `pressure`, lifted by the loop hook when the total falls below an
 * eighth (the gap keeps clients that never read from being resumed, to
 * fill up again, each time a reader drains a little).  A replay page always
 * stops at the small threshold.
 */
static int pressure;

size_t
server_client_small_bytes(void)
{
	size_t q = D.cfg.max_output / 4;

	return q < 128 * 1024 ? q : 128 * 1024;
}

static size_t
pause_bytes(void)
{
	if (pressure || server_out_total >= D.cfg.max_output_total / 4) {
		pressure = 1;
		return server_client_small_bytes();
	}
	return D.cfg.max_output;
}

int
server_client_count(void)
{
	return server_nclients;
}

int
cmd_client_count(void)
{
	return server_nclients;
}

int
server_output_pending(void)
{
	struct client *c;

	for (c = server_clients; c != NULL; c = c->next)
		if (!c->closing && (buf_used(&c->out) > 0 || c->writing))
			return 1;
	return 0;
}

void
server_client_mark_dirty(struct client *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		c->next_dirty = dirty;
		dirty = c;
	}
}

void
server_client_write(struct client *c, const char *p, size_t n)
{
	if (c->closing)
		return;
	buf_add(&c->out, p, n);
	server_out_total += n;
	server_client_mark_dirty(c);
}

/* Back-pressure: read no more of c's requests until its output drains. */
static void
client_pause(struct client *c)
{
	if (c->paused || c->detached)
		return;
	c->paused = 1;
	c->partial_since = 0; /* it is our turn, not the client's */
	uv_read_stop((uv_stream_t *)&c->pipe);
}

/* Note when c's unfinished line began (consumed: a line was taken in this read). */
static void
client_note_partial(struct client *c, int consumed)
{
	if (buf_used(&c->in) == 0 || c->paused)
		c->partial_since = 0;
	else if (consumed || c->partial_since == 0)
		c->partial_since = uv_now(D.loop);
}

void
server_client_input(struct client *c)
{
	char *p, *nl;
	size_t n;
	int consumed = 0;

	while (!c->closing && !c->close_after_flush) {
		if (!c->detached && server_client_pending(c) >= pause_bytes()) {
			client_pause(c);
			return;
		}
		p = buf_head(&c->in);
		n = buf_used(&c->in);
		nl = memchr(p, '\n', n < D.cfg.max_line + 1 ? n : D.cfg.max_line + 1);
		if (nl == NULL) {
			if (n > D.cfg.max_line) {
				server_request_error(
				        c, NULL, ERR_BAD_REQUEST,
				        "line exceeds %zu bytes; closing the connection",
				        D.cfg.max_line);
				c->close_after_flush = 1;
				if (!c->detached)
					uv_read_stop((uv_stream_t *)&c->pipe);
				buf_reset(&c->in);
			}
			client_note_partial(c, consumed);
			return;
		}
		server_request_line(c, p, (size_t)(nl - p));
		buf_consume(&c->in, (size_t)(nl - p) + 1);
		consumed = 1;
	}
}

/*
 * c's output went below the pause threshold: read its requests again (and
 * run those already read), and put it back in the replay queue if it is
 * catching up.
 */
static void
client_drained(struct client *c)
{
	if (c->closing)
		return;
	if (c->replaying && server_client_pending(c) < server_client_small_bytes())
		server_replay_enqueue(c);
	if (c->paused && server_client_pending(c) < pause_bytes()) {
		c->paused = 0;
		if (!c->close_after_flush)
			uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
		server_client_input(c);
	}
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct client *c = h->data;

	(void)suggested;
	b->base = buf_reserve(&c->in, 65536);
	b->len = 65536;
}

void
server_client_read_start(struct client *c)
{
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct client *c = s->data;

	(void)b;
	if (n < 0) {
		server_client_close(c, n == UV_EOF ? NULL : uv_strerror((int)n));
		return;
	}
	c->in.len += (size_t)n;
	server_client_input(c);
}

void
server_client_free(struct client *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->wbuf);
	json_decref(c->topics);
	free(c->bound_agent);
	free(c);
}

void
server_client_on_closed(uv_handle_t *h)
{
	server_client_free(h->data);
}

void
server_client_close(struct client *c, const char *why)
{
	struct client **pp;

	if (c->closing)
		return;
	c->closing = 1;
	if (why != NULL)
		log_debug("client pid %ld closed: %s", (long)c->cred.pid, why);
	server_out_total -= server_client_pending(c);
	c->held = 0;
	c->replaying = 0;
	server_replay_remove(c);
	server_request_forget_client(c);
	for (pp = &dirty; *pp != NULL; pp = &(*pp)->next_dirty) {
		if (*pp == c) {
			*pp = c->next_dirty;
			break;
		}
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		server_clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->channel == 0)
		server_nclients--;
	if (!c->detached)
		uv_close((uv_handle_t *)&c->pipe, server_client_on_closed);
	/* A detached client is freed by server_client_free_detached. */
}

static void
on_write(uv_write_t *w, int status)
{
	struct client *c = w->data;

	c->writing = 0;
	if (!c->closing)
		server_out_total -= buf_used(&c->wbuf);
	buf_reset(&c->wbuf);
	if (c->wbuf.cap > 65536)
		buf_free(&c->wbuf); /* do not keep a large reply's buffer */
	if (c->closing)
		return;
	if (status < 0) {
		server_client_close(c, uv_strerror(status));
		return;
	}
	server_replay_kick();
	client_flush(c);
}

static void
client_flush(struct client *c)
{
	uv_buf_t ub;
	int n;

	if (c->closing || c->writing || c->detached)
		return;
	if (buf_used(&c->out) > 0) {
		ub = uv_buf_init(buf_head(&c->out), (unsigned int)buf_used(&c->out));
		n = uv_try_write((uv_stream_t *)&c->pipe, &ub, 1);
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			server_out_total -= (size_t)n;
		} else if (n < 0 && n != UV_EAGAIN) {
			server_client_close(c, uv_strerror(n));
			return;
		}
	}
	if (buf_used(&c->out) > 0) {
		/* Swap the rest into wbuf and let libuv finish it. */
		struct buf t = c->wbuf;
		c->wbuf = c->out;
		c->out = t;
		buf_reset(&c->out);
		ub = uv_buf_init(buf_head(&c->wbuf), (unsigned int)buf_used(&c->wbuf));
		c->wreq.data = c;
		c->writing = 1;
		if (uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &ub, 1, on_write) < 0) {
			c->writing = 0;
			server_client_close(c, "write failed");
			return;
		}
		client_drained(c);
		return;
	}
	if (c->close_after_flush) {
		server_client_close(c, "closed after error");
		return;
	}
	client_drained(c);
}

void
server_flush_all(void)
{
	struct client *c;

	while ((c = dirty) != NULL) {
		dirty = c->next_dirty;
		c->dirty = 0;
		client_flush(c);
	}
}

/* The total fell back below an eighth of its cap: clients paused at the small threshold resume. */
void
server_client_pressure_relief(void)
{
	struct client *c, *next;

	if (!pressure || server_out_total >= D.cfg.max_output_total / 8)
		return;
	pressure = 0;
	for (c = server_clients; c != NULL; c = next) {
		next = c->next;
		if (c->paused)
			client_drained(c);
	}
}

void
server_client_link(struct client *c)
{
	c->next = server_clients;
	if (server_clients != NULL)
		server_clients->prev = c;
	server_clients = c;
	if (c->channel == 0) /* the limits are the socket's: an agent's channel is its run's */
		server_nclients++;
}
