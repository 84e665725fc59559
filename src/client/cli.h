/*
 * cli.h -- the colibri CLI: its verb table, argument parser and renderers.
 *
 * Every verb is one row of cli_verbs[] (cli-verbs.c): the daemon command it
 * sends, its positional arguments, its flags and a renderer for the result.
 * Positionals and flags name the protocol argument they fill ("id",
 * "depends_on", or a dotted "jail.root_path" for a member of a nested
 * object), so cli_args_build (cli-args.c) turns any argv into the request's
 * args without knowing any verb.  Adding a verb is adding a row.
 *
 * Renderers (cli-render.c) print a result readably on stdout; --json skips
 * them and prints the raw result.  Text that came from the daemon is printed
 * with control characters replaced, so a task title cannot drive the
 * terminal.
 */
#ifndef COLIBRI_CLI_H
#define COLIBRI_CLI_H

#include <jansson.h>
#include <stdio.h>

/* How one command-line value becomes JSON. */
enum cli_type {
	CLI_STR,  /* a string */
	CLI_INT,  /* a strictly parsed integer */
	CLI_BOOL, /* a flag without a value: true */
	CLI_NEXT, /* a flag without a value: the string "next" (spawn --next) */
	CLI_INTS, /* integers; repeatable and comma separated: an array */
	CLI_STRS, /* strings; repeatable: an array */
	CLI_ENV,  /* NAME=VALUE; repeatable: an object */
	CLI_JSON, /* any JSON text, else the text as a string */
	CLI_OBJ,  /* a JSON object */
};

struct cli_pos {
	const char *name; /* as shown in usage, e.g. "ID" */
	const char *key;  /* protocol argument */
	enum cli_type type;
	int optional; /* 0: required; 1: optional; CLI_POS_UNLESS_PROFILE */
};

/* A positional required unless --profile is given (spawn-agent's PROVIDER). */
#define CLI_POS_UNLESS_PROFILE 2

struct cli_opt {
	const char *flag; /* long name without the dashes */
	char shortc;      /* one-letter alias, or 0 */
	const char *key;  /* protocol argument; "a.b" sets member b of object a */
	enum cli_type type;
	const char *help;
};

struct cli_verb;
struct cli_ctx;

/* Local behaviour for verbs that are not a single call (watch, call). */
typedef int (*cli_exec_fn)(const struct cli_verb *, struct cli_ctx *, json_t *args);
typedef void (*cli_render_fn)(json_t *result, FILE *out);

#define CLI_REST_ARGS 0x1 /* words after "--" are appended to "args" */

struct cli_verb {
	const char *name;
	const char *cmd; /* protocol command; NULL: the verb name */
	const struct cli_pos *pos;
	const struct cli_opt *opts;
	const char *help;
	cli_render_fn render;
	int flags;
	cli_exec_fn exec; /* NULL: send cmd with args and render the result */
};

/* What main parsed before the verb runs. */
struct cli_ctx {
	const char *socket; /* --socket, then the resolved path */
	int json;           /* --json */
};

/* The verb table, terminated by a row with name NULL. */
extern const struct cli_verb cli_verbs[];

/* The row named name, or NULL. */
const struct cli_verb *cli_verb_find(const char *name);
/* The first row sending protocol command cmd, or NULL. */
const struct cli_verb *cli_verb_by_cmd(const char *cmd);
/* The protocol command of a row. */
const char *cli_verb_cmd(const struct cli_verb *);

/*
 * Parse a verb's words (everything after the verb name) into a new args
 * object.  The global options --json and --socket PATH may appear among
 * them and are stored in the ctx.  Returns 0 and *args (caller decrefs); 1
 * when --help/-h was seen (nothing allocated); -1 with a message in err on
 * a usage error.
 */
int cli_args_build(const struct cli_verb *, int argc, char **argv, struct cli_ctx *, json_t **args,
                   char *err, size_t errlen);
/* Strict integer: the whole string, no blanks, within long long.  0 ok, -1 bad. */
int cli_parse_int(const char *s, long long *out);

/* The local verbs (colibri.c): watch subscribes and prints events, call sends any command. */
int cli_exec_watch(const struct cli_verb *, struct cli_ctx *, json_t *args);
int cli_exec_call(const struct cli_verb *, struct cli_ctx *, json_t *args);

/* Print a verb's usage (synopsis, help, flags) to out. */
void cli_usage_verb(const struct cli_verb *, FILE *out);

/* Renderers, used by the rows of the table. */
void cli_render_object(json_t *result, FILE *out);
void cli_render_tasks(json_t *result, FILE *out);
void cli_render_agents(json_t *result, FILE *out);
void cli_render_tenants(json_t *result, FILE *out);
void cli_render_events(json_t *result, FILE *out);
void cli_render_skills(json_t *result, FILE *out);
void cli_render_usage(json_t *result, FILE *out);
void cli_render_lines(json_t *result, FILE *out);
/* An agent's last_message, as text (agent-result). */
void cli_render_result(json_t *result, FILE *out);
/* agent-explain: one line per transition with its cause (cli-explain.c). */
void cli_render_explain(json_t *result, FILE *out);
/* One event as one readable line: SEQ TIME TOPIC key=value... */
void cli_render_event_line(json_t *event, FILE *out);
/* Write s with control characters replaced by '?'. */
void cli_put_clean(const char *s, FILE *out);

#endif
