/*
 * server.c -- the control socket.
 *
 * A request's whole path is here and in one cmd-*.c file: bytes arrive in
 * the client's input buffer; each complete line is parsed once (jsonr, or
 * jansson for what jsonr leaves to it),
 * checked (envelope, command, arguments, role) and executed.  A bad
 * line costs its sender one error reply; an over-long line costs it the
 * connection; nothing costs anyone else anything.
 *
 * Output is appended to the client's buffer and written once per loop
 * iteration (server_flush_all, from txn.c's check handle), so a burst of
 * pipelined requests is answered with one write.  One uv_write is in
 * flight per client at most; what accumulates meanwhile waits in `out`.
 *
 * Every byte held for a client is bounded, and nobody's output can crowd
 * out anyone else's:
 * - back-pressure: while a client's unsent output (queued, in flight, or
 *   held for the commit) is at the pause threshold (pause_bytes: large
 *   while the total is low, 128 KiB once it is not), its next request is
 *   not read; it resumes when the output drains (client_drained).  A
 *   client that pipelines and never reads holds one threshold and one
 *   reply.
 * - a reply is at most --max-reply bytes: the list commands stop building
 *   at the cap, and any reply over it becomes an invalid_argument error
 *   naming the limit; a reply that would take the output of all clients
 *   past --max-output-total becomes an unavailable error.  Never a silent
 *   close.
 * - a live subscriber whose unread events pass --max-output (or the total)
 *   is dropped, and resumes with subscribe {since}; a subscriber catching
 *   up replays from the store a page at a time, only while its output is
 *   drained (the replay queue, below).
 * - connections: --max-clients in all, the last --admin-slots of them for
 *   admins, at most --max-clients-per-uid per other uid; a connection that
 *   holds part of a line for --line-timeout-ms is closed.  Each refusal is
 *   an error line.
 *
 * A connection's role (cmd.h: admin, member or agent) is decided once, in
 * on_connection, from what the kernel says about the peer at connect time,
 * and kept on the client; every request on it is checked against its
 * command's roles in dispatch.  Events of topics a role may not see
 * (cmd_event_visible) never reach it.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jsonr.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/peercred.h"
#include "daemon/server.h"
#include "daemon/spawner.h"
#include "daemon/txn.h"
#include "store/store.h"

struct client {
	uv_pipe_t pipe;
	struct peercred cred;
	int role; /* CMD_R_*, decided at accept (client_decide_role) */
	int fd;
	int detached; /* no socket: output stays in `out` (the fuzz seam) */
	int closing;
	int close_after_flush;
	int dirty;
	struct buf in;
	struct buf out;  /* waiting to be written */
	struct buf wbuf; /* being written by uv_write */
	uv_write_t wreq;
	int writing;
	/* subscription */
	int subscribed;
	json_t *topics;
	long long cursor;
	struct client *next, *prev;
	struct client *next_dirty;
	int admin;              /* privileged at accept: admin slots, no per-uid quota */
	int paused;             /* back-pressure: input is not read until output drains */
	size_t held;            /* reply bytes txn.c holds for the commit */
	uint64_t partial_since; /* loop time the unfinished line in `in` began, 0: none */
	int replaying;          /* subscribed, catching up from the store, not yet live */
	int in_rq;
	struct client *next_rq;
};

static uv_pipe_t listener;
static int listening;
static struct client *clients;
static int nclients;
static struct client *dirty;
static size_t out_total; /* every client's unsent output: out, wbuf and held */
static uv_timer_t line_timer;

static void client_close(struct client *, const char *why);
static void client_flush(struct client *);
static void client_drained(struct client *);
static void process_input(struct client *);

/* Output held for c: queued, being written, or waiting for the commit. */
static size_t
client_pending(const struct client *c)
{
	return buf_used(&c->out) + buf_used(&c->wbuf) + c->held;
}

/*
 * Back-pressure thresholds.  A client's requests are not read while its
 * unsent output is at --max-output (where it used to be dropped), or at
 * the small threshold (128 KiB, or a quarter of --max-output when that is
 * less) once all clients together hold a quarter of --max-output-total:
 * `pressure`, lifted by server_replay_run when the total falls below an
 * eighth (the gap keeps clients that never read from being resumed, to
 * fill up again, each time a reader drains a little).  A replay page always
 * stops at the small threshold.
 */
static int pressure;

static size_t
small_bytes(void)
{
	size_t q = D.cfg.max_output / 4;

	return q < 128 * 1024 ? q : 128 * 1024;
}

