/*
 * confine.h -- one call for the spawner: a confined command plus its stage.
 *
 * The daemon resolves its confinement options once at start-up
 * (confine_opts_from_env: COLIBRI_CONFINE, COLIBRI_JAIL_PRIV_MODE,
 * COLIBRI_JAIL_STAGE_DIR, COLIBRI_JAIL_ROOT_BASE; an invalid value is a
 * start-up error).  For each spawn with a jail config, confine_prepare
 * creates the stage (env.sh, launch.sh) and returns the argv to execute;
 * after the process is reaped, confine_spawn_status tells the agent's real
 * exit status and confine_spawn_finish removes the stage.
 *
 * Backend: on Linux a jail config means bubblewrap (bwrap.h) unless
 * COLIBRI_CONFINE=freebsd-jail, which produces the FreeBSD jexec/jail argv
 * (jail.h) -- the tests use it with stand-in jexec/jail scripts.  On FreeBSD
 * it means jails ("bwrap" is refused).  The OS defaults live in
 * confine-linux.c and confine-freebsd.c.
 *
 * The confined program is always `/bin/sh <in-confinement stage>/launch.sh`:
 * jexec/jail see the stage at its path relative to the jail root; bubblewrap
 * sees it at its host path (the root is bound at the same path).
 */
#ifndef COLIBRI_CONFINE_CONFINE_H
#define COLIBRI_CONFINE_CONFINE_H

#include <jansson.h>
#include <sys/types.h>

#include "confine/bwrap.h"
#include "confine/jail.h"
#include "confine/stage.h"

#define CONFINE_ROOT_BASE_DEFAULT "/usr/local/bastille/jails"

enum confine_backend { CONFINE_BACKEND_JAIL, CONFINE_BACKEND_BWRAP };

/* The host's backend when COLIBRI_CONFINE is unset (OS file). */
enum confine_backend confine_backend_default(void);
/*
 * Parse COLIBRI_CONFINE: NULL/"" = the host's default, "freebsd-jail",
 * "bwrap" (Linux only).  Returns 0, or -1 with *cause (caller frees).
 */
int confine_backend_parse(const char *value, enum confine_backend *out, char **cause);
const char *confine_backend_name(enum confine_backend);

struct confine_opts {
	enum confine_backend backend;
	enum priv_mode priv;
	char *stage_base; /* COLIBRI_JAIL_STAGE_DIR, or NULL */
	char *root_base;  /* roots must lie under it; NULL: no check */
	char **ro_paths;  /* extra read-only binds for bubblewrap (NULL-terminated) or NULL */
	struct bwrap_host host;
	/*
	 * The daemon's own paths, never shown to a bubblewrap sandbox (see
	 * bwrap.h); added with confine_opts_add_private.
	 */
	struct bwrap_private *privates;
	size_t nprivates;
	/*
	 * Set by a root daemon: bubblewrap (and so the agent) runs as an
	 * unprivileged user -- the jail's `user` when it exists on the host and
	 * is not uid 0, else agent_user (--agent-user, "nobody" by default) --
	 * and the stage is handed to that user.  Never root bwrap with a uid
	 * mapping: that maps to host root.
	 */
	int drop_root;
	char *agent_user;
};

/*
 * Fill *o from the environment: backend, privilege mode, stage base and root
 * base (COLIBRI_JAIL_ROOT_BASE; for the jail backend it defaults to
 * CONFINE_ROOT_BASE_DEFAULT, for bubblewrap there is no base unless set),
 * and probe the host layout for bubblewrap.  Returns 0, or -1 with *cause.
 * Release with confine_opts_clear.
 */
int confine_opts_from_env(struct confine_opts *o, char **cause);
void confine_opts_clear(struct confine_opts *o);
/*
 * Add one of the daemon's paths (what names it in a refusal); canonicalised
 * when it exists.  A NULL path is ignored.
 */
void confine_opts_add_private(struct confine_opts *o, const char *path, const char *what);

struct confine_spawn {
	struct confine_cmd *cmd; /* execute cmd->program with cmd->argv */
	struct stage *stage;     /* NULL when the spawn is not confined */
	enum confine_backend backend;
	int drop;  /* run cmd as uid/gid (drop_root and bubblewrap) */
	uid_t uid; /* never 0 when drop is set */
	gid_t gid;
};

/*
 * Prepare a spawn of binary with args (NULL-terminated, without argv[0]).
 * Without an active jail config the command is returned unchanged and
 * nothing is staged (env and cwd are then the spawner's business).  With
 * one, jail.path and jail.root_path (each when set) must resolve strictly
 * under the root base, and for the jail backend jail_config_check_mode must
 * pass (helper mode: an unprivileged user); then the stage <root>/.../stage/<id> is created, env (a
 * JSON object of strings, may be NULL) goes to env.sh, cwd (absolute, inside the confinement; may
 * be NULL) and the agent go to launch.sh, and cmd runs /bin/sh launch.sh confined.  Under drop_root
 * (bubblewrap) the agent's user is resolved and the stage handed to it, or the spawn is refused
 * when no unprivileged user can be found.  Returns the spawn (free with confine_spawn_finish) or
 * NULL with *cause; on failure nothing is left on disk.
 */
struct confine_spawn *confine_prepare(const struct confine_opts *o, const struct jail_config *cfg,
                                      const char *id, const char *binary, const char *const *args,
                                      const json_t *env, const char *cwd, char **cause);
/*
 * The agent's status given the wrapper's wait status (from waitpid or libuv:
 * exit code and terminating signal).  The stage's status file wins; without
 * it (agent or shell killed, or unconfined) the wrapper's own status is
 * reported: for an unconfined spawn as EXITED/SIGNALED, for a confined one a
 * normal exit is UNKNOWN (jexec and jail do not pass the agent's code) with
 * exit_code holding the wrapper's code, a death by signal is SIGNALED.
 */
void confine_spawn_status(const struct confine_spawn *, int exit_code, int term_signal,
                          struct stage_status *out);
/* Remove the stage (if any) and free.  Returns 0, or -1 with *cause if removal failed. */
int confine_spawn_finish(struct confine_spawn *, char **cause);

#endif
