/*
 * server-request.c -- a request's way through the server, and its reply.
 *
 * A complete line from server-client.c is parsed once (jsonr, a strict
 * reader for the common shape of a request, or jansson for what jsonr
 * leaves to it) and checked in this order: the envelope (id, cmd, args),
 * the command's entry in the table (cmd_find), its argument spec
 * (cmd_check_args), the connection's role against the entry's roles.  Then
 * the one handler in a cmd-*.c file runs (dispatch) and replies with
 * cmd_ok or cmd_fail, which live here: a bad line costs its sender one
 * error reply, and a handler that forgets to reply gets one sent for it.
 *
 * A write command runs in the loop iteration's transaction (txn.h), in a
 * savepoint of its own unless it opened it, and a failure takes back its
 * writes and its events (events_rollback_to).  Its reply is held until the
 * commit: the loop hook (server.c) commits and then calls
 * server_request_release, so an acknowledged write is durable; a failed
 * commit turns every held reply into an unavailable error for its id.
 *
 * A reply is at most --max-reply bytes: the list commands stop building at
 * the cap, and any reply over it becomes an invalid_argument error naming
 * the limit; a reply that would take the output of all clients past
 * --max-output-total becomes an unavailable error.  Never a silent close.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jsonr.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/server-int.h"
#include "daemon/server.h"
#include "daemon/txn.h"
#include "daemon/vmsteps.h"
#include "store/store.h"

/*
 * Replies held for the commit.  A reply produced while a transaction is
 * open is copied here and counted as its client's output; the loop hook
 * hands it over after the commit (or an error in its place, if the commit
 * failed).  A client that goes away leaves its entries with client NULL.
 */
struct held {
	struct client *client;
	char *line;
	size_t len;
};

static struct held *held;
static size_t nheld, capheld;

/*
 * Replies are written with jsonw into one scratch buffer, reused for every
 * reply (the loop is single-threaded), and handed to reply_or_hold, which
 * sends the line or holds a copy until the transaction commits.
 */
static struct buf scratch;

/* Send a reply line now, or hold a copy of it until the commit. */
static void
reply_or_hold(struct client *c, const char *line, size_t len)
{
	if (!txn_active()) {
		server_client_write(c, line, len);
		return;
	}
	if (nheld == capheld)
		held = xreallocarray(held, capheld = capheld ? capheld * 2 : 64, sizeof *held);
	held[nheld].client = c;
	held[nheld].line = xmalloc(len);
	memcpy(held[nheld].line, line, len);
	held[nheld].len = len;
	nheld++;
	c->held += len;
	server_out_total += len;
}

static void held_fail(struct client *, const char *line, size_t len, const char *why);

void
server_request_release(const char *why)
{
	size_t i;

	if (why != NULL)
		log_warnx("commit failed, %zu replies turned into errors: %s", nheld, why);
	for (i = 0; i < nheld; i++) {
		struct held *h = &held[i];
		if (h->client != NULL && why == NULL) {
			h->client->held -= h->len;
			server_out_total -= h->len;
			server_client_write(h->client, h->line, h->len);
		} else if (h->client != NULL)
			held_fail(h->client, h->line, h->len, why);
		free(h->line);
	}
	nheld = 0;
}

void
server_request_close(void)
{
	free(held);
	held = NULL;
	nheld = capheld = 0;
	buf_free(&scratch);
}

/* Send or hold the reply line in scratch. */
static void
reply_line(struct cmd_req *r)
{
	if (r->client != NULL)
		reply_or_hold(r->client, buf_head(&scratch), buf_used(&scratch));
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
	    (n <= D.cfg.max_reply && server_out_total + n <= D.cfg.max_output_total)) {
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
	         server_out_total, D.cfg.max_output_total);
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

void
server_request_forget_client(struct client *c)
{
	struct cmd_req *r;
	size_t i;

	for (i = 0; i < nheld; i++)
		if (held[i].client == c)
			held[i].client = NULL;
	for (r = held_reqs; r != NULL; r = r->next)
		if (r->client == c)
			r->client = NULL;
}

static void
cmd_req_free(struct cmd_req *r)
{
	json_decref(r->id);
	json_decref(r->args);
	free(r->agent);
	free(r);
}

/* A held reply whose commit failed: send an unavailable error for its id instead. */
static void
held_fail(struct client *c, const char *line, size_t len, const char *why)
{
	json_t *orig = json_loadb(line, len, 0, NULL), *env;
	char *s;

	c->held -= len; /* the reply it replaces was counted as c's output */
	server_out_total -= len;
	env = error_envelope(json_object_get(orig, "id"), ERR_UNAVAILABLE, why);
	s = json_dumps(env, JSON_COMPACT);
	server_client_write(c, s, strlen(s));
	server_client_write(c, "\n", 1);
	free(s);
	json_decref(env);
	json_decref(orig);
}

