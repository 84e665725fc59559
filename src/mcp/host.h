/*
 * host.h -- the external MCP host: third-party MCP servers as children.
 *
 * Each server of the configuration (hostcfg.h) is started once as a child
 * with stdio pipes -- confined through confine/confine.h when it has a jail
 * (bubblewrap on Linux, a FreeBSD jail otherwise), exactly as the daemon
 * confines agents -- then initialised (initialize, notifications/initialized)
 * and its tools listed.  Its allowed tools are offered as <server>__<tool>.
 *
 * A tools/call on such a name is forwarded with a fresh id; the answer is
 * relayed under the caller's id.  A progressToken in the call's _meta is
 * replaced by the forwarded id and mapped back on each notifications/progress;
 * notifications/cancelled is forwarded and the call forgotten.  A server
 * that exits is restarted with exponential backoff (0.5 s doubling to 30 s,
 * reset after 10 s of service); calls in flight at that moment answer
 * isError results.  Every proxied call is logged with its name, duration and
 * outcome; arguments only at debug level.
 *
 * Everything runs on the caller's libuv loop; nothing blocks.
 */
#ifndef COLIBRI_MCP_HOST_H
#define COLIBRI_MCP_HOST_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "mcp/hostcfg.h"

struct host;

struct host_events {
	/* A message for the MCP client (stolen). */
	void (*send)(void *arg, json_t *msg);
	/* The set of offered tools changed after the first listing. */
	void (*tools_changed)(void *arg);
	/* Every server has finished its first start (ready or failed), once. */
	void (*settled)(void *arg);
	void *arg;
};

/*
 * A host for cfg (taken over; cleared by host_free).  max_line bounds a
 * line from a server.  settle_ms bounds how long host_settled can stay false.
 */
struct host *host_new(uv_loop_t *loop, struct hostcfg *cfg, const struct host_events *ev,
                      size_t max_line, int settle_ms);
/*
 * Start every server.  Returns 0, or -1 with *cause (caller frees) when the
 * confinement options in the environment are invalid and a server needs
 * them; failures of single servers are logged and retried instead.
 */
int host_start(struct host *, char **cause);
/* Non-zero once every server finished its first start, or settle_ms passed. */
int host_settled(const struct host *);
/* Append the offered tools' definitions to tools (an array). */
void host_tools(const struct host *, json_t *tools);
/* Non-zero when name has the form of a proxied tool (<server>__<tool>). */
int host_is_proxied(const char *name);
/*
 * Handle a tools/call for name (a proxied name): forward it, or answer at
 * once through send (-32602 for a tool not offered, an isError result for a
 * server that is not running).  id and params are borrowed.
 */
void host_call(struct host *, json_t *id, const char *name, const json_t *params);
/* Forward a cancellation of the call with client id; 1 if it was one of ours. */
int host_cancel(struct host *, const json_t *id, const json_t *reason);
/*
 * Stop every server: close its stdin, SIGTERM after grace_ms, SIGKILL after
 * twice that; done(arg) runs once every child is gone and every handle closed.
 */
void host_stop(struct host *, int grace_ms, void (*done)(void *), void *arg);
/* Free after host_stop's done (or if never started). */
void host_free(struct host *);

#endif
