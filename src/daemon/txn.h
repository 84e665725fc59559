/*
 * txn.h -- group commit and the events that ride on it.
 *
 * Every write in the daemon happens inside "the current transaction",
 * opened on first use (txn_write) and committed once per loop iteration,
 * after the poll phase (a uv_check handle).  So the writes of all the
 * requests that arrived together -- and the spawner's state changes --
 * share one commit.  Replies to requests executed while a transaction is
 * open are held and sent only after it commits: an acknowledged write is a
 * durable write.  Events emitted in the transaction are published to
 * subscribers after the commit, in sequence order; if the commit fails
 * they are dropped with it.
 */
#ifndef COLIBRI_TXN_H
#define COLIBRI_TXN_H

#include <jansson.h>

struct client;
struct store_err;

void txn_init(void);
void txn_close(void);
/* Make sure a transaction is open.  -1 (err filled) if the store cannot begin. */
int txn_write(struct store_err *);
int txn_open(void);
/* Commit now (if open), then send held replies and publish events. */
void txn_flush(void);

/* Hold a reply line (copied) for client until the commit; sent immediately if no txn. */
/* Roll the open transaction back (its first command failed; see server.c, dispatch). */
void txn_abort(void);
void txn_reply(struct client *, const char *line, size_t len);
/* Forget held replies of a client that is going away. */
void txn_forget_client(struct client *);

/*
 * Append an event to the log in the current transaction (opening one) and
 * queue it for subscribers.  data is stolen.  Returns the seq, or -1.
 */
long long events_emit(const char *topic, json_t *data);
/* The same with data already serialised as compact JSON (a NUL-terminated string, not taken). */
long long events_emit_raw(const char *topic, const char *data);
/* Savepoint bookkeeping: events emitted after mark are dropped on rollback. */
size_t events_mark(void);
void events_rollback_to(size_t mark);
/* Serialise an event line (with newline) for the wire; caller frees. */
char *events_line(long long seq, long long ts, const char *topic, const char *data, size_t *len);

#endif
