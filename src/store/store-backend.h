/*
 * store-backend.h -- what a store backend implements (private to src/store).
 *
 * store.c owns `struct store` and dispatches every store_* call of store.h
 * to the backend chosen at store_open: sqlite_store_* (store-sqlite.c,
 * linked into the daemon) or pg_store_* (store-postgres.c, a shared module
 * loaded on demand; see store-module.h).  Each backend function has the
 * signature of its store.h counterpart with the backend's own handle in
 * place of `struct store *`, and the same contract: the same JSON shapes,
 * the same error codes, the same ownership of results.
 *
 * STORE_BACKEND_FUNCS lists them once, as X(return type, name, (params)),
 * T standing for the backend's handle type: it declares the SQLite
 * functions, the PostgreSQL ones and the members of the module's table.
 * A new store.h function is one line here, one dispatch line in store.c
 * and its two implementations (and a bump of STORE_MODULE_ABI).
 */
#ifndef COLIBRI_STORE_BACKEND_H
#define COLIBRI_STORE_BACKEND_H

#include <jansson.h>
#include <stdint.h>

#include "common/buf.h"
#include "store/store.h"

typedef int (*store_scan_cb)(long long seq, int64_t ts, const char *topic, const char *data,
                             void *);

#define STORE_BACKEND_FUNCS(X, T)                                                                  \
	X(T *, open, (const char *path, struct store_err *))                                       \
	X(void, close, (T *))                                                                      \
	X(int, schema_version, (T *))                                                              \
	X(int, begin, (T *, struct store_err *))                                                   \
	X(int, commit, (T *, struct store_err *))                                                  \
	X(void, rollback, (T *))                                                                   \
	X(int, savepoint, (T *))                                                                   \
	X(void, savepoint_release, (T *))                                                          \
	X(void, savepoint_rollback, (T *))                                                         \
	X(int, in_txn, (T *))                                                                      \
	X(int, integrity_check, (T *, struct store_err *))                                         \
	X(int, set_sync, (T *, int full, struct store_err *))                                      \
	X(const char *, sync, (T *))                                                               \
	X(json_t *, counts, (T *))                                                                 \
	X(void, idle, (T *))                                                                       \
	X(int, snapshot_open, (T *))                                                               \
	X(long long, task_insert,                                                                  \
	  (T *, const char *, const char *, long long, json_t *, json_t *, int64_t, struct buf *,  \
	   struct store_err *))                                                                    \
	X(json_t *, task_get, (T *, long long, struct store_err *))                                \
	X(int, task_get_json, (T *, long long, struct buf *, struct store_err *))                  \
	X(int, task_list_json, (T *, struct store_task_page *, struct buf *, struct store_err *))  \
	X(json_t *, task_claim,                                                                    \
	  (T *, const char *, long long, long long, long long, int64_t, struct store_err *))       \
	X(json_t *, task_update,                                                                   \
	  (T *, long long, json_t *, const char *, long long, int64_t, struct store_err *))        \
	X(json_t *, task_complete,                                                                 \
	  (T *, long long, const char *, long long, json_t *, int64_t, int *, struct store_err *)) \
	X(json_t *, task_release,                                                                  \
	  (T *, long long, const char *, long long, int64_t, struct store_err *))                  \
	X(json_t *, task_run_failed,                                                               \
	  (T *, long long, const char *, long long, const char *, int64_t, struct store_err *))    \
	X(int, task_expire, (T *, int64_t, void (*)(json_t *, void *), void *))                    \
	X(int, task_release_agent,                                                                 \
	  (T *, const char *, int64_t, void (*)(json_t *, void *), void *))                        \
	X(int, task_renew_agent, (T *, const char *, int64_t))                                     \
	X(int64_t, task_next_expiry, (T *))                                                        \
	X(json_t *, agent_put, (T *, const char *, json_t *, int64_t, struct store_err *))         \
	X(json_t *, agent_get, (T *, const char *, struct store_err *))                            \
	X(json_t *, agent_list, (T *, const char *, const char *, struct store_err *))             \
	X(int, agent_delete, (T *, const char *))                                                  \
	X(int, agent_find_lost, (T *, int64_t, void (*)(const char *, void *), void *))            \
	X(int64_t, agent_next_loss, (T *))                                                         \
	X(long long, event_append, (T *, const char *, const char *, int64_t, struct store_err *)) \
	X(long long, event_last, (T *))                                                            \
	X(int, event_scan,                                                                         \
	  (T *, long long, long long, store_match_cb, void *, store_scan_cb, void *))              \
	X(long long, event_compact, (T *, int64_t, long long, long long, struct store_err *))      \
	X(long long, event_floor, (T *))                                                           \
	X(long long, event_oldest, (T *))                                                          \
	X(long long, db_bytes, (T *))                                                              \
	X(long long, reclaim, (T *, long long, struct store_err *))                                \
	X(json_t *, tenant_put,                                                                    \
	  (T *, const char *, const char *, const char *, int64_t, struct store_err *))            \
	X(json_t *, tenant_get, (T *, const char *, struct store_err *))                           \
	X(json_t *, tenant_list, (T *, struct store_err *))                                        \
	X(int, tenant_set_status,                                                                  \
	  (T *, const char *, const char *, const char *, int64_t, struct store_err *))            \
	X(int, tenant_delete, (T *, const char *, struct store_err *))                             \
	X(int, kv_set, (T *, const char *, const char *, struct store_err *))                      \
	X(char *, kv_get, (T *, const char *))                                                     \
	X(int, skills_replace, (T *, json_t *, int64_t, struct store_err *))                       \
	X(json_t *, skills_list, (T *, const char *, struct store_err *))                          \
	X(json_t *, skill_get, (T *, const char *, struct store_err *))                            \
	X(int, prompt_log_append,                                                                  \
	  (T *, const char *, int64_t, const char *, const char *, const char *, long long,        \
	   struct store_err *))

/* The SQLite backend, linked into the daemon: sqlite_store_open, sqlite_store_close, ... */
struct sqlite_store;
#define STORE_SQLITE_DECL(ret, name, args) ret sqlite_store_##name args;
STORE_BACKEND_FUNCS(STORE_SQLITE_DECL, struct sqlite_store)
/* The backend's own connection, for store_sqlite(). */
struct sqlite3 *sqlite_store_db(struct sqlite_store *);

#endif
