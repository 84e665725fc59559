/*
 * server.h -- the control socket: connections, framing, dispatch, output.
 *
 * The server accepts connections on the Unix socket, reads newline-framed
 * requests, parses each once, looks the command up in the command table,
 * checks arguments and privilege, and runs it.  Output to each client is
 * buffered and written once per loop iteration; a client whose pending
 * output passes the cap is dropped.
 */
#ifndef COLIBRI_SERVER_H
#define COLIBRI_SERVER_H

#include <jansson.h>
#include <stddef.h>

struct client;

int server_start(char **cause);
/* Stop accepting; requests already read still complete. */
void server_stop_accepting(void);
/* Close every connection and the listener. */
void server_close(void);
int server_client_count(void);
/* Does any client still have output to write? */
int server_output_pending(void);

/* Queue bytes for a client (a reply or an event line). */
void server_client_write(struct client *, const char *, size_t);
/* A held reply whose commit failed: send an internal error for its id instead. */
void server_client_fail_held(struct client *, const char *line, size_t len, const char *why);
/* Write out every client's queued output (called once per loop iteration). */
void server_flush_all(void);

/* Make a client a subscriber from cursor on (events with seq > cursor). */
void server_client_subscribe(struct client *, json_t *topics, long long cursor);
void server_client_unsubscribe(struct client *);
/* Send an event line to every subscriber whose topics match and cursor is behind. */
void server_publish(long long seq, const char *topic, const char *line, size_t len);

#endif
