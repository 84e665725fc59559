/*
 * events.h -- the event log: emitting events and matching their topics.
 *
 * An event is appended to the store's events table inside the current
 * transaction (txn.h), so it is durable exactly when the writes it
 * reports are, and kept pending here, already serialised as the line a
 * subscriber gets.  After the commit the server takes the pending events
 * (events_pending), publishes them in seq order and forgets them
 * (events_forget); a failed commit forgets them unpublished.  A command
 * that fails in a savepoint takes its events back with events_rollback_to.
 *
 * Which events a subscriber or a reader wants is a topic-prefix match
 * (events_topic_matches), a subscription concern: the store's event scan
 * takes it as a filter and knows nothing of topics.
 */
#ifndef COLIBRI_EVENTS_H
#define COLIBRI_EVENTS_H

#include <jansson.h>
#include <stddef.h>

/* An event of the open transaction, as it will be published. */
struct event_out {
	long long seq;
	char *topic;
	char *line; /* the wire line, newline included (events_line) */
	size_t len;
};

/*
 * Append an event to the log in the current transaction (opening one) and
 * keep it pending for subscribers.  data is stolen.  Returns the seq, or -1.
 */
long long events_emit(const char *topic, json_t *data);
/* The same with data already serialised as compact JSON (a NUL-terminated string, not taken). */
long long events_emit_raw(const char *topic, const char *data);
/* Savepoint bookkeeping: events emitted after mark are dropped on rollback. */
size_t events_mark(void);
void events_rollback_to(size_t mark);
/* The pending events in seq order (*n of them); valid until the next emit or forget. */
const struct event_out *events_pending(size_t *n);
/* Drop every pending event (published, or lost with a failed commit). */
void events_forget(void);
/* Free the pending list itself (at exit). */
void events_close(void);

/* Serialise an event line (with newline) for the wire; caller frees. */
char *events_line(long long seq, long long ts, const char *topic, const char *data, size_t *len);

/*
 * Does topic start with one of the prefixes in topics (a JSON array of
 * strings; NULL or empty: every topic)?  1 or 0.  Its shape is the store's
 * event-scan filter (store_match_cb), topics passed as the filter's arg.
 */
int events_topic_matches(const char *topic, void *topics);

#endif
