/*
 * store-backend.h -- what a store backend implements (private to src/store).
 *
 * store.c owns `struct store` and dispatches every store_* call of store.h
 * to the backend chosen at store_open: sqlite_store_* (store-sqlite.c) or
 * pg_store_* (store-postgres.c, built when libpq is found).  Each backend
 * function has the signature of its store.h counterpart with the backend's
 * own handle in place of `struct store *`, and the same contract: the
 * same JSON shapes, the same error codes, the same ownership of results.
 * A new store.h function gets one line here per backend and one dispatch
 * line in store.c.
 */
#ifndef COLIBRI_STORE_BACKEND_H
#define COLIBRI_STORE_BACKEND_H

#include <jansson.h>
#include <stdint.h>

#include "common/buf.h"
#include "store/store.h"

typedef int (*store_scan_cb)(long long seq, int64_t ts, const char *topic, const char *data,
                             void *);

#define STORE_BACKEND_DECLS(P, T)                                                                  \
	T *P##open(const char *path, struct store_err *);                                          \
	void P##close(T *);                                                                        \
	int P##schema_version(T *);                                                                \
	int P##begin(T *, struct store_err *);                                                     \
	int P##commit(T *, struct store_err *);                                                    \
	void P##rollback(T *);                                                                     \
	int P##savepoint(T *);                                                                     \
	void P##savepoint_release(T *);                                                            \
	void P##savepoint_rollback(T *);                                                           \
	int P##in_txn(T *);                                                                        \
	int P##integrity_check(T *, struct store_err *);                                           \
	int P##set_sync(T *, int full, struct store_err *);                                        \
	const char *P##sync(T *);                                                                  \
	json_t *P##counts(T *);                                                                    \
	void P##idle(T *);                                                                         \
	int P##snapshot_open(T *);                                                                 \
	long long P##task_insert(T *, const char *, const char *, long long, json_t *, int64_t,    \
	                         struct buf *, struct store_err *);                                \
	json_t *P##task_get(T *, long long, struct store_err *);                                   \
	int P##task_get_json(T *, long long, struct buf *, struct store_err *);                    \
	int P##task_list_json(T *, struct store_task_page *, struct buf *, struct store_err *);    \
	json_t *P##task_claim(T *, const char *, long long, long long, int64_t,                    \
	                      struct store_err *);                                                 \
	json_t *P##task_update(T *, long long, json_t *, const char *, int64_t,                    \
	                       struct store_err *);                                                \
	json_t *P##task_complete(T *, long long, const char *, json_t *, int64_t,                  \
	                         struct store_err *);                                              \
	json_t *P##task_release(T *, long long, const char *, int64_t, struct store_err *);        \
	int P##task_expire(T *, int64_t, void (*)(json_t *, void *), void *);                      \
	int P##task_release_agent(T *, const char *, int64_t, void (*)(json_t *, void *), void *); \
	int P##task_renew_agent(T *, const char *, int64_t);                                       \
	int64_t P##task_next_expiry(T *);                                                          \
	json_t *P##agent_put(T *, const char *, json_t *, int64_t, struct store_err *);            \
	json_t *P##agent_get(T *, const char *, struct store_err *);                               \
	json_t *P##agent_list(T *, const char *, const char *, struct store_err *);                \
	int P##agent_delete(T *, const char *);                                                    \
	int P##agent_find_lost(T *, int64_t, void (*)(const char *, void *), void *);              \
	int64_t P##agent_next_loss(T *);                                                           \
	long long P##event_append(T *, const char *, const char *, int64_t, struct store_err *);   \
	long long P##event_last(T *);                                                              \
	int P##event_scan(T *, long long, long long, json_t *, store_scan_cb, void *);             \
	json_t *P##tenant_put(T *, const char *, const char *, const char *, int64_t,              \
	                      struct store_err *);                                                 \
	json_t *P##tenant_get(T *, const char *, struct store_err *);                              \
	json_t *P##tenant_list(T *, struct store_err *);                                           \
	int P##tenant_set_status(T *, const char *, const char *, const char *, int64_t,           \
	                         struct store_err *);                                              \
	int P##tenant_delete(T *, const char *, struct store_err *);                               \
	int P##kv_set(T *, const char *, const char *, struct store_err *);                        \
	char *P##kv_get(T *, const char *);                                                        \
	int P##skills_replace(T *, json_t *, int64_t, struct store_err *);                         \
	json_t *P##skills_list(T *, const char *, struct store_err *);                             \
	json_t *P##skill_get(T *, const char *, struct store_err *);                               \
	int P##prompt_log_append(T *, const char *, int64_t, const char *, const char *,           \
	                         const char *, long long, struct store_err *);

struct sqlite_store;
STORE_BACKEND_DECLS(sqlite_store_, struct sqlite_store)
/* The backend's own connection, for store_sqlite(). */
struct sqlite3 *sqlite_store_db(struct sqlite_store *);

#ifdef COLIBRI_HAVE_POSTGRES
struct pg_store;
STORE_BACKEND_DECLS(pg_store_, struct pg_store)
void pg_store_set_host(struct pg_store *, const char *host);
void pg_store_set_event_sink(struct pg_store *, store_event_cb, void *);
int pg_store_notify_fd(struct pg_store *);
int pg_store_notify_read(struct pg_store *);
/* The URL with any password removed (for status and logs); owned by the store. */
const char *pg_store_url(struct pg_store *);
#endif

/* Is path a PostgreSQL connection URL (postgres:// or postgresql://)? */
int store_is_postgres_url(const char *path);

#endif
