/*
 * cmd.h -- the command table: what the server knows about commands.
 *
 * Each command family lives in one cmd-*.c file that exports an array of
 * struct cmd_entry.  The server parses a request line, finds the entry by
 * name, checks the argument spec and the caller's role, and calls exec.
 * It knows nothing else about any command (tmux's cmd_entry pattern).
 *
 * Roles are stated once, here in the table: every entry names the roles
 * that may call it (`roles`, a mask of CMD_R_*), and dispatch refuses
 * anyone else with permission_denied before exec runs.  An entry that
 * names no role can be called by nobody.  The server decides a
 * connection's role once, when it accepts it:
 *   agent  -- the peer process descends from a process the daemon started
 *             (an agent it spawned, or an orphan of one that the daemon
 *             now reaps), whatever its uid: an agent never acts as the
 *             daemon, even when it runs as the daemon's uid;
 *   admin  -- otherwise uid 0, the daemon's uid or a member of
 *             --admin-group (its groups as the kernel gave them at connect);
 *   member -- anyone else who could open the socket (--group).
 * Some commands check more inside exec (an agent's owner, the events a
 * role may see: cmd_event_visible).
 *
 * exec replies with cmd_ok() or cmd_fail() before returning, or, for a
 * long-running command flagged CMD_ASYNC, keeps the request (cmd_req_hold)
 * and replies later from a libuv callback.  Write commands (CMD_WRITE) run
 * inside the current group-commit transaction and their replies are held
 * until it commits.
 */
#ifndef COLIBRI_CMD_H
#define COLIBRI_CMD_H

#include <jansson.h>
#include <limits.h>
#include <sys/types.h>

#define CMD_READ  0x0
#define CMD_WRITE 0x1 /* changes the store: runs in a savepoint, reply after commit */
#define CMD_ASYNC 0x4 /* may reply after exec returns */
#define CMD_CONN  0x8 /* acts on the connection itself (subscribe): runs after a commit */

/* Roles, as a connection's role and as bits of cmd_entry.roles. */
#define CMD_R_ADMIN  0x1
#define CMD_R_MEMBER 0x2
#define CMD_R_AGENT  0x4
#define CMD_R_ALL    (CMD_R_ADMIN | CMD_R_MEMBER | CMD_R_AGENT)

enum arg_type { ARG_STR, ARG_INT, ARG_BOOL, ARG_OBJ, ARG_ARR, ARG_ANY, ARG_ID };

/*
 * One argument of a command.  min and max bound it, both inclusive: for
 * ARG_INT the value, for ARG_STR its length in bytes; both 0 leaves it
 * unbounded (LLONG_MAX as max: "min or more").  cmd_check_args refuses a value
 * out of bounds with invalid_argument naming the argument and its bounds,
 * before exec runs, so a handler never checks a range the table states.
 */
struct cmd_arg {
	const char *name;
	enum arg_type type;
	int required;
	long long min, max;
};

struct cmd_req;

struct cmd_entry {
	const char *name;
	int flags;
	int roles;                  /* CMD_R_*: who may call it */
	const struct cmd_arg *args; /* terminated by {NULL} */
	void (*exec)(struct cmd_req *);
};

/* A request being executed.  Owned by the server until replied. */
struct cmd_req {
	const struct cmd_entry *entry;
	json_t *id;            /* echoed as is */
	json_t *args;          /* always an object */
	struct client *client; /* NULL once the client has gone */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int role;    /* one CMD_R_* bit, decided when the connection was accepted */
	char *agent; /* on an agent channel, the agent it is bound to; else NULL */
	int replied;
	int failed;
	int held;
	int in_dispatch; /* exec is running: a held reply must not free it yet */
	char *reply;     /* serialised reply line, with newline */
	size_t reply_len;
	struct cmd_req *next;
};

/* Reply with a result (reference stolen). */
void cmd_ok(struct cmd_req *, json_t *result);
/* Reply with result already serialised as compact JSON (len bytes, not copied). */
void cmd_ok_raw(struct cmd_req *, const char *result, size_t len);
/* Reply with an error code from proto.h and a message. */
void cmd_fail(struct cmd_req *, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Reply with a store error: its code and its message (cmd_fail(r, e->code, "%s", e->msg)). */
struct store_err;
void cmd_fail_error(struct cmd_req *, const struct store_err *);
/* Refuse a reply that would pass --max-reply: invalid_argument naming the limit, asking
 * for fewer `what` and saying how (hint). */
void cmd_fail_too_big(struct cmd_req *, const char *what, const char *hint);
/*
 * Keep the request alive after exec returns (CMD_ASYNC); reply later, exactly
 * once: the reply frees it.  Answered before exec returns, it is freed only
 * after; its client gone meanwhile (client NULL), the reply goes nowhere and
 * still frees it.
 */
void cmd_req_hold(struct cmd_req *);
/*
 * For CMD_CONN commands, which act on the request's connection (the server
 * commits what is pending before they run, so their reply follows every
 * earlier one): make it a subscriber from cursor on (events with seq >
 * cursor), live at once or, with replay, after catching up from the store a
 * page at a time; or stop that.  A no-op once the client has gone.  Like the
 * replies, the server implements them (server-subscribe.c).
 */
void cmd_conn_subscribe(struct cmd_req *, json_t *topics, long long cursor, int replay);
void cmd_conn_unsubscribe(struct cmd_req *);
/* How many clients are connected now (status); the server implements it too. */
int cmd_client_count(void);

/* Argument accessors; the spec has already checked presence and type. */
const char *cmd_arg_str(struct cmd_req *, const char *name);
int cmd_arg_int(struct cmd_req *, const char *name, long long *out); /* 0 if present */
long long cmd_arg_int_or(struct cmd_req *, const char *name, long long dflt);
int cmd_arg_bool_or(struct cmd_req *, const char *name, int dflt);
json_t *cmd_arg(struct cmd_req *, const char *name); /* borrowed, or NULL */

/* The role's name: "admin", "member" or "agent". */
const char *cmd_role_name(int role);
/* The roles of a mask in words ("admin or member"), into buf. */
const char *cmd_roles_text(int roles, char *buf, size_t len);
/*
 * May a connection of role see an event of topic?  tenant.* and vault.*
 * events are for admins only (as list-tenants is); everything else is for
 * everyone.  Every path that hands events to a client asks this: events-read,
 * subscribe's replay and the live publish (server_publish).
 */
int cmd_event_visible(int role, const char *topic);

/* Look a command up by name. */
const struct cmd_entry *cmd_find(const char *name);
/* Validate args against the spec (presence, type, bounds); on error fills msg and
 * returns -1. */
int cmd_check_args(const struct cmd_entry *, json_t *args, char *msg, size_t len);
/* The command's one-line usage, generated from its spec ("task-show {id}", an
 * optional argument with a "?"); static, for errors and help. */
const char *cmd_usage_line(const struct cmd_entry *);
/* Visit every command (for help and schema checks). */
void cmd_foreach(void (*)(const struct cmd_entry *, void *), void *);

#endif
