/*
 * server.h -- the MCP session colibri-mcp holds with its editor.
 *
 * Lines in, lines out: mcp_server_line takes one line read from stdin, and
 * every message for the client leaves through the send callback as one
 * encoded line (the caller writes it to stdout and flushes).  The session
 * answers the lifecycle (initialize, ping, notifications), lists Colibri's
 * tools plus the external host's, and routes tools/call either to the
 * daemon (dlink.h) or to the host (host.h).  Replies may come later and in
 * any order; ids are echoed exactly.
 *
 * Protocol versions: initialize echoes 2024-11-05, 2025-03-26, 2025-06-18
 * or 2025-11-25 and answers 2025-11-25 to anything else.  The answers do not
 * differ between versions: structuredContent and outputSchema are sent to
 * all (older clients ignore unknown fields), and batches are refused for all.
 */
#ifndef COLIBRI_MCP_SERVER_H
#define COLIBRI_MCP_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "mcp/hostcfg.h"

#define MCP_PROTOCOL_LATEST "2025-11-25"

struct mcp_server;

struct mcp_server_opts {
	const char *socket;    /* the daemon's socket */
	int daemon_timeout_ms; /* per daemon call */
	size_t max_line;       /* per message, both directions */
	int settle_ms;         /* how long tools/list waits for external servers */
	struct hostcfg *cfg;   /* external servers (taken over), or NULL */
	int allow_spawn;       /* --allow-spawn: offer the tools that spawn agents */
	/* Write one encoded line (with its newline) to the client. */
	void (*send)(void *arg, const char *line, size_t len);
	void *send_arg;
};

/* A session; NULL with *cause (caller frees) when the external host cannot start. */
struct mcp_server *mcp_server_new(uv_loop_t *loop, const struct mcp_server_opts *o, char **cause);
/* Handle one line from the client (without its newline). */
void mcp_server_line(struct mcp_server *, const char *line, size_t len);
/* Answer a line that exceeded the bound (it was dropped). */
void mcp_server_line_too_long(struct mcp_server *);
/*
 * The client is gone (stdin EOF, a signal): stop the external servers and
 * wait for daemon calls in flight, for at most grace_ms each; then done(arg).
 */
void mcp_server_shutdown(struct mcp_server *, int grace_ms, void (*done)(void *), void *arg);
/*
 * Non-zero when nothing is left running: the external servers are gone and
 * no daemon call is in flight.  Only then may the loop be closed.
 */
int mcp_server_clean(const struct mcp_server *);
/* Free after shutdown's done. */
void mcp_server_free(struct mcp_server *);

/*
 * The answer to tools/list for a session without external servers (with
 * the spawning tools when allow_spawn), encoded; for --list-size.
 */
char *mcp_server_tools_list_line(int allow_spawn, size_t *len);

#endif