static size_t
pause_bytes(void)
{
	if (pressure || out_total >= D.cfg.max_output_total / 4) {
		pressure = 1;
		return small_bytes();
	}
	return D.cfg.max_output;
}

int
server_client_count(void)
{
	return nclients;
}

int
server_output_pending(void)
{
	struct client *c;

	for (c = clients; c != NULL; c = c->next)
		if (!c->closing && (buf_used(&c->out) > 0 || c->writing))
			return 1;
	return 0;
}

static void
client_mark_dirty(struct client *c)
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
	out_total += n;
	client_mark_dirty(c);
}

void
server_client_hold(struct client *c, size_t n)
{
	c->held += n;
	out_total += n;
}

void
server_client_release(struct client *c, const char *line, size_t len)
{
	c->held -= len;
	out_total -= len;
	server_client_write(c, line, len);
}

/*
 * Replies are written with jsonw into one scratch buffer, reused for every
 * reply (the loop is single-threaded), and handed to txn_reply, which sends
 * the line or holds a copy until the transaction commits.
 */
static struct buf scratch;

/* Send or hold the reply line in scratch. */
static void
reply_line(struct cmd_req *r)
{
	if (r->client != NULL)
		txn_reply(r->client, buf_head(&scratch), buf_used(&scratch));
	if (scratch.cap > 65536)
		buf_free(&scratch); /* do not keep a large reply's buffer */
}

static json_t *error_envelope(json_t *id, const char *code, const char *msg);
static void reply_send(struct cmd_req *r, json_t *env);

void
cmd_fail_too_big(struct cmd_req *r, const char *what, const char *hint)
{
	cmd_fail(r, ERR_INVALID_ARGUMENT,
	         "%s: the reply passes the limit of %zu bytes (--max-reply); ask for fewer %s (%s)",
	         r->entry != NULL ? r->entry->name : "reply", D.cfg.max_reply, what, hint);
}

/*
 * An ok reply in scratch: sent, or, over the reply cap or the total output
 * cap, turned into an error (the command then counts as failed, so a write
 * is rolled back with it).
 */
static void
reply_ok_line(struct cmd_req *r)
{
	char msg[256];
	size_t n = buf_used(&scratch);

	if (r->client == NULL ||
	    (n <= D.cfg.max_reply && out_total + n <= D.cfg.max_output_total)) {
		reply_line(r);
		return;
	}
	r->failed = 1;
	if (n > D.cfg.max_reply) {
		snprintf(msg, sizeof msg,
		         "%s: the reply passes the limit of %zu bytes (--max-reply); ask for less "
		         "(a smaller limit, or pages with after)",
		         r->entry != NULL ? r->entry->name : "reply", D.cfg.max_reply);
		reply_send(r, error_envelope(r->id, ERR_INVALID_ARGUMENT, msg));
		return;
	}
	snprintf(msg, sizeof msg,
	         "the daemon holds %zu bytes of unread output for its clients, at its limit "
	         "(--max-output-total %zu); read your replies, then retry",
	         out_total, D.cfg.max_output_total);
	reply_send(r, error_envelope(r->id, ERR_UNAVAILABLE, msg));
}

/* The generic error that replaces a reply jsonw could not encode (logged). */
static void
reply_unencodable(struct cmd_req *r)
{
	static const char fallback[] =
	        "{\"id\":null,\"ok\":false,\"error\":{\"code\":"
	        "\"internal\",\"message\":\"the reply could not be encoded\"}}\n";

	log_warnx("a reply could not be encoded; sent an internal error instead");
	buf_reset(&scratch);
	buf_add(&scratch, fallback, sizeof fallback - 1);
	reply_line(r);
}

/* Serialise a whole reply envelope (errors) and send or hold it. */
static void
reply_send(struct cmd_req *r, json_t *env)
{
	buf_reset(&scratch);
	if (env == NULL || jsonw_dump(&scratch, env) == -1)
		reply_unencodable(r);
	else {
		buf_addc(&scratch, '\n');
		reply_line(r);
	}
	json_decref(env);
}

static void cmd_req_free(struct cmd_req *);

/* Requests held by CMD_ASYNC commands, so a closing client can detach. */
static struct cmd_req *held_reqs;

static void
req_unlink_held(struct cmd_req *r)
{
	struct cmd_req **pp;

	for (pp = &held_reqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			return;
		}
	}
}

/* {"id":ID,"ok":true,"result": -- the envelope's head: id, ok, result, in this order. */
static int
ok_head(struct cmd_req *r)
{
	buf_reset(&scratch);
	buf_add(&scratch, "{\"id\":", 6);
	if (jsonw_dump(&scratch, r->id) == -1)
		return -1;
	buf_add(&scratch, ",\"ok\":true,\"result\":", 20);
	return 0;
}

