/*
 * dlink.h -- colibri-mcp's link to the daemon, off the event loop.
 *
 * The daemon is reached only through client.h, whose calls block.  So that
 * a slow or hung daemon never stalls the stdio loop (proxied calls and their
 * progress keep flowing), each call runs on libuv's thread pool; calls are
 * queued and run one at a time on one connection, which is what client.h
 * supports.  The connection is opened lazily, checked for a hang-up before
 * each call (a daemon restarted since the last call is reconnected to
 * transparently) and dropped after any failure, so the next call
 * reconnects.  A failed call is never retried: a write may have landed.
 * Each call has a deadline (SO_RCVTIMEO): a daemon that does not answer
 * costs the caller an "unreachable" error, not the bridge.
 */
#ifndef COLIBRI_MCP_DLINK_H
#define COLIBRI_MCP_DLINK_H

#include <jansson.h>
#include <uv.h>

#include "client/client.h"

struct dlink;

/*
 * Called on the loop thread when a call finishes: rc 0 with result (a new
 * reference the callback owns), or rc -1 (the daemon refused) / -2
 * (unreachable) with err filled and result NULL.
 */
typedef void (*dlink_cb)(void *arg, int rc, json_t *result, const struct client_error *err);

/* A link to the daemon at socket (copied), with a per-call deadline in ms. */
struct dlink *dlink_new(uv_loop_t *loop, const char *socket, int timeout_ms);
const char *dlink_socket(const struct dlink *);
/* Queue cmd with args (stolen; NULL: none); cb runs on the loop thread. */
void dlink_call(struct dlink *, const char *cmd, json_t *args, dlink_cb cb, void *arg);
/* Calls queued or running. */
int dlink_busy(const struct dlink *);
/*
 * Free the link.  Queued calls are dropped without their callbacks; a call
 * already running keeps the link until it ends, then frees it.
 */
void dlink_free(struct dlink *);

#endif
