/*
 * client.h -- a small blocking client of the colibri-daemon socket.
 *
 * Used by the colibri CLI, colibri-glasspane, colibri-mcp, the smoke agent
 * and the benchmarks.  One connection, one request in flight at a time
 * (client_call), plus a line reader for event streams (client_next).
 *
 * Socket resolution (client_default_socket): an explicit path, else
 * $COLIBRI_SOCKET, else the OS default (/var/run/colibri/colibri.sock on
 * FreeBSD, /run/colibri/colibri.sock on Linux).
 *
 * Inside an agent's run the agent channel comes first: with COLIBRI_FD set
 * (the descriptor of the connection the daemon gave the run, the one way to
 * the board from inside a jail), client_connect uses a copy of it instead
 * of the default socket -- only an explicit other path still means that
 * socket.  The copy is the connection's; closing it leaves COLIBRI_FD open
 * for the next one.  The channel is one connection: whoever shares it
 * (the agent and a `colibri` it runs) takes turns, a request at a time.
 */
#ifndef COLIBRI_CLIENT_H
#define COLIBRI_CLIENT_H

#include <jansson.h>

#include "common/buf.h"

struct client {
	int fd;
	long long next_id;
	struct buf in;
	/* Events that arrived while waiting for a reply, in order (a JSON array). */
	json_t *pending_events;
};

/* The error of a failed call: code is one of proto.h's ERR_* or "unreachable". */
struct client_error {
	char code[32];
	char message[512];
};

const char *client_default_socket(void);
/* Connect (to the agent channel when COLIBRI_FD is set and path is NULL or the
 * default); returns NULL with errno set on failure. */
struct client *client_connect(const char *path);
void client_close(struct client *);

/*
 * Send {"id", "cmd", "args"} and wait for the matching reply.  args is
 * borrowed (may be NULL).  On success returns 0 and *result holds a new
 * reference (caller decrefs).  Returns -1 with err filled when the daemon
 * refused, -2 when the connection failed (err->code "unreachable").
 */
int client_call(struct client *, const char *cmd, json_t *args, json_t **result,
                struct client_error *err);

/*
 * Read the next line-object from the connection (an event after
 * subscribe).  timeout_ms < 0 waits forever.  Returns 1 with *msg set (new
 * reference), 0 on timeout, -1 on EOF or error.
 */
int client_next(struct client *, int timeout_ms, json_t **msg);

#endif
