/*
 * conn.c -- the dashboard's side of the protocol: connect, resync,
 * subscribe, drain events, refresh rows, tail sessions and kill agents.
 *
 * The order on connect matters for "nothing missed or doubled": status
 * first (its last_seq is the snapshot's lower bound), then list-agents
 * (rows at least as new as that seq), then subscribe since the model's last
 * seq (or, the first time, a few events back so the log is not empty).  The
 * model drops events it has seen and keeps events older than the snapshot
 * out of the rows.  A daemon whose last seq went backwards (a fresh state
 * directory) starts the cursor over.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "tui/conn.h"

#define TUI_BACKLOG    50 /* events replayed into the log on the first connect */
#define TUI_TAIL_PAGES 20 /* session-read pages per call: a huge log catches up over ticks */

void
tui_conn_init(struct tui_conn *k, const char *path)
{
	memset(k, 0, sizeof *k);
	k->path = xstrdup(path);
	k->kill_fd = -1;
	snprintf(k->why, sizeof k->why, "not connected yet");
}

void
tui_conn_free(struct tui_conn *k)
{
	client_close(k->c);
	if (k->kill_fd != -1)
		close(k->kill_fd);
	if (k->kill_pid > 0)
		waitpid(k->kill_pid, NULL, 0);
	free(k->path);
	memset(k, 0, sizeof *k);
	k->kill_fd = -1;
}

/* "a: b" into dst, cut to fit (the return value is looked at: a cut is intended). */
static void
tui_join(char *dst, size_t n, const char *a, const char *b)
{
	if (snprintf(dst, n, "%s: %s", a, b) >= (int)n && n > 4)
		memcpy(dst + n - 4, "...", 4);
}

static void
tui_conn_down(struct tui_conn *k, const char *what, const char *detail, int64_t mono_now)
{
	tui_join(k->why, sizeof k->why, what, detail);
	client_close(k->c);
	k->c = NULL;
	k->up = 0;
	k->next_try = mono_now + 1000;
}

/* client_call that turns a lost connection into tui_conn_down; returns its rc. */
static int
tui_conn_call(struct tui_conn *k, const char *cmd, json_t *args, json_t **res,
              struct client_error *err)
{
	int rc = client_call(k->c, cmd, args, res, err);

	if (rc == -2)
		tui_conn_down(k, cmd, err->message, mono_ms());
	return rc;
}

static int
tui_conn_subscribe(struct tui_conn *k, struct tui_model *m, long long daemon_seq, int first)
{
	struct client_error err;
	long long since = m->last_seq;
	json_t *args, *res;
	int rc;

	if (first)
		since = daemon_seq > TUI_BACKLOG ? daemon_seq - TUI_BACKLOG : 0;
	args = json_pack("{s:[s,s], s:I}", "topics", "agent", "task", "since", (json_int_t)since);
	rc = tui_conn_call(k, CMD_SUBSCRIBE, args, &res, &err);
	json_decref(args);
	json_decref(res);
	if (rc == -1)
		tui_conn_down(k, "subscribe refused", err.message, mono_ms());
	return rc == 0 ? 0 : -1;
}

int
tui_conn_open(struct tui_conn *k, struct tui_model *m, int64_t mono_now)
{
	struct client_error err;
	json_t *st = NULL, *list = NULL;
	long long seq;
	int first = m->last_seq == 0 && m->n == 0;

	client_close(k->c);
	if ((k->c = client_connect(k->path)) == NULL) {
		tui_conn_down(k, k->path, strerror(errno), mono_now);
		return -1;
	}
	if (tui_conn_call(k, CMD_STATUS, NULL, &st, &err) != 0)
		goto refused;
	seq = (long long)json_integer_value(json_object_get(st, "last_seq"));
	if (seq < m->last_seq)
		m->last_seq = 0; /* a different event history: start over */
	tui_model_apply_status(m, st);
	json_decref(st);
	if (tui_conn_call(k, CMD_LIST_AGENTS, NULL, &list, &err) != 0)
		goto refused;
	tui_model_resync(m, list, seq, mono_now);
	json_decref(list);
	if (m->last_seq == 0 && !first)
		m->last_seq = seq;
	if (tui_conn_subscribe(k, m, seq, first) == -1)
		return -1;
	k->up = 1;
	k->tasks_read = mono_now;
	return 0;
refused:
	if (k->c != NULL)
		tui_conn_down(k, "the daemon refused", err.message, mono_now);
	return -1;
}

