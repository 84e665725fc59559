/*
 * hostcfg.h -- the external MCP host's configuration file.
 *
 *   {"servers": [{"name": "everything",
 *                 "command": "/usr/bin/node",
 *                 "args": ["/opt/mcp/everything/dist/index.js", "stdio"],
 *                 "env": {"NAME": "value"},
 *                 "cwd": "/abs/dir",
 *                 "jail": {"name", "path", "root_path", "ip4", "user"},
 *                 "ro_paths": ["/opt/mcp/everything"],
 *                 "allow": ["echo", "get-sum"]}]}
 *
 * name: [A-Za-z0-9_-]{1,32} without "__" (the tool prefix separator), unique.
 * command: required; args, env (names are shell identifiers, values strings),
 * cwd (absolute), jail (the agents' JailConfig, parsed by confine/jail.h),
 * ro_paths (absolute paths bound read-only into a bubblewrap sandbox, for the
 * server's own code) are optional.  allow is required: the tools offered,
 * by the server's own names; "*" offers all of them.  Unknown keys are
 * refused, so a misspelt "alow" cannot silently expose nothing or everything.
 */
#ifndef COLIBRI_MCP_HOSTCFG_H
#define COLIBRI_MCP_HOSTCFG_H

#include <jansson.h>
#include <stddef.h>

#include "confine/jail.h"

#define HOSTCFG_NAME_MAX 32

struct hostcfg_server {
	char *name;
	char *command;
	char **args; /* NULL-terminated */
	json_t *env; /* object of strings (never NULL) */
	char *cwd;   /* or NULL */
	struct jail_config jail;
	char **ro_paths; /* NULL-terminated */
	char **allow;    /* NULL-terminated */
	int allow_all;   /* "*" was listed */
};

struct hostcfg {
	struct hostcfg_server *servers;
	size_t n;
};

/*
 * Parse a configuration (borrowed).  Returns 0 and fills *out (release with
 * hostcfg_clear), or -1 with *cause naming the server and key (caller
 * frees) and *out empty.
 */
int hostcfg_parse(const json_t *root, struct hostcfg *out, char **cause);
/* Read and parse the file at path; as hostcfg_parse. */
int hostcfg_load(const char *path, struct hostcfg *out, char **cause);
void hostcfg_clear(struct hostcfg *);
/* Non-zero when the server's allow list offers tool. */
int hostcfg_allows(const struct hostcfg_server *, const char *tool);

#endif
