/*
 * store.h -- the one interface the daemon uses for durable state.
 *
 * The store keeps the task board, the agent registry, tenants and the
 * events log.  Every function runs on the daemon's loop thread.  Results
 * come back as jansson objects in the protocol's shapes (docs/protocol.md),
 * so commands can reply with them directly; the caller owns (decrefs) them.
 *
 * Transactions are the caller's business (the daemon's group commit, see
 * src/daemon/txn.c): store_begin/commit/rollback and named savepoints.
 * Errors fill a struct store_err with a protocol error code and a message
 * and return -1; they never abort.
 *
 * Two backends sit behind this one interface (store.c dispatches):
 * SQLite, embedded, the default (store-sqlite.c); and PostgreSQL
 * (store-postgres.c), chosen by giving store_open a postgres:// or
 * postgresql:// URL, so several daemons on several hosts share one task
 * board, registry and events log.  Both keep the same schema semantics,
 * error codes and JSON shapes.  On PostgreSQL every call is a synchronous
 * libpq round trip on the loop thread; events carry the host id set with
 * store_set_host, and events committed through other daemons reach this
 * one through store_notify_fd/store_notify_read (LISTEN/NOTIFY) and the
 * event sink, in sequence order.
 */
#ifndef COLIBRI_STORE_H
#define COLIBRI_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "common/buf.h"

struct store;

struct store_err {
	const char *code; /* ERR_* from proto.h */
	char msg[256];
};