int
tui_conn_fd(const struct tui_conn *k)
{
	return k->up && k->c != NULL ? k->c->fd : -1;
}

int
tui_conn_buffered(const struct tui_conn *k)
{
	if (!k->up || k->c == NULL)
		return 0;
	return json_array_size(k->c->pending_events) > 0 ||
	       memchr(buf_head(&k->c->in), '\n', buf_used(&k->c->in)) != NULL;
}

int
tui_conn_drain(struct tui_conn *k, struct tui_model *m, int max, int64_t mono_now)
{
	json_t *msg;
	int n = 0, rc = 1;

	while (k->up && n < max && (rc = client_next(k->c, 0, &msg)) == 1) {
		tui_model_apply_event(m, msg);
		json_decref(msg);
		n++;
	}
	if (rc == -1) {
		tui_conn_down(k, "connection lost", "the daemon closed the connection", mono_now);
		return -1;
	}
	return n;
}

static int
tui_conn_status_of(struct tui_conn *k, struct tui_model *m, struct tui_agent *a, int64_t mono_now)
{
	struct client_error err;
	json_t *args = json_pack("{s:s}", "id", a->id), *res;
	int rc = tui_conn_call(k, CMD_AGENT_STATUS, args, &res, &err);

	json_decref(args);
	if (rc == 0)
		tui_model_apply_agent(m, res, mono_now);
	else if (rc == -1) {
		a->stale = 0; /* refused (e.g. gone): do not ask again until an event says so */
		a->refreshed_ms = mono_now;
	}
	json_decref(res);
	return rc == -2 ? -1 : 0;
}

static int
tui_wanted(const struct tui_agent *a, int64_t mono_now)
{
	if (mono_now - a->refreshed_ms < 1000)
		return 0;
	return a->stale || (a->live && strcmp(a->state, "done") != 0 &&
	                    strcmp(a->state, "error") != 0 && a->kind[0] != 'r');
}

int
tui_conn_refresh(struct tui_conn *k, struct tui_model *m, struct tui_agent **want, size_t nwant,
                 int budget, int64_t mono_now)
{
	size_t i, scanned;
	int calls = 0;

	for (i = 0; i < nwant && calls < budget && k->up; i++) {
		if (want[i] == NULL || !tui_wanted(want[i], mono_now))
			continue;
		if (tui_conn_status_of(k, m, want[i], mono_now) == -1)
			return -1;
		calls++;
	}
	for (scanned = 0; scanned < m->n && calls < budget && k->up; scanned++) {
		struct tui_agent *a = m->agents[k->rr++ % m->n];
		if (!a->stale || mono_now - a->refreshed_ms < 1000)
			continue;
		if (tui_conn_status_of(k, m, a, mono_now) == -1)
			return -1;
		calls++;
	}
	return calls;
}

int
tui_conn_tasks(struct tui_conn *k, struct tui_model *m, int64_t mono_now)
{
	struct client_error err;
	json_t *st;
	int rc;

	if (!k->up || !m->tasks_stale || mono_now - k->tasks_read < 1000)
		return 0;
	k->tasks_read = mono_now;
	rc = tui_conn_call(k, CMD_STATUS, NULL, &st, &err);
	if (rc == 0)
		tui_model_apply_status(m, st);
	json_decref(st);
	return rc == -2 ? -1 : 0;
}

/* ---- session tail ---- */

void
tui_tail_reset(struct tui_tail *t, const char *id)
{
	unsigned i;

	for (i = 0; i < TUI_TAIL_LINES; i++)
		free(t->lines[i]);
	memset(t, 0, sizeof *t);
	if (id != NULL)
		snprintf(t->id, sizeof t->id, "%s", id);
}

void
tui_tail_toggle_stream(struct tui_tail *t)
{
	char id[sizeof t->id];
	int err = !t->stderr_stream;

	memcpy(id, t->id, sizeof id);
	tui_tail_reset(t, id);
	t->stderr_stream = err;
}

