/*
 * tools.h -- Colibri's own MCP tools: one table, one daemon command each.
 *
 * Every tool maps to one socket command (task_claim -> task-claim) and passes
 * its arguments through unchanged, so the daemon stays the one place that
 * validates them; its refusals become isError results.  Each entry carries
 * an inputSchema and an outputSchema written as compact JSON: tools/list is
 * read by every agent that connects, so descriptions stay one line and the
 * schemas name only what a caller needs (the daemon's objects carry more
 * fields, which the schemas allow).
 *
 * A tool that spawns (spawn_local) is marked `spawns`: a session offers it
 * only when colibri-mcp runs with --allow-spawn.  Whoever talks MCP to it is
 * often an AI agent, and a spawn starts a process with the power of the
 * daemon's spawns; by default that power is simply not on the list.
 */
#ifndef COLIBRI_MCP_TOOLS_H
#define COLIBRI_MCP_TOOLS_H

#include <jansson.h>

struct client_error;

struct mcp_tool {
	const char *name;        /* MCP tool name */
	const char *cmd;         /* daemon command */
	const char *description; /* one short line */
	const char *input;       /* inputSchema, compact JSON */
	const char *output;      /* outputSchema, compact JSON */
	int spawns;              /* starts an agent: offered only with --allow-spawn */
};

/* The table, terminated by an entry with a NULL name. */
extern const struct mcp_tool mcp_tools[];

/* The tool named name, or NULL. */
const struct mcp_tool *mcp_tool_find(const char *name);
/*
 * The tool's definition for tools/list: {name, description, inputSchema,
 * outputSchema}.  New reference; NULL only if a schema in the table is not
 * valid JSON (a unit test guards against that).
 */
json_t *mcp_tool_definition(const struct mcp_tool *);
/* Every definition in table order, without the spawning tools unless with_spawn.  New reference. */
json_t *mcp_tools_definitions(int with_spawn);

/*
 * The daemon arguments for a call: a copy of the MCP arguments (an object
 * or NULL) without null-valued members, which clients send for "unset".
 * New reference.
 */
json_t *mcp_tool_args(const json_t *arguments);
/*
 * A successful CallToolResult for a daemon result (borrowed):
 * structuredContent is the result when it is an object, else {"items": R}
 * for an array, else {"value": R}; the text block holds the same as
 * compact JSON.  New reference.
 */
json_t *mcp_tool_result(const json_t *result);
/* A failed CallToolResult: isError true and one text block with msg.  New reference. */
json_t *mcp_tool_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The failed result for a daemon error (code from proto.h or
 * "unreachable"), worded for a reader: an unknown command says this daemon
 * does not offer the tool yet, unreachable says the daemon is down.
 * socket names the daemon's socket for that message.  New reference.
 */
json_t *mcp_tool_daemon_failure(const struct mcp_tool *, const struct client_error *,
                                const char *socket);

#endif
