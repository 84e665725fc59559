/*
 * dlink.c -- one queue of daemon calls, run on the thread pool one by one.
 *
 * Thread discipline: the worker touches only the running call and the
 * client connection (l->conn); the loop thread touches the queue.  Only one
 * work item exists at a time, and libuv orders work and after_work, so the
 * connection is never used by two threads at once.
 */
#include "mcp/dlink.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common/util.h"
#include "common/xmalloc.h"

struct dlink_call {
	struct dlink_call *next;
	char *cmd;
	json_t *args;
	dlink_cb cb;
	void *arg;
	int rc;
	json_t *result;
	struct client_error err;
};

struct dlink {
	uv_loop_t *loop;
	char *socket;
	int timeout_ms;
	struct client *conn; /* worker's */
	struct dlink_call *head, *tail;
	struct dlink_call *running;
	uv_work_t work;
	int freeing;
};

struct dlink *
dlink_new(uv_loop_t *loop, const char *socket, int timeout_ms)
{
	struct dlink *l = xcalloc(1, sizeof *l);

	l->loop = loop;
	l->socket = xstrdup(socket);
	l->timeout_ms = timeout_ms;
	l->work.data = l;
	return l;
}

const char *
dlink_socket(const struct dlink *l)
{
	return l->socket;
}

int
dlink_busy(const struct dlink *l)
{
	return l->running != NULL || l->head != NULL;
}

static void
dlink_call_free(struct dlink_call *c)
{
	free(c->cmd);
	json_decref(c->args);
	json_decref(c->result);
	free(c);
}

/* Worker: a connection that the daemon has closed since the last call is dropped. */
static void
dlink_check_conn(struct dlink *l)
{
	struct pollfd p;
	char b;

	if (l->conn == NULL)
		return;
	p.fd = l->conn->fd;
	p.events = POLLIN;
	if (poll(&p, 1, 0) == 0)
		return;
	if ((p.revents & POLLIN) && recv(p.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
		return;
	client_close(l->conn);
	l->conn = NULL;
}

/* Worker: connect if needed; 0, or -1 with c->err filled. */
static int
dlink_connect(struct dlink *l, struct dlink_call *c)
{
	struct timeval tv;

	dlink_check_conn(l);
	if (l->conn != NULL)
		return 0;
	if ((l->conn = client_connect(l->socket)) == NULL) {
		c->rc = -2;
		snprintf(c->err.code, sizeof c->err.code, "unreachable");
		snprintf(c->err.message, sizeof c->err.message, "connect: %s", strerror(errno));
		return -1;
	}
	tv.tv_sec = l->timeout_ms / 1000;
	tv.tv_usec = (l->timeout_ms % 1000) * 1000;
	setsockopt(l->conn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(l->conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return 0;
}

static void
dlink_work(uv_work_t *w)
{
	struct dlink *l = w->data;
	struct dlink_call *c = l->running;
	int64_t start = mono_ms();

	if (dlink_connect(l, c) == -1)
		return;
	c->rc = client_call(l->conn, c->cmd, c->args, &c->result, &c->err);
	if (c->rc == -2) {
		if (mono_ms() - start >= l->timeout_ms)
			snprintf(c->err.message, sizeof c->err.message, "no answer within %d ms",
			         l->timeout_ms);
		client_close(l->conn);
		l->conn = NULL;
	}
}

static void dlink_after(uv_work_t *w, int status);

static void
dlink_next(struct dlink *l)
{
	if (l->running != NULL || l->head == NULL || l->freeing)
		return;
	l->running = l->head;
	l->head = l->head->next;
	if (l->head == NULL)
		l->tail = NULL;
	uv_queue_work(l->loop, &l->work, dlink_work, dlink_after);
}

static void
dlink_destroy(struct dlink *l)
{
	struct dlink_call *c;

	while ((c = l->head) != NULL) {
		l->head = c->next;
		dlink_call_free(c);
	}
	client_close(l->conn);
	free(l->socket);
	free(l);
}

static void
dlink_after(uv_work_t *w, int status)
{
	struct dlink *l = w->data;
	struct dlink_call *c = l->running;
	json_t *result = c->result;

	l->running = NULL;
	c->result = NULL;
	if (l->freeing) {
		json_decref(result);
		dlink_call_free(c);
		dlink_destroy(l);
		return;
	}
	c->cb(c->arg, c->rc, result, &c->err);
	dlink_call_free(c);
	dlink_next(l);
}

void
dlink_call(struct dlink *l, const char *cmd, json_t *args, dlink_cb cb, void *arg)
{
	struct dlink_call *c = xcalloc(1, sizeof *c);

	c->cmd = xstrdup(cmd);
	c->args = args;
	c->cb = cb;
	c->arg = arg;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	dlink_next(l);
}

void
dlink_free(struct dlink *l)
{
	if (l == NULL)
		return;
	if (l->running != NULL) {
		l->freeing = 1;
		return;
	}
	dlink_destroy(l);
}
