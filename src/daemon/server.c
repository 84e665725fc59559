/*
 * server.c -- the control socket: listening, accepting, and the loop hook.
 *
 * The server is the daemon's top floor: it calls down into the command
 * table (cmd.h), group commit (txn.h), the event log (events.h) and the
 * store, and nothing below calls up into it.  Its four files are seams of
 * one room (server-int.h says which is which); a request's path through
 * them is server-client.c (bytes, framing) -> server-request.c (parse,
 * check, dispatch, reply) -> one cmd-*.c -> store or subsystem, and back
 * through server-request.c and server-client.c.
 *
 * This file accepts connections and decides, once, each connection's role
 * (cmd.h: admin, member or agent) from what the kernel says about the peer
 * at connect time; every request on it is checked against its command's
 * roles in dispatch, and events of topics a role may not see
 * (cmd_event_visible) never reach it.  Connections are bounded:
 * --max-clients in all, the last --admin-slots of them for admins, at most
 * --max-clients-per-uid per other uid; a connection that holds part of a
 * line for --line-timeout-ms is closed.  Each refusal is an error line,
 * never a silent close.
 *
 * It also opens the agent channels: each run of a spawned agent inherits
 * one end of a socketpair (COLIBRI_FD), and the daemon's end is a
 * connection like any other but for its role, decided at creation: agent,
 * bound to that agent's id (server-request.c holds it to that id).  It is
 * the one way to the board from inside a jail, where the socket is out of
 * reach, and it closes when the run ends.
 *
 * And it owns the loop hook, the one place that orders what happens once
 * per loop iteration: commit, then the held replies and the events, then
 * the replay pages, then the writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/notify.h"
#include "daemon/peercred.h"
#include "daemon/server-int.h"
#include "daemon/server.h"
#include "daemon/spawner.h"
#include "daemon/txn.h"
#include "store/store.h"

static uv_pipe_t listener;
static int listening;

static uv_timer_t line_timer;

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
 * The loop hook: once per loop iteration, after the poll phase (a uv_check
 * handle), commit the iteration's transaction, hand over the replies held
 * for it and publish the events it carried, give replaying subscribers
 * their pages, write every client's output, and bound the store's read
 * snapshot -- in this order, so an acknowledged write is durable and no
 * subscriber sees an event that a rollback could still take back.
 */
static uv_check_t loop_check;

void
server_commit(void)
{
	const struct event_out *ev;
	struct store_err e;
	size_t i, n;

	if (txn_commit(&e) == -1) {
		server_request_release(e.msg);
		events_forget();
		return;
	}
	server_request_release(NULL);
	ev = events_pending(&n);
	for (i = 0; i < n; i++)
		server_publish(ev[i].seq, ev[i].topic, ev[i].line, ev[i].len);
	notify_published(ev, n);
	events_forget();
}

static void
loop_check_cb(uv_check_t *h)
{
	(void)h;
	server_commit();
	server_replay_run();
	server_client_pressure_relief();
	server_flush_all();
	txn_snapshot_watch();
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
	else if (server_nclients >= D.cfg.max_clients)
		snprintf(why, len, "too many clients (--max-clients %d)", D.cfg.max_clients);
	else if (c->admin)
		return 0;
	else if (server_nclients >= D.cfg.max_clients - D.cfg.admin_slots)
		snprintf(why, len,
		         "too many clients: the last %d of the %d connection slots are kept for "
		         "admins (--admin-slots)",
		         D.cfg.admin_slots, D.cfg.max_clients);
	else {
		for (o = server_clients; o != NULL; o = o->next)
			/* An agent's channel is its run's, not its uid's. */
			same += o->cred.uid == c->cred.uid && !o->closing &&
			        !o->close_after_flush && o->channel == 0;
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
		uv_close((uv_handle_t *)&c->pipe, server_client_on_closed);
		return;
	}
	uv_fileno((uv_handle_t *)&c->pipe, &fd);
	c->fd = fd;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->wbuf);
	if (peercred_get(fd, &c->cred) == -1) {
		log_warn("peer credentials");
		uv_close((uv_handle_t *)&c->pipe, server_client_on_closed);
		return;
	}
	c->role = client_decide_role(c);
	c->admin = c->role == CMD_R_ADMIN;
	if (client_refusal(c, why, sizeof why) == -1) {
		server_client_link(c);
		server_request_error(c, NULL, ERR_UNAVAILABLE, "%s", why);
		c->close_after_flush = 1;
		server_client_mark_dirty(c);
		return;
	}
	server_client_link(c);
	server_client_read_start(c);
}

static unsigned long long channel_seq;

unsigned long long
server_channel_open(int fd, const char *agent_id, uid_t uid, gid_t gid, char **cause)
{
	struct client *c = xcalloc(1, sizeof *c);
	int rc;

	uv_pipe_init(D.loop, &c->pipe, 0);
	c->pipe.data = c;
	if ((rc = uv_pipe_open(&c->pipe, fd)) != 0) {
		xasprintf(cause, "the agent channel: %s", uv_strerror(rc));
		close(fd);
		uv_close((uv_handle_t *)&c->pipe, server_client_on_closed);
		return 0;
	}
	c->fd = fd;
	c->cred.uid = uid;
	c->cred.gid = gid;
	c->cred.pid = -1;
	c->role = CMD_R_AGENT;
	c->bound_agent = xstrdup(agent_id);
	c->channel = ++channel_seq;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->wbuf);
	server_client_link(c);
	server_client_read_start(c);
	return c->channel;
}

void
server_channel_close(unsigned long long channel)
{
	struct client *c;

	if (channel == 0)
		return;
	for (c = server_clients; c != NULL; c = c->next) {
		if (c->channel == channel) {
			server_client_close(c, "the agent's run ended");
			return;
		}
	}
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
	for (c = server_clients; c != NULL; c = next) {
		next = c->next;
		if (c->partial_since == 0 || c->detached || c->closing || c->close_after_flush ||
		    now - c->partial_since < (uint64_t)D.cfg.line_timeout_ms)
			continue;
		log_info("client pid %ld: a partial line for %lld ms; closing it",
		         (long)c->cred.pid, (long long)(now - c->partial_since));
		server_request_error(
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
	uv_check_init(D.loop, &loop_check);
	uv_check_start(&loop_check, loop_check_cb);
	uv_unref((uv_handle_t *)&loop_check);
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
	server_commit();
	server_stop_accepting();
	while (server_clients != NULL)
		server_client_close(server_clients, "shutdown");
	if (line_timer.loop != NULL)
		uv_close((uv_handle_t *)&line_timer, NULL);
	server_replay_close();
	server_request_close();
	if (loop_check.loop != NULL)
		uv_close((uv_handle_t *)&loop_check, NULL);
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
	server_client_link(c);
	return c;
}

void
server_client_feed(struct client *c, const char *p, size_t n)
{
	if (n == 0 || c->closing || c->close_after_flush)
		return;
	buf_add(&c->in, p, n);
	server_client_input(c);
}

size_t
server_client_take_output(struct client *c, struct buf *to)
{
	size_t n = buf_used(&c->out);

	if (n > 0)
		buf_add(to, buf_head(&c->out), n);
	buf_reset(&c->out);
	server_out_total -= n;
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
	server_client_close(c, NULL);
	server_client_free(c);
}
