/*
 * server.h -- the control socket: connections, framing, dispatch, output.
 *
 * The server accepts connections on the Unix socket, reads newline-framed
 * requests, parses each once, looks the command up in the command table,
 * checks arguments and privilege, and runs it.  Output to each client is
 * buffered and written once per loop iteration, with back-pressure and
 * caps.  It is the daemon's top floor, in four files (server-int.h); this
 * header is what main.c and the fuzz target see of it.  Commands see only
 * cmd.h, whose reply and connection functions the server implements.
 */
#ifndef COLIBRI_SERVER_H
#define COLIBRI_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct buf;
struct client;

int server_start(char **cause);
/* Stop accepting; requests already read still complete. */
void server_stop_accepting(void);
/* Close every connection and the listener. */
void server_close(void);
int server_client_count(void);
/* Does any client still have output to write? */
int server_output_pending(void);

/*
 * The agent channel: fd, one end of a socketpair whose other end an agent's
 * run inherits (COLIBRI_FD), becomes a connection with the agent role bound
 * to agent_id -- every command that names an agent (task-claim's agent,
 * task-update/complete/release's agent, agent-heartbeat's and
 * agent-register's id) defaults to it and is refused naming another.  It
 * takes fd (closed on failure too) and returns the channel's number for
 * server_channel_close, which closes it when the run ends (a channel
 * already closed by its agent is no error); 0 with *cause on failure.
 */
unsigned long long server_channel_open(int fd, const char *agent_id, uid_t uid, gid_t gid,
                                       char **cause);
void server_channel_close(unsigned long long channel);

/* Queue bytes for a client (a reply or an event line). */
void server_client_write(struct client *, const char *, size_t);
/*
 * Commit the current transaction (txn.h) now, then send the replies held
 * for it (each an unavailable error instead if the commit failed) and
 * publish its events (events.h).  The loop hook does this once per loop
 * iteration, and dispatch before a CMD_CONN command (subscribe), so its
 * reply follows the earlier ones.
 */
void server_commit(void);
/* Write out every client's queued output (called once per loop iteration). */
void server_flush_all(void);

/* Send an event line to every subscriber whose topics match and cursor is behind. */
void server_publish(long long seq, const char *topic, const char *line, size_t len);

/*
 * The detached-client seam, used only by the fuzz target
 * tests/fuzz/fuzz_request.c: a client with no socket, credentials given
 * (uid, gid; no pid, so only the primary gid counts for the admin group).
 * server_client_feed runs bytes through the real framing and dispatch;
 * replies and events accumulate in the client and server_client_take_output
 * appends them to `to` (returning the byte count) -- held write replies
 * arrive only after server_commit.  server_client_closed is non-zero once the
 * server has given up on the client (over-long line, output cap); further
 * input is ignored.  Free with server_client_free_detached (NULL is fine).
 */
struct client *server_client_new_detached(uid_t uid, gid_t gid);
void server_client_feed(struct client *, const char *, size_t);
size_t server_client_take_output(struct client *, struct buf *to);
int server_client_closed(const struct client *);
void server_client_free_detached(struct client *);

#endif
