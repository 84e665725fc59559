/*
 * server-int.h -- what the server's four files share, and nobody else.
 *
 * The control socket is one room in four files, each a seam of it:
 *   server.c           the listener, accepting (role, connection limits),
 *                      the agent channels, the partial-line timeout, the
 *                      loop hook that commits and publishes, and the
 *                      detached-client seam;
 *   server-client.c    a connection's bytes: reading and framing lines,
 *                      back-pressure, output buffers and writes, closing;
 *   server-request.c   one line's way through: parse, envelope, table,
 *                      arguments, role, dispatch in the transaction, and
 *                      the reply (cmd_ok, cmd_fail), held until the commit;
 *   server-subscribe.c subscribers: live publishing and the paged replay.
 * They share the client structure, the client list and the output total
 * below.  Only server.h is for the rest of the daemon.
 */
#ifndef COLIBRI_SERVER_INT_H
#define COLIBRI_SERVER_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "daemon/peercred.h"

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
	size_t held;            /* reply bytes held for the commit (server-request.c) */
	uint64_t partial_since; /* loop time the unfinished line in `in` began, 0: none */
	int replaying;          /* subscribed, catching up from the store, not yet live */
	int in_rq;
	struct client *next_rq;
	/* The agent channel (server_channel_open): the agent it is bound to, or NULL. */
	char *bound_agent;
	unsigned long long channel; /* its number, 0: a connection on the socket */
};

/* server-client.c: every connection, their number, and their unsent output together. */
extern struct client *server_clients;
extern int server_nclients;     /* connections on the socket (agent channels are not counted) */
extern size_t server_out_total; /* every client's unsent output: out, wbuf and held */

/* Output held for c: queued, being written, or waiting for the commit. */
size_t server_client_pending(const struct client *);
/* The small pause threshold (back-pressure), where a replay page stops. */
size_t server_client_small_bytes(void);
/* Put c on the list of clients with output to write this iteration. */
void server_client_mark_dirty(struct client *);
/* Add c to the client list (counted against the limits). */
void server_client_link(struct client *);
/* Start reading c's socket. */
void server_client_read_start(struct client *);
/* Run every complete line in c's input (framing, the line bound, back-pressure). */
void server_client_input(struct client *);
/* Unlink c and close its socket (why is logged; NULL: an ordinary close). */
void server_client_close(struct client *, const char *why);
/* The uv_close callback of a client's pipe: frees it. */
void server_client_on_closed(uv_handle_t *);
void server_client_free(struct client *);
/* Clients paused at the small threshold resume once the total falls low enough. */
void server_client_pressure_relief(void);

/* server-request.c: one complete line (without its newline), from parse to reply. */
void server_request_line(struct client *, const char *line, size_t len);
/* An error reply that answers no request (or a request that never ran). */
void server_request_error(struct client *, json_t *id, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The commit is done (why NULL) or failed (why): hand every held reply over. */
void server_request_release(const char *why);
/* c is going away: its held replies are dropped, its async requests answer nobody. */
void server_request_forget_client(struct client *);
/* Free what the request path keeps (at close). */
void server_request_close(void);

/* server-subscribe.c: the replay queue of subscribers catching up. */
void server_replay_enqueue(struct client *);
void server_replay_remove(struct client *);
/* A page is due: keep the loop from sleeping in poll before the next check. */
void server_replay_kick(void);
/* Give queued subscribers a page each (the loop hook, right after the commit). */
void server_replay_run(void);
void server_replay_close(void);

#endif
