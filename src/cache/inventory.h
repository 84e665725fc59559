/*
 * inventory.h -- what this host can run: the runtime inventory manifest.
 *
 * The daemon needs to know, before it accepts a spawn, which agent runtimes
 * (pi, zot, node), which confinement (bubblewrap on Linux, jails on FreeBSD)
 * and which privilege modes (mdo, the setuid helper, sudo, none) this host
 * offers.  inventory_collect gathers that into one JSON manifest, described
 * by schemas/runtime-inventory.schema.json; colibri-runtime-inventory prints
 * it, and the daemon can ingest it at start and on a timer.
 *
 * Collecting runs each present tool once with "--version" (stdin /dev/null,
 * its own process group, killed at the timeout) and, on Linux, one trial
 * bubblewrap sandbox.  It blocks for up to a few timeouts, so an event-loop
 * caller runs it on a worker thread (uv_queue_work); it touches no global
 * state and is safe to call from one.
 */
#ifndef COLIBRI_INVENTORY_H
#define COLIBRI_INVENTORY_H

#include <jansson.h>

#define INVENTORY_SCHEMA_VERSION     1
#define INVENTORY_TIMEOUT_MS_DEFAULT 3000

struct inventory_opts {
	const char *state_dir; /* free-space probe; NULL means "." */
	int timeout_ms;        /* per tool run; <= 0 means the default */
};

/* The manifest with default options.  New reference; NULL only on allocation failure. */
json_t *inventory_collect(const char *state_dir);
json_t *inventory_collect_opts(const struct inventory_opts *);

#endif
