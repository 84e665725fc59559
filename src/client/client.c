/*
 * client.c -- blocking client of the daemon's newline-JSON protocol.
 * client.h says how it finds the daemon (a socket path, or the agent
 * channel an agent's run inherits).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/client.h"
#include "common/paths.h"
#include "common/proto.h"
#include "common/xmalloc.h"

const char *
client_default_socket(void)
{
	const char *s = getenv("COLIBRI_SOCKET");

	if (s != NULL && *s != '\0')
		return s;
	return PATH_DEFAULT_SOCKET;
}

/*
 * The agent channel named by COLIBRI_FD: a close-on-exec copy of it, or -1
 * with errno (EBADF: not a descriptor number or not open, ENOTSOCK: open
 * but no socket).  Not set: -1 with errno 0.
 */
static int
client_channel(void)
{
	const char *s = getenv("COLIBRI_FD");
	struct stat sb;
	char *end;
	long n;
	int fd;

	errno = 0;
	if (s == NULL || *s == '\0')
		return -1;
	n = strtol(s, &end, 10);
	if (*end != '\0' || n < 0 || n > INT_MAX || fstat((int)n, &sb) == -1) {
		errno = EBADF;
		return -1;
	}
	if (!S_ISSOCK(sb.st_mode)) {
		errno = ENOTSOCK;
		return -1;
	}
	if ((fd = fcntl((int)n, F_DUPFD_CLOEXEC, 0)) == -1)
		return -1;
	return fd;
}

static struct client *
client_new(int fd)
{
	struct client *c = xcalloc(1, sizeof *c);

	c->fd = fd;
	c->next_id = 1;
	buf_init(&c->in);
	c->pending_events = json_array();
	return c;
}

struct client *
client_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	if (path == NULL || strcmp(path, client_default_socket()) == 0) {
		if ((fd = client_channel()) != -1)
			return client_new(fd);
		if (errno != 0)
			return NULL;
	}
	if (path == NULL)
		path = client_default_socket();
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	return client_new(fd);
}

void
client_close(struct client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	buf_free(&c->in);
	json_decref(c->pending_events);
	free(c);
}

static int
client_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one line (without the newline) as JSON; 1 ok, 0 timeout, -1 EOF/error. */
static int
client_read_line(struct client *c, int timeout_ms, json_t **out)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	json_error_t jerr;
	char *nl;
	ssize_t r;
	size_t len;

	for (;;) {
		nl = buf_used(&c->in) > 0 ? memchr(buf_head(&c->in), '\n', buf_used(&c->in)) : NULL;
		if (nl != NULL) {
			len = (size_t)(nl - buf_head(&c->in));
			*out = json_loadb(buf_head(&c->in), len, 0, &jerr);
			buf_consume(&c->in, len + 1);
			if (*out == NULL)
				return -1;
			return 1;
		}
		if (timeout_ms >= 0) {
			int n = poll(&pfd, 1, timeout_ms);
			if (n == 0)
				return 0;
			if (n == -1 && errno != EINTR)
				return -1;
		}
		r = recv(c->fd, buf_reserve(&c->in, 65536), 65536, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c->in.len += (size_t)r;
	}
}

/* Fill err from a reply's error object e (code "internal" when it names none). */
static void
client_error_set(struct client_error *err, json_t *e)
{
	snprintf(err->code, sizeof err->code, "%s",
	         json_string_value(json_object_get(e, "code")) ?: "internal");
	snprintf(err->message, sizeof err->message, "%s",
	         json_string_value(json_object_get(e, "message")) ?: "");
}

/* Send request id as one line.  Returns 0, or -1 when the connection failed. */
static int
client_send(struct client *c, long long id, const char *cmd, json_t *args)
{
	json_t *req;
	char *line;
	int rc;

	req = json_pack("{s:I, s:s}", "id", (json_int_t)id, "cmd", cmd);
	if (args != NULL)
		json_object_set(req, "args", args);
	line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (line == NULL)
		return -1;
	rc = client_write_all(c->fd, line, strlen(line));
	if (rc == 0)
		rc = client_write_all(c->fd, "\n", 1);
	free(line);
	return rc;
}

/*
 * Wait for the reply to request id: 1 with *msg (new reference); events read
 * meanwhile are kept for client_next.  -1 when the daemon answered an error
 * to nothing we sent (err is set), -2 when the connection failed.
 */
static int
client_wait_reply(struct client *c, long long id, json_t **msg, struct client_error *err)
{
	json_t *m, *v;

	for (;;) {
		if (client_read_line(c, -1, &m) != 1)
			return -2;
		if (json_object_get(m, "event") != NULL) {
			json_array_append_new(c->pending_events, m);
			continue;
		}
		v = json_object_get(m, "id");
		if (v != NULL && json_is_integer(v) && json_integer_value(v) == id) {
			*msg = m;
			return 1;
		}
		/* A reply to nothing we sent (e.g. id null for a bad line). */
		if (json_is_false(json_object_get(m, "ok"))) {
			client_error_set(err, json_object_get(m, "error"));
			json_decref(m);
			return -1;
		}
		json_decref(m);
	}
}

int
client_call(struct client *c, const char *cmd, json_t *args, json_t **result,
            struct client_error *err)
{
	json_t *msg;
	long long id = c->next_id++;
	int rc;

	*result = NULL;
	memset(err, 0, sizeof *err);
	if (client_send(c, id, cmd, args) == -1)
		goto unreachable;
	rc = client_wait_reply(c, id, &msg, err);
	if (rc == -2)
		goto unreachable;
	if (rc == -1)
		return -1;
	if (json_is_true(json_object_get(msg, "ok"))) {
		*result = json_incref(json_object_get(msg, "result"));
		if (*result == NULL)
			*result = json_null();
		json_decref(msg);
		return 0;
	}
	client_error_set(err, json_object_get(msg, "error"));
	json_decref(msg);
	return -1;
unreachable:
	snprintf(err->code, sizeof err->code, "unreachable");
	snprintf(err->message, sizeof err->message, "connection to the daemon failed: %s",
	         strerror(errno ? errno : EPIPE));
	return -2;
}

int
client_next(struct client *c, int timeout_ms, json_t **msg)
{
	if (json_array_size(c->pending_events) > 0) {
		*msg = json_incref(json_array_get(c->pending_events, 0));
		json_array_remove(c->pending_events, 0);
		return 1;
	}
	return client_read_line(c, timeout_ms, msg);
}