static void
ok_done(struct cmd_req *r)
{
	if (r->held && !r->in_dispatch) {
		req_unlink_held(r);
		cmd_req_free(r);
	}
}

void
cmd_ok(struct cmd_req *r, json_t *result)
{
	if (r->replied) {
		json_decref(result);
		return;
	}
	r->replied = 1;
	if (ok_head(r) == -1 ||
	    (result != NULL ? jsonw_dump(&scratch, result) : (buf_add(&scratch, "{}", 2), 0)) == -1)
		reply_unencodable(r);
	else {
		buf_add(&scratch, "}\n", 2);
		reply_ok_line(r);
	}
	json_decref(result);
	ok_done(r);
}

void
cmd_ok_raw(struct cmd_req *r, const char *result, size_t len)
{
	if (r->replied)
		return;
	r->replied = 1;
	if (ok_head(r) == -1)
		reply_unencodable(r);
	else {
		buf_add(&scratch, result, len);
		buf_add(&scratch, "}\n", 2);
		reply_ok_line(r);
	}
	ok_done(r);
}

static json_t *
error_envelope(json_t *id, const char *code, const char *msg)
{
	char clean[1024];

	/* A message may quote a client's bytes or be cut mid-character: keep it valid UTF-8. */
	snprintf(clean, sizeof clean, "%s", msg);
	utf8_scrub(clean);
	msg = clean;
	return json_pack("{s:O, s:b, s:{s:s, s:s}}", "id", id != NULL ? id : json_null(), "ok", 0,
	                 "error", "code", code, "message", msg);
}

void
cmd_fail(struct cmd_req *r, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->replied)
		return;
	r->replied = 1;
	r->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	reply_send(r, error_envelope(r->id, code, msg));
	if (r->held && !r->in_dispatch) {
		req_unlink_held(r);
		cmd_req_free(r);
	}
}

void
cmd_req_hold(struct cmd_req *r)
{
	r->held = 1;
	r->next = held_reqs;
	held_reqs = r;
}

static void
cmd_req_free(struct cmd_req *r)
{
	json_decref(r->id);
	json_decref(r->args);
	free(r);
}

void
server_client_fail_held(struct client *c, const char *line, size_t len, const char *why)
{
	json_t *orig = json_loadb(line, len, 0, NULL), *env;
	char *s;

	c->held -= len; /* the reply it replaces was counted as c's output */
	out_total -= len;
	env = error_envelope(json_object_get(orig, "id"), ERR_UNAVAILABLE, why);
	s = json_dumps(env, JSON_COMPACT);
	server_client_write(c, s, strlen(s));
	server_client_write(c, "\n", 1);
	free(s);
	json_decref(env);
	json_decref(orig);
}

