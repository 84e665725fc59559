/*
 * store-module.h -- the PostgreSQL backend as a module loaded on demand.
 *
 * The PostgreSQL backend links libpq, which triples a daemon's idle RSS;
 * most daemons never use it.  So it is not linked into colibri-daemon: it
 * is a shared module, store-postgres.so, installed in LIBDIR/colibri, that
 * store.c loads with dlopen the first time a postgres:// or postgresql://
 * URL is opened (--store).  A daemon on its SQLite file never maps the
 * module or libpq.  The packaged daemon serves both stores without a
 * rebuild; multi-host needs only the module and libpq installed.
 *
 * The module exports one symbol, colibri_store_postgres, a table of the
 * backend's functions (everything else in it is hidden).  The table starts
 * with STORE_MODULE_ABI and its size: a module built from another version
 * of this header is refused with a clear error rather than called wrongly.
 *
 * Where the module is looked for, in order: the directory in the
 * environment variable COLIBRI_STORE_MODULE_DIR; the build tree's
 * src/store when the daemon runs from the build tree it was built in (the
 * tests); LIBDIR/colibri.  A module missing, or a libpq missing under it,
 * is an error that names the package to install.
 */
#ifndef COLIBRI_STORE_MODULE_H
#define COLIBRI_STORE_MODULE_H

#include <stddef.h>

#include "store/store-backend.h"
#include "store/store.h"

/* Bump when the table below changes (a function added, removed or retyped). */
#define STORE_MODULE_ABI    5
#define STORE_MODULE_FILE   "store-postgres.so"
#define STORE_MODULE_SYMBOL "colibri_store_postgres"

struct pg_store;

#define STORE_OPS_MEMBER(ret, name, args) ret(*name) args;
struct store_pg_ops {
	int abi;     /* STORE_MODULE_ABI of the module's build */
	size_t size; /* sizeof (struct store_pg_ops) there */
	STORE_BACKEND_FUNCS(STORE_OPS_MEMBER, struct pg_store)
	/* Only the shared store has these (see store.h). */
	void (*set_host)(struct pg_store *, const char *host);
	void (*set_event_sink)(struct pg_store *, store_event_cb, void *);
	int (*notify_fd)(struct pg_store *);
	int (*notify_read)(struct pg_store *);
	/* The URL with any password removed (for status and logs); owned by the store. */
	const char *(*url)(struct pg_store *);
};

/* The module's table (defined in store-postgres.c, the one symbol it exports). */
extern const struct store_pg_ops colibri_store_postgres;

/*
 * The module's table, loading the module the first time (it stays loaded).
 * NULL with a cause in e (invalid_argument, starting "no PostgreSQL
 * backend") that names what to install.
 */
const struct store_pg_ops *store_module_postgres(struct store_err *e);

#endif
