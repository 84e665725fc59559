/*
 * store-module.c -- find and load the PostgreSQL module (see store-module.h).
 *
 * The search is three directories, the first that holds the module wins:
 * $COLIBRI_STORE_MODULE_DIR, the build tree's src/store when this daemon
 * is the build tree's own binary (its path starts with the build root meson
 * compiled in, so an installed daemon never looks there), and the install
 * directory LIBDIR/colibri.  The module is loaded once, RTLD_NOW (a missing
 * libpq symbol fails here, not in the middle of a request) and never
 * unloaded: the store's function pointers point into it.
 *
 * The error names what is missing: the module file (the colibri package's
 * PostgreSQL module, or a build with libpq's headers), or a library under
 * it (libpq: Debian's libpq5, FreeBSD's postgresqlNN-client), or a module
 * from another build (ABI).  Every message starts "no PostgreSQL backend",
 * which is what a client or test looks for.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "common/proto.h"
#include "store/store-module.h"

#define LIBPQ_HINT "libpq (Debian: libpq5; FreeBSD: postgresqlNN-client)"

static const struct store_pg_ops *loaded;

/* The daemon runs from the build tree it was built in (tests, make run). */
static int
running_in_build_tree(void)
{
	char exe[PATH_MAX], root[PATH_MAX];
	size_t n = sizeof exe, len;

	/* uv_exepath resolves symbolic links; so does realpath on the build root. */
	if (uv_exepath(exe, &n) != 0 || realpath(COLIBRI_BUILD_ROOT, root) == NULL)
		return 0;
	len = strlen(root);
	return strncmp(exe, root, len) == 0 && exe[len] == '/';
}

/* The first directory of the search that holds the module, as a path in buf; -1 if none. */
static int
module_path(char *buf, size_t len)
{
	const char *dirs[3];
	struct stat sb;
	int i, n = 0;

	if ((dirs[n] = getenv("COLIBRI_STORE_MODULE_DIR")) != NULL && *dirs[n] != '\0')
		n++;
	if (running_in_build_tree())
		dirs[n++] = COLIBRI_STORE_BUILD_DIR;
	dirs[n++] = COLIBRI_STORE_MODULE_INSTALL_DIR;
	for (i = 0; i < n; i++) {
		if (snprintf(buf, len, "%s/%s", dirs[i], STORE_MODULE_FILE) >= (int)len)
			continue;
		if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode))
			return 0;
	}
	snprintf(buf, len, "%s/%s", COLIBRI_STORE_MODULE_INSTALL_DIR, STORE_MODULE_FILE);
	return -1;
}

static const struct store_pg_ops *
module_load(const char *path, struct store_err *e)
{
	const struct store_pg_ops *ops;
	void *h;

	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		store_err_set(e, ERR_INVALID_ARGUMENT,
		              "no PostgreSQL backend: install " LIBPQ_HINT ": %s", dlerror());
		return NULL;
	}
	ops = dlsym(h, STORE_MODULE_SYMBOL);
	if (ops == NULL || ops->abi != STORE_MODULE_ABI || ops->size != sizeof *ops) {
		store_err_set(e, ERR_INVALID_ARGUMENT,
		              "no PostgreSQL backend: %s is from another build of colibri "
		              "(module ABI %d, this daemon %d); reinstall the package's module",
		              path, ops != NULL ? ops->abi : -1, STORE_MODULE_ABI);
		dlclose(h);
		return NULL;
	}
	return ops;
}

const struct store_pg_ops *
store_module_postgres(struct store_err *e)
{
	char path[PATH_MAX];

	if (loaded != NULL)
		return loaded;
	if (module_path(path, sizeof path) == -1) {
		store_err_set(e, ERR_INVALID_ARGUMENT,
		              "no PostgreSQL backend: %s is missing; install the colibri "
		              "package's PostgreSQL module (it needs " LIBPQ_HINT ")",
		              path);
		return NULL;
	}
	loaded = module_load(path, e);
	return loaded;
}