static void send_error(struct client *c, json_t *id, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void
send_error(struct client *c, json_t *id, const char *code, const char *fmt, ...)
{
	struct cmd_req r;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memset(&r, 0, sizeof r);
	r.client = c;
	reply_send(&r, error_envelope(id, code, msg));
}

/*
 * The connection's role, once, at accept.  Agent first: a process the
 * daemon started (or a descendant of one) is an agent whatever its uid --
 * an unconfined agent runs as the daemon's uid and must not be its admin.
 * A peer whose process is already gone cannot be placed (an agent's child
 * may connect, hand the descriptor on and exit before the accept), so it
 * gets the agent role too, the least.  Then admin: uid 0, the daemon's
 * uid, or the admin group among the groups the kernel recorded at
 * connect.  Anyone else who could connect is a member.
 */
static int
client_decide_role(struct client *c)
{
	const char *agent = NULL;
	int rc;

	if (c->cred.pid > 0 && (rc = spawner_agent_of_pid(c->cred.pid, &agent)) != 0) {
		log_debug("client pid %ld: agent role (%s)", (long)c->cred.pid,
		          rc == -1        ? "its process is gone, so it cannot be placed"
		          : agent != NULL ? agent
		                          : "an orphan of an agent");
		return CMD_R_AGENT;
	}
	if (c->cred.uid == 0 || c->cred.uid == D.uid)
		return CMD_R_ADMIN;
	if (D.cfg.have_admin_gid && peercred_in_group(c->fd, &c->cred, D.cfg.admin_gid))
		return CMD_R_ADMIN;
	return CMD_R_MEMBER;
}

/*
 * A write command runs inside the loop iteration's transaction.  The first
 * one opens it and needs no savepoint: if it fails, the whole transaction
 * (only its own work) is rolled back.  Later ones get a savepoint, so a
 * failure undoes only their part.
 */
static void
dispatch(struct client *c, struct cmd_req *r)
{
	const struct cmd_entry *ce = r->entry;
	size_t mark = 0;
	struct store_err e;
	int first = 0;
	char roles[48];

	r->role = c->role;
	if ((ce->roles & r->role) == 0) {
		cmd_fail(r, ERR_PERMISSION_DENIED,
		         "%s is for the role %s only; this connection has the %s role", ce->name,
		         cmd_roles_text(ce->roles, roles, sizeof roles), cmd_role_name(r->role));
		return;
	}
	if (D.shutting_down && (ce->flags & CMD_WRITE)) {
		cmd_fail(r, ERR_UNAVAILABLE, "the daemon is shutting down");
		return;
	}
	if (ce->flags & CMD_WRITE) {
		first = !txn_open();
		if (txn_write(&e) == -1) {
			cmd_fail(r, e.code, "%s", e.msg);
			return;
		}
		mark = events_mark();
		if (!first)
			store_savepoint(D.store);
	}
	r->in_dispatch = 1;
	ce->exec(r);
	r->in_dispatch = 0;
	if (ce->flags & CMD_WRITE) {
		if (r->failed) {
			if (first)
				txn_abort();
			else
				store_savepoint_rollback(D.store);
			events_rollback_to(mark);
		} else if (!first)
			store_savepoint_release(D.store);
	}
	if (!r->replied && !r->held)
		cmd_fail(r, ERR_INTERNAL, "%s gave no reply", ce->name);
}

/* Handle one complete line (without its newline). */
static void
handle_line(struct client *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *id, *cmd, *args;
	const struct cmd_entry *ce;
	struct cmd_req *r;
	char msg[256];

	while (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return; /* blank lines are keep-alives */
	if ((req = jsonr_loadb(line, len)) == NULL &&
	    (req = json_loadb(line, len, 0, &jerr)) == NULL) {
		send_error(c, NULL, ERR_BAD_REQUEST, "invalid JSON at column %d: %s", jerr.column,
		           jerr.text);
		return;
	}
	if (!json_is_object(req)) {
		send_error(c, NULL, ERR_BAD_REQUEST, "a request is a JSON object");
		goto out;
	}
	id = json_object_get(req, "id");
	if (id != NULL && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id)) {
		send_error(c, NULL, ERR_BAD_REQUEST, "id must be an integer or a string");
		goto out;
	}
	cmd = json_object_get(req, "cmd");
	if (!json_is_string(cmd)) {
		send_error(c, id, ERR_BAD_REQUEST, "missing string \"cmd\"");
		goto out;
	}
	if ((ce = cmd_find(json_string_value(cmd))) == NULL) {
		send_error(c, id, ERR_UNKNOWN_COMMAND, "unknown command \"%.64s\"",
		           json_string_value(cmd));
		goto out;
	}
	args = json_object_get(req, "args");
	if (args != NULL && !json_is_object(args) && !json_is_null(args)) {
		send_error(c, id, ERR_BAD_REQUEST, "args must be an object");
		goto out;
	}
	if (args == NULL || json_is_null(args))
		args = json_object();
	else
		json_incref(args);
	if (cmd_check_args(ce, args, msg, sizeof msg) == -1) {
		send_error(c, id, ERR_INVALID_ARGUMENT, "%s (usage: %s)", msg, cmd_usage_line(ce));
		json_decref(args);
		goto out;
	}
	r = xcalloc(1, sizeof *r);
	r->entry = ce;
	r->id = id != NULL ? json_incref(id) : json_null();
	r->args = args;
	r->client = c;
	r->uid = c->cred.uid;
	r->gid = c->cred.gid;
	r->pid = c->cred.pid;
	dispatch(c, r);
	if (r->held && r->replied) {
		/* Held, but answered before exec returned: free it here, not under exec. */
		req_unlink_held(r);
		r->held = 0;
	}
	if (!r->held)
		cmd_req_free(r);
out:
	json_decref(req);
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

static void
process_input(struct client *c)
{
	char *p, *nl;
	size_t n;
	int consumed = 0;

	while (!c->closing && !c->close_after_flush) {
		if (!c->detached && client_pending(c) >= pause_bytes()) {
			client_pause(c);
			return;
		}
		p = buf_head(&c->in);
		n = buf_used(&c->in);
		nl = memchr(p, '\n', n < D.cfg.max_line + 1 ? n : D.cfg.max_line + 1);
		if (nl == NULL) {
			if (n > D.cfg.max_line) {
				send_error(c, NULL, ERR_BAD_REQUEST,
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
		handle_line(c, p, (size_t)(nl - p));
		buf_consume(&c->in, (size_t)(nl - p) + 1);
		consumed = 1;
	}
}

/*
 * c's output went below the pause threshold: read its requests again (and
 * run those already read), and put it back in the replay queue if it is
 * catching up.
 */
static void replay_enqueue(struct client *);
static void replay_remove(struct client *);
static void replay_kick(void);
static void on_alloc(uv_handle_t *, size_t, uv_buf_t *);
static void on_read(uv_stream_t *, ssize_t, const uv_buf_t *);

static void
client_drained(struct client *c)
{
	if (c->closing)
		return;
	if (c->replaying && client_pending(c) < small_bytes())
		replay_enqueue(c);
	if (c->paused && client_pending(c) < pause_bytes()) {
		c->paused = 0;
		if (!c->close_after_flush)
			uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
		process_input(c);
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

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct client *c = s->data;

	(void)b;
	if (n < 0) {
		client_close(c, n == UV_EOF ? NULL : uv_strerror((int)n));
		return;
	}
	c->in.len += (size_t)n;
	process_input(c);
}

static void
client_free(struct client *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->wbuf);
	json_decref(c->topics);
	free(c);
}

static void
on_client_closed(uv_handle_t *h)
{
	client_free(h->data);
}

static void
client_close(struct client *c, const char *why)
{
	struct client **pp;
	struct cmd_req *r;

	if (c->closing)
		return;
	c->closing = 1;
	if (why != NULL)
		log_debug("client pid %ld closed: %s", (long)c->cred.pid, why);
	out_total -= client_pending(c);
	c->held = 0;
	c->replaying = 0;
	replay_remove(c);
	txn_forget_client(c);
	for (r = held_reqs; r != NULL; r = r->next)
		if (r->client == c)
			r->client = NULL;
	for (pp = &dirty; *pp != NULL; pp = &(*pp)->next_dirty) {
		if (*pp == c) {
			*pp = c->next_dirty;
			break;
		}
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	nclients--;
	if (!c->detached)
		uv_close((uv_handle_t *)&c->pipe, on_client_closed);
	/* A detached client is freed by server_client_free_detached. */
}

static void
on_write(uv_write_t *w, int status)
{
	struct client *c = w->data;

	c->writing = 0;
	if (!c->closing)
		out_total -= buf_used(&c->wbuf);
	buf_reset(&c->wbuf);
	if (c->wbuf.cap > 65536)
		buf_free(&c->wbuf); /* do not keep a large reply's buffer */
	if (c->closing)
		return;
	if (status < 0) {
		client_close(c, uv_strerror(status));
		return;
	}
	replay_kick();
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
			out_total -= (size_t)n;
		} else if (n < 0 && n != UV_EAGAIN) {
			client_close(c, uv_strerror(n));
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
			client_close(c, "write failed");
			return;
		}
		client_drained(c);
		return;
	}
	if (c->close_after_flush) {
		client_close(c, "closed after error");
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

/*
 * Subscribers.  A live subscriber gets each event as it is published
 * (after its commit), if its seq is past the client's cursor.  One that
 * asked for a replay (subscribe {since}) is not live: it waits in the
 * replay queue, and each loop iteration, right after the commit
 * (server_replay_run, from txn.c's check handle, so no transaction is open
 * and the store holds every event published so far), up to REPLAY_STEPS
 * queued clients get one page: the stored events after their cursor, at
 * most REPLAY_ROWS rows looked at, written until the client's output
 * reaches the pause threshold.  A client whose output is not drained
 * leaves the queue and rejoins it when it drains (client_drained), so a
 * subscriber that does not read costs one threshold of memory and no
 * work.  The page that reaches the end of the log makes the client live at
 * its cursor: events published while it replayed were in the store for
 * the replay to find, and later ones have a higher seq, so there is no gap
 * and no duplicate.
 */
#define REPLAY_STEPS 8
#define REPLAY_ROWS  512

static struct client *rq_head, *rq_tail;
static uv_idle_t replay_idle;

/* Does subscriber c want events of topic? */
static int
client_wants(const struct client *c, const char *topic)
{
	return cmd_event_visible(c->role, topic) && store_topic_matches(c->topics, topic);
}

static void
replay_enqueue(struct client *c)
{
	if (c->in_rq)
		return;
	c->in_rq = 1;
	c->next_rq = NULL;
	if (rq_tail != NULL)
		rq_tail->next_rq = c;
	else
		rq_head = c;
	rq_tail = c;
	replay_kick();
}

static void
replay_remove(struct client *c)
{
	struct client **pp, *prev = NULL;

	if (!c->in_rq)
		return;
	for (pp = &rq_head; *pp != NULL; prev = *pp, pp = &(*pp)->next_rq) {
		if (*pp == c) {
			*pp = c->next_rq;
			if (rq_tail == c)
				rq_tail = prev;
			break;
		}
	}
	c->in_rq = 0;
}

static void
replay_idle_cb(uv_idle_t *h)
{
	(void)h; /* only keeps poll from blocking while a page is due */
}

/* A page is due: do not let the loop sleep in poll before the next check. */
static void
replay_kick(void)
{
	static int ready;

	if (rq_head == NULL || out_total >= D.cfg.max_output_total)
		return;
	if (!ready) {
		uv_idle_init(D.loop, &replay_idle);
		ready = 1;
	}
	uv_idle_start(&replay_idle, replay_idle_cb);
}

struct replay_page {
	struct client *c;
	long long rows;
	int full;
};

static int
replay_row(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	struct replay_page *pg = arg;
	struct client *c = pg->c;
	size_t len;
	char *line;

	pg->rows++;
	c->cursor = seq;
	if (client_wants(c, topic)) {
		line = events_line(seq, ts, topic, data, &len);
		server_client_write(c, line, len);
		free(line);
	}
	if (client_pending(c) >= small_bytes()) {
		pg->full = 1;
		return 1;
	}
	return 0;
}

/* One page for c; at the end of the log it goes live.  0, or -1 when the store failed. */
static int
replay_step(struct client *c)
{
	struct replay_page pg = {c, 0, 0};

	if (store_event_scan(D.store, c->cursor, REPLAY_ROWS, NULL, replay_row, &pg) < 0)
		return -1;
	if (!pg.full && pg.rows < REPLAY_ROWS)
		c->replaying = 0;
	return 0;
}

/* The total fell back below an eighth of its cap: clients paused at the small threshold resume. */
static void
pressure_relief(void)
{
	struct client *c, *next;

	if (!pressure || out_total >= D.cfg.max_output_total / 8)
		return;
	pressure = 0;
	for (c = clients; c != NULL; c = next) {
		next = c->next;
		if (c->paused)
			client_drained(c);
	}
}

void
server_replay_run(void)
{
	struct client *c;
	int steps;

	/*
	 * Never inside a transaction: a page must not carry an event that a
	 * rollback could take back (txn.c calls this right after its commit;
	 * the clients pressure_relief resumes may open the next one).
	 */
	for (steps = 0; steps < REPLAY_STEPS && rq_head != NULL && !D.shutting_down && !txn_open();
	     steps++) {
		if (out_total >= D.cfg.max_output_total)
			break; /* resumed by replay_kick when some output drains */
		c = rq_head;
		replay_remove(c);
		if (c->closing || !c->replaying || client_pending(c) >= small_bytes())
			continue; /* client_drained puts it back */
		if (replay_step(c) == -1) {
			log_warnx("client pid %ld: the event log could not be read; dropping it",
			          (long)c->cred.pid);
			client_close(c, "replay failed");
			continue;
		}
		if (c->replaying)
			replay_enqueue(c);
	}
	if (rq_head == NULL || out_total >= D.cfg.max_output_total || D.shutting_down)
		uv_idle_stop(&replay_idle); /* a no-op on a handle never started */
	pressure_relief();
}

void
server_client_subscribe(struct client *c, json_t *topics, long long cursor, int replay)
{
	json_decref(c->topics);
	c->topics = topics != NULL ? json_incref(topics) : NULL;
	c->cursor = cursor;
	c->subscribed = 1;
	c->replaying = replay;
	if (replay)
		replay_enqueue(c);
	else
		replay_remove(c);
}

void
server_client_unsubscribe(struct client *c)
{
	c->subscribed = 0;
	c->replaying = 0;
	replay_remove(c);
}

void
server_publish(long long seq, const char *topic, const char *line, size_t len)
{
	struct client *c, *next;

	for (c = clients; c != NULL; c = next) {
		next = c->next;
		if (!c->subscribed || c->replaying || c->closing || seq <= c->cursor)
			continue;
		c->cursor = seq;
		if (!client_wants(c, topic))
			continue;
		if (client_pending(c) + len > D.cfg.max_output ||
		    out_total + len > D.cfg.max_output_total) {
			log_warnx("client pid %ld: %zu bytes of output unread (all clients: %zu), "
			          "dropping it",
			          (long)c->cred.pid, client_pending(c), out_total);
			client_close(c, "output cap");
			continue;
		}
		server_client_write(c, line, len);
	}
}

static void
client_link(struct client *c)
{
	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
	nclients++;
}

/*
 * May c connect?  -1 with why filled when not: shutting down, every slot
 * taken, only the admins' slots left (c is no admin), or c's uid already
 * holds its quota (admins have none).
 */
static int
client_refusal(const struct client *c, char *why, size_t len)
{
	const struct client *o;
	int same = 0;

	if (D.shutting_down)
		snprintf(why, len, "the daemon is shutting down");
	else if (nclients >= D.cfg.max_clients)
		snprintf(why, len, "too many clients (--max-clients %d)", D.cfg.max_clients);
	else if (c->admin)
		return 0;
	else if (nclients >= D.cfg.max_clients - D.cfg.admin_slots)
		snprintf(why, len,
		         "too many clients: the last %d of the %d connection slots are kept for "
		         "admins (--admin-slots)",
		         D.cfg.admin_slots, D.cfg.max_clients);
	else {
		for (o = clients; o != NULL; o = o->next)
			same += o->cred.uid == c->cred.uid && !o->closing && !o->close_after_flush;
		if (same < D.cfg.max_clients_per_uid)
			return 0;
		snprintf(why, len, "too many connections for uid %ld: %d (--max-clients-per-uid)",
		         (long)c->cred.uid, same);
	}
	return -1;
}

static void
on_connection(uv_stream_t *s, int status)
{
	struct client *c;
	uv_os_fd_t fd;
	char why[256];

	if (status < 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof *c);
	uv_pipe_init(D.loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(s, (uv_stream_t *)&c->pipe) != 0) {
		uv_close((uv_handle_t *)&c->pipe, on_client_closed);
		return;
	}
	uv_fileno((uv_handle_t *)&c->pipe, &fd);
	c->fd = fd;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->wbuf);
	if (peercred_get(fd, &c->cred) == -1) {
		log_warn("peer credentials");
		uv_close((uv_handle_t *)&c->pipe, on_client_closed);
		return;
	}
	c->role = client_decide_role(c);
	c->admin = c->role == CMD_R_ADMIN;
	if (client_refusal(c, why, sizeof why) == -1) {
		client_link(c);
		send_error(c, NULL, ERR_UNAVAILABLE, "%s", why);
		c->close_after_flush = 1;
		client_mark_dirty(c);
		return;
	}
	client_link(c);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/*
 * The partial-line timeout: a connection that has sent part of a line and
 * not its end within --line-timeout-ms is told so and closed (a client
 * that opens a request and stalls would otherwise hold its slot and its
 * buffer for ever).  Checked by one timer for all connections.
 */
static void
line_timer_cb(uv_timer_t *t)
{
	struct client *c, *next;
	uint64_t now = uv_now(D.loop);

	(void)t;
	for (c = clients; c != NULL; c = next) {
		next = c->next;
		if (c->partial_since == 0 || c->detached || c->closing || c->close_after_flush ||
		    now - c->partial_since < (uint64_t)D.cfg.line_timeout_ms)
			continue;
		log_info("client pid %ld: a partial line for %lld ms; closing it",
		         (long)c->cred.pid, (long long)(now - c->partial_since));
		send_error(
		        c, NULL, ERR_BAD_REQUEST,
		        "no end of line within %lld ms (--line-timeout-ms); closing the connection",
		        (long long)D.cfg.line_timeout_ms);
		c->partial_since = 0;
		c->close_after_flush = 1;
		uv_read_stop((uv_stream_t *)&c->pipe);
		buf_reset(&c->in);
	}
}

static void
line_timer_start(void)
{
	uint64_t every = (uint64_t)D.cfg.line_timeout_ms / 4;

	uv_timer_init(D.loop, &line_timer);
	uv_timer_start(&line_timer, line_timer_cb, every,
	               every > 1000 ? 1000 : (every ? every : 1));
	uv_unref((uv_handle_t *)&line_timer);
}

/* With --group G, give path to G (the socket or its directory), or fail naming why. */
static int
server_give_group(const char *path, const struct stat *sb, char **cause)
{
	if (!D.cfg.have_group_gid || sb->st_gid == D.cfg.group_gid)
		return 0;
	if (chown(path, (uid_t)-1, D.cfg.group_gid) == -1) {
		xasprintf(cause, "cannot give %s to group %s: %s (is the daemon's user a member?)",
		          path, D.cfg.group, strerror(errno));
		return -1;
	}
	log_info("%s now belongs to group %s", path, D.cfg.group);
	return 0;
}

/*
 * Check the socket's directory: a real directory of ours, 0750 at most (a
 * wider mode is fixed with a log line, a stranger's directory or a symlink
 * refused); with --group it belongs to that group so members can traverse.
 */
static int
server_check_dir(const char *sock, char **cause)
{
	char *dir = xstrdup(sock), *slash = strrchr(dir, '/');
	struct stat sb;
	int rc = -1;

	if (slash == NULL || slash == dir) {
		rc = 0;
		goto out;
	}
	*slash = '\0';
	if (lstat(dir, &sb) == -1 && (mkdir(dir, 0750) == -1 || lstat(dir, &sb) == -1)) {
		xasprintf(cause, "socket directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		xasprintf(cause, "socket directory %s is not a directory (a symlink is refused)",
		          dir);
		goto out;
	}
	if (sb.st_uid != D.uid) {
		xasprintf(cause,
		          "socket directory %s belongs to uid %ld, not to the daemon's uid %ld",
		          dir, (long)sb.st_uid, (long)D.uid);
		goto out;
	}
	if ((sb.st_mode & 0027) != 0) {
		log_warnx("socket directory %s had mode %04o; setting 0750", dir,
		          (unsigned)(sb.st_mode & 07777));
		if (chmod(dir, 0750) == -1) {
			xasprintf(cause, "chmod %s: %s", dir, strerror(errno));
			goto out;
		}
	}
	rc = server_give_group(dir, &sb, cause);
out:
	free(dir);
	return rc;
}

int
server_start(char **cause)
{
	const char *path = D.cfg.socket_path;
	struct stat sb;
	int rc;

	if (server_check_dir(path, cause) == -1)
		return -1;
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			xasprintf(cause, "%s exists and is not a socket", path);
			return -1;
		}
		/* The state lock is ours, so any socket here is stale. */
		log_info("removing stale socket %s", path);
		unlink(path);
	}
	uv_pipe_init(D.loop, &listener, 0);
	if ((rc = uv_pipe_bind(&listener, path)) != 0) {
		xasprintf(cause, "bind %s: %s", path, uv_strerror(rc));
		return -1;
	}
	if (chmod(path, 0660) == -1 || lstat(path, &sb) == -1) {
		xasprintf(cause, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	if (server_give_group(path, &sb, cause) == -1)
		return -1;
	if ((rc = uv_listen((uv_stream_t *)&listener, 512, on_connection)) != 0) {
		xasprintf(cause, "listen %s: %s", path, uv_strerror(rc));
		return -1;
	}
	listening = 1;
	line_timer_start();
	return 0;
}

void
server_stop_accepting(void)
{
	if (!listening)
		return;
	listening = 0;
	uv_close((uv_handle_t *)&listener, NULL);
	unlink(D.cfg.socket_path);
}

void
server_close(void)
{
	server_stop_accepting();
	while (clients != NULL)
		client_close(clients, "shutdown");
	if (line_timer.loop != NULL)
		uv_close((uv_handle_t *)&line_timer, NULL);
	if (replay_idle.loop != NULL)
		uv_close((uv_handle_t *)&replay_idle, NULL);
}

/*
 * The detached-client seam: the request path without a socket, for the
 * fuzz target tests/fuzz/fuzz_request.c (nothing else uses it).  Input is
 * framed and dispatched exactly as socket input is; output is never
 * written anywhere, it accumulates in the client's buffer until taken.
 */
struct client *
server_client_new_detached(uid_t uid, gid_t gid)
{
	struct client *c = xcalloc(1, sizeof *c);

	c->detached = 1;
	c->fd = -1;
	c->cred.uid = uid;
	c->cred.gid = gid;
	c->cred.pid = -1;
	c->role = client_decide_role(c);
	c->admin = c->role == CMD_R_ADMIN;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->wbuf);
	client_link(c);
	return c;
}

void
server_client_feed(struct client *c, const char *p, size_t n)
{
	if (n == 0 || c->closing || c->close_after_flush)
		return;
	buf_add(&c->in, p, n);
	process_input(c);
}

size_t
server_client_take_output(struct client *c, struct buf *to)
{
	size_t n = buf_used(&c->out);

	if (n > 0)
		buf_add(to, buf_head(&c->out), n);
	buf_reset(&c->out);
	out_total -= n;
	return n;
}

int
server_client_closed(const struct client *c)
{
	return c->closing || c->close_after_flush;
}

void
server_client_free_detached(struct client *c)
{
	if (c == NULL)
		return;
	client_close(c, NULL);
	client_free(c);
}
