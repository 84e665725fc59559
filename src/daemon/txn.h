/*
 * txn.h -- group commit: one store transaction per loop iteration.
 *
 * Every write in the daemon happens inside "the current transaction",
 * opened on first use (txn_write) and committed once per loop iteration
 * (txn_commit, called by the server's loop hook after the poll phase).  So
 * the writes of all the requests that arrived together -- and the
 * spawner's state changes -- share one commit.
 *
 * This file knows only the store: it holds no replies and no events.  The
 * server holds the replies of requests executed while a transaction is
 * open and sends them after txn_commit returns (an acknowledged write is a
 * durable write); the event log (events.h) keeps the events emitted in the
 * transaction, and the server publishes them after the commit, or drops
 * them with a failed one.
 */
#ifndef COLIBRI_TXN_H
#define COLIBRI_TXN_H

struct store_err;

void txn_init(void);
/* Commit what is open (a failure is logged) and close the handles. */
void txn_close(void);
/* Make sure a transaction is open.  -1 (err filled) if the store cannot begin. */
int txn_write(struct store_err *);
/* Is a transaction open?  1 or 0. */
int txn_active(void);
/* Roll the open transaction back (its first command failed; see server-request.c, dispatch). */
void txn_abort(void);
/*
 * Commit the open transaction, if any: 0 (committed, or nothing was open),
 * or -1 with err filled (the transaction is rolled back: nothing in it
 * happened).
 */
int txn_commit(struct store_err *);
/* Once per loop iteration, after the commit: bound the store's read snapshot (100 ms). */
void txn_snapshot_watch(void);

#endif