void
server_request_error(struct client *c, json_t *id, const char *code, const char *fmt, ...)
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
	long long steps;

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
	if (ce->flags & CMD_CONN)
		server_commit(); /* what came before on the connection is answered first */
	if (ce->flags & CMD_WRITE) {
		first = !txn_active();
		if (txn_write(&e) == -1) {
			cmd_fail_error(r, &e);
			return;
		}
		mark = events_mark();
		if (!first)
			store_savepoint(D.store);
	}
	r->in_dispatch = 1;
	steps = vmsteps_mark();
	ce->exec(r);
	vmsteps_note(ce->name, steps);
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

/*
 * An agent channel speaks only for its agent: the argument that names an
 * agent (below) defaults to the bound id and may not name another.  0, or
 * -1 after a permission_denied reply.
 */
static const struct {
	const char *cmd, *arg;
} bound_args[] = {
        {CMD_TASK_CLAIM, "agent"},   {CMD_TASK_UPDATE, "agent"},  {CMD_TASK_COMPLETE, "agent"},
        {CMD_TASK_RELEASE, "agent"}, {CMD_AGENT_HEARTBEAT, "id"}, {CMD_AGENT_REGISTER, "id"},
};

static int
request_bind(struct client *c, json_t *id, const struct cmd_entry *ce, json_t *args)
{
	const char *name;
	json_t *v;
	size_t i;

	for (i = 0; i < sizeof bound_args / sizeof bound_args[0]; i++)
		if (strcmp(ce->name, bound_args[i].cmd) == 0)
			break;
	if (i == sizeof bound_args / sizeof bound_args[0])
		return 0;
	name = bound_args[i].arg;
	if ((v = json_object_get(args, name)) == NULL || json_is_null(v)) {
		json_object_set_new(args, name, json_string(c->bound_agent));
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), c->bound_agent) == 0)
		return 0;
	server_request_error(c, id, ERR_PERMISSION_DENIED,
	                     "this connection is the channel of agent %.128s: %s acts only as "
	                     "that agent (\"%s\" must be it or absent)",
	                     c->bound_agent, ce->name, name);
	return -1;
}

/*
 * The envelope of a parsed request: id (an integer, a string or null), cmd
 * (in the table) and args (an object, or absent; checked against the
 * command's spec).  0 with *ce and *args (a new reference) set, or -1 after
 * an error reply.
 */
static int
request_check(struct client *c, json_t *req, const struct cmd_entry **ce, json_t **args)
{
	json_t *id, *cmd;
	char msg[256];

	if (!json_is_object(req)) {
		server_request_error(c, NULL, ERR_BAD_REQUEST, "a request is a JSON object");
		return -1;
	}
	id = json_object_get(req, "id");
	if (id != NULL && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id)) {
		server_request_error(c, NULL, ERR_BAD_REQUEST, "id must be an integer or a string");
		return -1;
	}
	cmd = json_object_get(req, "cmd");
	if (!json_is_string(cmd)) {
		server_request_error(c, id, ERR_BAD_REQUEST, "missing string \"cmd\"");
		return -1;
	}
	if ((*ce = cmd_find(json_string_value(cmd))) == NULL) {
		server_request_error(c, id, ERR_UNKNOWN_COMMAND, "unknown command \"%.64s\"",
		                     json_string_value(cmd));
		return -1;
	}
	*args = json_object_get(req, "args");
	if (*args != NULL && !json_is_object(*args) && !json_is_null(*args)) {
		server_request_error(c, id, ERR_BAD_REQUEST, "args must be an object");
		return -1;
	}
	*args = *args == NULL || json_is_null(*args) ? json_object() : json_incref(*args);
	if (c->bound_agent != NULL && request_bind(c, id, *ce, *args) == -1) {
		json_decref(*args);
		return -1;
	}
	if (cmd_check_args(*ce, *args, msg, sizeof msg) == -1) {
		server_request_error(c, id, ERR_INVALID_ARGUMENT, "%s (usage: %s)", msg,
		                     cmd_usage_line(*ce));
		json_decref(*args);
		return -1;
	}
	return 0;
}

void
server_request_line(struct client *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *id, *args;
	const struct cmd_entry *ce;
	struct cmd_req *r;

	while (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return; /* blank lines are keep-alives */
	if ((req = jsonr_loadb(line, len)) == NULL &&
	    (req = json_loadb(line, len, 0, &jerr)) == NULL) {
		server_request_error(c, NULL, ERR_BAD_REQUEST, "invalid JSON at column %d: %s",
		                     jerr.column, jerr.text);
		return;
	}
	if (request_check(c, req, &ce, &args) == -1)
		goto out;
	id = json_object_get(req, "id");
	r = xcalloc(1, sizeof *r);
	r->entry = ce;
	r->id = id != NULL ? json_incref(id) : json_null();
	r->args = args;
	r->client = c;
	r->uid = c->cred.uid;
	r->gid = c->cred.gid;
	r->pid = c->cred.pid;
	r->agent = c->bound_agent != NULL ? xstrdup(c->bound_agent) : NULL;
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
