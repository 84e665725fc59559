/*
 * store-postgres.h -- what the files of the PostgreSQL backend share
 * (private to src/store; the daemon sees only store.h).
 *
 * The backend is four files cut along its sections: store-postgres.c (the
 * connections, parameters, the statement cache, errors, migrations and
 * transactions with the ordered hand-over of events), store-postgres-tasks.c
 * (the task board), store-postgres-registry.c (agents, tenants, kv, the
 * skills index and the prompt log) and store-postgres-events.c (the events
 * log and the cross-host notifications).  They are built into one shared
 * module, store-postgres.so, that store.c loads only when a PostgreSQL URL
 * is opened; see store-module.h.
 */
#ifndef COLIBRI_STORE_POSTGRES_H
#define COLIBRI_STORE_POSTGRES_H

#include <jansson.h>
#include <libpq-fe.h>

#include "store/store-backend.h"
#include "store/store-module.h"
#include "store/store.h"

#define STMT_CACHE     128
#define MAX_PARAMS     16
#define EVENTS_LOCK    "4242424201"
#define MIGRATE_LOCK   "4242424202"
#define HANDOVER_BATCH 1000

struct pg_params {
	const char *v[MAX_PARAMS];
	char num[MAX_PARAMS][24];
	int n;
};

struct pg_store {
	PGconn *db;
	PGconn *listen;
	int listen_broken;
	char *conninfo;
	char *url; /* conninfo without a password */
	char *host;
	int txn;
	int sync_full; /* --sync full: synchronous_commit=on, set again after a reconnect */
	int in_savepoint;
	/* event ordering state of the open transaction */
	int evlock;
	long long own_min, own_max;
	int sp_evlock;
	long long sp_min, sp_max;
	/* hand-over of other daemons' events */
	long long handed;
	int notified;
	store_event_cb sink;
	void *sink_arg;
	/* last error */
	const char *err_code;
	char err_msg[200];
	struct {
		const char *sql;
		char name[12];
	} prep[STMT_CACHE];
	int nprep;
};

/* The backend's functions (pg_store_open, ...), gathered in the module's table. */
#define STORE_PG_DECL(ret, name, args) ret pg_store_##name args;
STORE_BACKEND_FUNCS(STORE_PG_DECL, struct pg_store)
void pg_store_set_host(struct pg_store *, const char *host);
void pg_store_set_event_sink(struct pg_store *, store_event_cb, void *);
int pg_store_notify_fd(struct pg_store *);
int pg_store_notify_read(struct pg_store *);
const char *pg_store_url(struct pg_store *);

/*
 * A task is ready: open, and every task it depends on is done (t is the task;
 * unfinished_deps is kept by triggers, migration 5): the ready queue walks the
 * index tasks_ready (status, unfinished_deps, priority DESC, id).
 */
#define READY_WHERE "t.status = 'open' AND t.unfinished_deps = 0"

/* Query parameters: an integer (formatted into p) or borrowed text (NULL for SQL NULL). */
void pp_int(struct pg_params *p, long long v);
void pp_text(struct pg_params *p, const char *v);
/* Remember why r (or the connection) failed; did r succeed? */
void pg_note(struct pg_store *s, const PGresult *r);
int pg_ok(const PGresult *r);
/* Fill e with the noted error, prefixed by what. */
void pg_dberr(struct pg_store *s, struct store_err *e, const char *what);
/* The cached statement sql (a string literal) run with p: the result (PQclear it) or NULL. */
PGresult *pg_run(struct pg_store *s, const char *sql, const struct pg_params *p);
/* pg_run, the result dropped: 0, or -1 with the cause noted. */
int pg_do(struct pg_store *s, const char *sql, const struct pg_params *p);
/*
 * r (from pg_run) holds a row: 0; else -1 with the database error (r NULL)
 * or not_found with the message fmt (no row).  The caller clears r.
 */
int pg_one_row(struct pg_store *s, const PGresult *r, const char *what, struct store_err *e,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Rows a command changed; an integer cell (dflt when NULL); a query's single integer. */
long long pg_changes(PGresult *r);
long long pg_int(const PGresult *r, int row, int col, long long dflt);
long long pg_scalar(struct pg_store *s, const char *sql, const struct pg_params *p, long long dflt);
/* A cell as JSON: an integer, a string or parsed JSON; null for SQL NULL. */
json_t *pg_col_int(const PGresult *r, int row, int col);
json_t *pg_col_text(const PGresult *r, int row, int col);
json_t *pg_col_json(const PGresult *r, int row, int col);
/* (Re)open the LISTEN connection: 0 or -1. */
int pg_listen_start(struct pg_store *s);
/* Hand the events after s->handed (and below `below`, if > 0) to the sink, in order. */
int pg_handover(struct pg_store *s, long long below);

#endif