void store_err_set(struct store_err *, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * Open (creating and migrating) the database at path: a SQLite file, or a
 * PostgreSQL URL (postgres://... or postgresql://...).  NULL with cause on
 * error.
 */
struct store *store_open(const char *path, struct store_err *);
void store_close(struct store *);
/* The path, or the URL without its password.  Owned by the store. */
const char *store_path(struct store *);
/* "sqlite" or "postgres". */
const char *store_backend(struct store *);
/*
 * The backends this daemon can open: "sqlite", or "sqlite postgres" when the
 * PostgreSQL module and libpq load (see store-module.h).
 */
const char *store_backends_built(void);
int store_schema_version(struct store *);
/*
 * The host id stamped on the events this store appends (PostgreSQL; the
 * SQLite log has one host).  On a shared store, kind "spawned" in
 * store_agent_list means the agents this host supervises.  Copied.
 */
void store_set_host(struct store *, const char *host);

int store_begin(struct store *, struct store_err *);
int store_commit(struct store *, struct store_err *);
void store_rollback(struct store *);
int store_savepoint(struct store *);
void store_savepoint_release(struct store *);
void store_savepoint_rollback(struct store *);
int store_in_txn(struct store *);
/* The loop is idle: end the SQLite read snapshot (store-sqlite.c, st), if one is open. */
void store_idle(struct store *);
/* A read snapshot is open (store_idle would end it). */
int store_snapshot_open(struct store *);
/* Run PRAGMA integrity_check; 0 if "ok". */
int store_integrity_check(struct store *, struct store_err *);
/*
 * Durability (the daemon's --sync).  full: a committed transaction survives
 * a crash of the OS or a power loss (SQLite: synchronous=FULL, the WAL is
 * synced at every commit; PostgreSQL: synchronous_commit=on for this
 * daemon's connection).  Not full, the default: it survives a crash of
 * the daemon, not of the OS (SQLite: synchronous=NORMAL; PostgreSQL: the
 * server's own synchronous_commit, on unless its operator turned it off).
 * 0, or -1 with e.
 */
int store_set_sync(struct store *, int full, struct store_err *);
/* The durability in effect, read back from the database: "off", "normal", "full" or "extra". */
const char *store_sync(struct store *);

/* Counts for status: fills {tasks{open,claimed,done,cancelled,failed,ready}, agents, tenants,
 * events}. */
json_t *store_counts(struct store *);

/* Tasks. */
/* tags: NULL (none) or an array of tags (store-rules.h, store_rule_tags). */
json_t *store_task_create(struct store *, const char *title, const char *body, long long priority,
                          json_t *depends_on, json_t *tags, int64_t now, struct store_err *);
json_t *store_task_get(struct store *, long long id, struct store_err *);
/* The same two as compact JSON appended to out (the bytes jsonw_dump writes of the objects);
 * task-create's returns the new id, or -1. */
long long store_task_create_json(struct store *, const char *title, const char *body,
                                 long long priority, json_t *depends_on, json_t *tags, int64_t now,
                                 struct buf *out, struct store_err *);
int store_task_get_json(struct store *, long long id, struct buf *out, struct store_err *);
/*
 * One page of task-list (or task-ready) as JSON text.  The query's filters
 * are status, owner and tag (NULL: any; tag: the task carries it) or, with ready_only
 * (and tag), the ready queue in
 * its order (then after must be 0); otherwise the tasks with id > after, by
 * id.  At most limit tasks are written to out, comma-separated (the caller
 * adds the brackets); `more` is set when another task follows them and
 * `last_id` is the id of the last one written (after when none).  Writing
 * stops as soon as out holds more than max_bytes (0: no cap): the page is
 * returned cut and `over` set, so no reply larger than the cap is ever
 * built.  0, or -1 with e on a store error.
 */
struct store_task_page {
	const char *status, *owner, *tag;
	int ready_only;
	long long after, limit;
	size_t max_bytes;
	/* results */
	long long count, last_id;
	int more, over;
};
int store_task_list_json(struct store *, struct store_task_page *, struct buf *out,
                         struct store_err *);
/*
 * Claim a task for agent: id, or the head of the ready queue (id 0).  Every
 * claim bumps the task's epoch (the first claim makes it 1) in the same
 * statement, so a claim is told apart from every earlier one.  max_attempts
 * > 0 sets the task's max_attempts (how many failed runs make it failed); 0
 * leaves it.
 */
/* lease_ms 0: a claim with no lease (a task-bound run's: released in the transaction that
 * records the run's end, never by the sweep). */
json_t *store_task_claim(struct store *, const char *agent, long long id /* 0: next */,
                         long long lease_ms, long long max_attempts, int64_t now,
                         struct store_err *);
/*
 * changes: object with any of title, body, priority, progress, depends_on,
 * status.  epoch (0: not checked) must be the task's, else conflict (stale).
 */
json_t *store_task_update(struct store *, long long id, json_t *changes, const char *agent,
                          long long epoch, int64_t now, struct store_err *);
/*
 * Complete a claimed task.  epoch (0: not checked) must be the task's, else
 * conflict (stale).  Completing a done task again with the epoch it was
 * completed at (agent NULL or its owner) is the same completion: the task
 * is returned unchanged and *repeated set to 1 (the caller emits no event);
 * otherwise *repeated is 0.  Without an epoch a done task is a conflict.
 * A done task keeps its owner.
 */
json_t *store_task_complete(struct store *, long long id, const char *agent, long long epoch,
                            json_t *result, int64_t now, int *repeated, struct store_err *);
/* Return a claimed task to the queue; epoch as for task_complete. */
json_t *store_task_release(struct store *, long long id, const char *agent, long long epoch,
                           int64_t now, struct store_err *);
/*
 * A task-bound run of agent, claimed at epoch, failed with reason: when the
 * task is still claimed by agent (any owner if NULL) at that epoch, count
 * the attempt, keep reason as last_error (at most 1024 bytes, cut on a UTF-8
 * boundary), clear the owner and the lease, and make the task failed once
 * its attempts reach max_attempts, else open again (back in the ready
 * queue).  Returns the task; NULL with conflict when the agent no longer
 * holds that claim (it completed or released the task, or lost it), or
 * not_found.
 */
json_t *store_task_run_failed(struct store *, long long id, const char *agent, long long epoch,
                              const char *reason, int64_t now, struct store_err *);
/* Release expired claims; calls cb for each released task object (borrowed). Returns count. */
int store_task_expire(struct store *, int64_t now, void (*cb)(json_t *, void *), void *);
/* Release every claim of agent; cb per released task. */
int store_task_release_agent(struct store *, const char *agent, int64_t now,
                             void (*cb)(json_t *, void *), void *);
/* Extend the leases of agent's claims to now + their lease. */
int store_task_renew_agent(struct store *, const char *agent, int64_t now);
/* Earliest lease expiry among claimed tasks, or -1. */
int64_t store_task_next_expiry(struct store *);

/* Agents (registry and spawned).  fields: an object of columns to set. */
json_t *store_agent_put(struct store *, const char *id, json_t *fields, int64_t now,
                        struct store_err *);
json_t *store_agent_get(struct store *, const char *id, struct store_err *);
json_t *store_agent_list(struct store *, const char *kind, const char *state, struct store_err *);
int store_agent_delete(struct store *, const char *id);
/* Registered agents whose heartbeat is older than their lease; cb gets each id. */
int store_agent_find_lost(struct store *, int64_t now, void (*cb)(const char *, void *), void *);
int64_t store_agent_next_loss(struct store *);

/* Events log. */
long long store_event_append(struct store *, const char *topic, const char *data, int64_t ts,
                             struct store_err *);
long long store_event_last(struct store *);
/* An event-scan filter: 1 if the event of topic is wanted, else 0 (arg is the filter's). */
typedef int (*store_match_cb)(const char *topic, void *arg);
/*
 * Visit events with seq > since that match (match NULL: all), up to limit
 * matching ones; cb returns non-zero to stop.  Returns how many were visited, or -1.
 */
int store_event_scan(
        struct store *, long long since, long long limit, store_match_cb match, void *match_arg,
        int (*cb)(long long seq, int64_t ts, const char *topic, const char *data, void *), void *);

/*
 * Retention (src/daemon/retention.c).  event_compact deletes one batch of
 * the oldest events: a prefix of the log (by seq) of at most batch events,
 * each older than before (ms epoch; 0: no age limit) or more than
 * keep_rows below the last seq (0: no row cap), never past the first event
 * that is neither, and never the newest (the last seq stays known).  It raises the floor (kept in
 * kv as events.compacted_through) to the last seq the prefix covered, in the same transaction.
 * Returns the events deleted (0: nothing left to do), or -1 with e.  event_floor: every event with
 * seq <= it is gone (0: none ever compacted); a cursor below it has lost events.  event_oldest: the
 * oldest kept seq, 0 when the log is empty.  db_bytes: the database's
 * size (SQLite: page_count * page_size; PostgreSQL: pg_database_size).
 * reclaim: return up to max_pages free pages to the file system (SQLite
 * with auto_vacuum=incremental, when over a quarter of the file is free;
 * PostgreSQL: 0, its autovacuum does it); the pages freed, or -1 with e.
 */
long long store_event_compact(struct store *, int64_t before, long long keep_rows, long long batch,
                              struct store_err *);
long long store_event_floor(struct store *);
long long store_event_oldest(struct store *);
long long store_db_bytes(struct store *);
long long store_reclaim(struct store *, long long max_pages, struct store_err *);

/* Tenants. */
json_t *store_tenant_put(struct store *, const char *tenant_id, const char *jail_root_path,
                         const char *collection_id, int64_t now, struct store_err *);
json_t *store_tenant_get(struct store *, const char *tenant_id, struct store_err *);
json_t *store_tenant_list(struct store *, struct store_err *);
int store_tenant_set_status(struct store *, const char *tenant_id, const char *status,
                            const char *reason, int64_t now, struct store_err *);
int store_tenant_delete(struct store *, const char *tenant_id, struct store_err *);

/* Generic key/value for small daemon state (host inventory, cursors). */
int store_kv_set(struct store *, const char *key, const char *value, struct store_err *);
char *store_kv_get(struct store *, const char *key); /* caller frees; NULL if absent */

/*
 * Skills catalog index.  skills_replace replaces the whole index with
 * skills, an array of {name, description, path, fields (object), body}.
 * skills_list returns {"items": [{name, description, path, fields}]} whose
 * name, description or body contains query (case-insensitive; NULL: all);
 * skill_get the one skill with its body, or NULL with not_found.
 */
int store_skills_replace(struct store *, json_t *skills, int64_t now, struct store_err *);
json_t *store_skills_list(struct store *, const char *query, struct store_err *);
json_t *store_skill_get(struct store *, const char *name, struct store_err *);

/* Append one row to the prompt log (prompt-assemble's region hashes). */
int store_prompt_log_append(struct store *, const char *session_id, int64_t ts, const char *r1,
                            const char *r2, const char *r3, long long bytes, struct store_err *);

/*
 * Cross-host events (PostgreSQL).  After each commit that appended events
 * the store sends NOTIFY colibri_events; every store LISTENs on a second
 * connection.  store_notify_fd is that connection's socket (-1 on SQLite,
 * or while the connection is down): watch it for readability and call
 * store_notify_read, which consumes the notifications and hands the events
 * committed by other daemons to the sink, in seq order, each once.  It
 * returns the number of events handed over, or -1 when the listening
 * connection was lost (it reconnects on the next call; the fd may change).
 * The store also hands over, right after each of its own commits, the
 * other daemons' events that precede its own, so the sink and the daemon's
 * own publication together see one increasing sequence.
 */
typedef void (*store_event_cb)(long long seq, int64_t ts, const char *topic, const char *data,
                               void *arg);
void store_set_event_sink(struct store *, store_event_cb, void *arg);
int store_notify_fd(struct store *);
int store_notify_read(struct store *);

/* Raw access to the SQLite connection (tests, tools); NULL on PostgreSQL. */
struct sqlite3 *store_sqlite(struct store *);
/* The VM steps the SQLite connection's live statements have run (a test facility); -1 on
 * PostgreSQL. */
long long store_vm_steps(struct store *);

#endif