const char *
tui_tail_get(const struct tui_tail *t, unsigned i)
{
	if (i >= t->n || i >= TUI_TAIL_LINES)
		return NULL;
	return t->lines[(t->n - 1 - i) % TUI_TAIL_LINES];
}

static void
tui_tail_add(struct tui_tail *t, const char *line)
{
	char **slot = &t->lines[t->n % TUI_TAIL_LINES];

	free(*slot);
	*slot = xstrndup(line, 512);
	t->n++;
}

/* One page of session-read; returns lines read, or -1 lost, -2 refused. */
static int
tui_tail_page(struct tui_conn *k, struct tui_tail *t)
{
	struct client_error err;
	json_t *args, *res, *lines, *v;
	size_t i;
	int rc;

	args = json_pack("{s:s, s:I, s:i, s:s}", "id", t->id, "since", (json_int_t)t->next, "limit",
	                 1000, "stream", t->stderr_stream ? "stderr" : "stdout");
	rc = tui_conn_call(k, CMD_SESSION_READ, args, &res, &err);
	json_decref(args);
	if (rc != 0) {
		if (rc == -1)
			tui_join(t->error, sizeof t->error, err.code, err.message);
		return rc == -2 ? -1 : -2;
	}
	t->error[0] = '\0';
	lines = json_object_get(res, "lines");
	json_array_foreach(lines, i, v) tui_tail_add(t, json_string_value(v) ?: "");
	if (json_is_integer(json_object_get(res, "next")))
		t->next = (long long)json_integer_value(json_object_get(res, "next"));
	rc = (int)json_array_size(lines);
	json_decref(res);
	return rc;
}

int
tui_conn_tail(struct tui_conn *k, struct tui_tail *t)
{
	int rc, pages = 0;

	if (!k->up || t->id[0] == '\0')
		return 0;
	do {
		rc = tui_tail_page(k, t);
	} while (rc > 0 && ++pages < TUI_TAIL_PAGES);
	return rc == -1 ? -1 : 0;
}

/* ---- kill-agent in a child ---- */

static void
tui_kill_child(const char *path, const char *id, int fd)
{
	struct client_error err;
	struct client *c = client_connect(path);
	json_t *args, *res = NULL;
	char out[600];
	int rc = -2;

	if (c != NULL) {
		args = json_pack("{s:s}", "id", id);
		rc = client_call(c, CMD_KILL_AGENT, args, &res, &err);
		json_decref(args);
	}
	if (rc == 0)
		snprintf(out, sizeof out, "killed %s: %s", id,
		         json_string_value(json_object_get(res, "reason")) ?: "stopped");
	else if (c == NULL)
		snprintf(out, sizeof out, "kill %s: %s", id, strerror(errno));
	else
		snprintf(out, sizeof out, "kill %s failed: %s: %s", id, err.code, err.message);
	if (write(fd, out, strlen(out)) == -1)
		_exit(1);
	_exit(0);
}

int
tui_conn_kill_start(struct tui_conn *k, const char *id, char *msg, size_t n)
{
	int p[2];
	pid_t pid;

	if (k->kill_pid > 0) {
		snprintf(msg, n, "a kill of %s is still in progress", k->kill_id);
		return -1;
	}
	if (pipe(p) == -1 || (pid = fork()) == -1) {
		snprintf(msg, n, "kill %s: %s", id, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		tui_kill_child(k->path, id, p[1]);
	}
	close(p[1]);
	set_cloexec(p[0]);
	k->kill_pid = pid;
	k->kill_fd = p[0];
	snprintf(k->kill_id, sizeof k->kill_id, "%s", id);
	snprintf(msg, n, "killing %s ...", id);
	return 0;
}

void
tui_conn_kill_finish(struct tui_conn *k, char *msg, size_t n)
{
	ssize_t r = read(k->kill_fd, msg, n - 1);

	if (r <= 0)
		snprintf(msg, n, "kill %s: no answer", k->kill_id);
	else
		msg[r] = '\0';
	close(k->kill_fd);
	k->kill_fd = -1;
	waitpid(k->kill_pid, NULL, 0);
	k->kill_pid = 0;
}
