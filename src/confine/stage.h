/*
 * stage.h -- the staged payload of a confined spawn.
 *
 * Every confined spawn runs `/bin/sh STAGE/launch.sh` instead of the agent
 * itself.  The stage is a fresh 0700 directory
 *   <root>/home/clawdie/.cache/colibri/stage/<id>/
 * (root = the jail's root_path, else its path), created by the daemon user
 * without any privileged step, and holds:
 *
 *   env.sh     0600.  One `export NAME='value'` line per variable, sorted by
 *              name (bytewise), every value single-quoted with ' written as
 *              '\'' -- this survives any byte except NUL (newlines, $(),
 *              backticks, backslashes, leading dashes, UTF-8, empty values).
 *              Names must be shell identifiers; names starting with
 *              "_colibri_" are reserved for launch.sh.
 *   launch.sh  0600.  Sources env.sh, cds into the working directory, runs
 *              the agent in the foreground, then writes `exit N` (N = the
 *              agent's status as the shell sees it: 128+S after signal S)
 *              to STAGE/status and exits with N.  If env.sh is missing or
 *              the cd fails it writes `setup env` / `setup cwd` and exits 125.
 *              It traps HUP, INT and TERM so that a signal to the whole
 *              process group kills the agent but lets the shell record the
 *              status: stop an agent by signalling its process group (or
 *              through the daemon's subreaper), not the shell's pid alone.
 *   status     written by launch.sh, read by stage_read_status.
 *
 * Why: `jail -c ... command=` does not return the command's exit status and
 * jexec exits 1 for its own failures, so the wrapper's status cannot tell
 * "agent exited 1" from "jexec could not attach"; the status file can.  The
 * env file also makes the agent's environment independent of what mdo, sudo,
 * jexec or the setuid helper choose to pass through.
 *
 * launch.sh finds its stage directory from $0 (the part before the last /), so the same files
 * work wherever the directory appears inside the confinement; the argv
 * builders pass the in-confinement path of launch.sh.
 *
 * COLIBRI_JAIL_STAGE_DIR=B overrides the host-side base: the stage becomes
 * B/<id>.  B must exist.  If canonical B lies inside the jail root, the
 * in-jail path is B with the root prefix removed; otherwise the stage is
 * outside the root: the bubblewrap backend binds it into the sandbox at the
 * same path, and the FreeBSD jail backend refuses the spawn (a jail cannot
 * see it).
 *
 * Containment: the root is canonicalised (realpath); when a root base is
 * given (COLIBRI_JAIL_ROOT_BASE) it must lie strictly under it.  Below the
 * root every component is opened with openat(O_NOFOLLOW|O_DIRECTORY) and
 * created with mkdirat when missing (0700), so a symlink planted inside the
 * jail is refused, never followed.  Files are created with
 * O_CREAT|O_EXCL|O_NOFOLLOW relative to the stage directory's descriptor,
 * which the stage keeps open until stage_free; removal works through the
 * same descriptors and never follows a symlink.
 */
#ifndef COLIBRI_CONFINE_STAGE_H
#define COLIBRI_CONFINE_STAGE_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "confine/jail-name.h"

/* One definition with the setuid helper's default stage prefix (jail-name.h). */
#define STAGE_DEFAULT_REL JAIL_STAGE_REL
#define STAGE_SETUP_EXIT  125

struct stage;

enum stage_status_kind {
	STAGE_STATUS_UNKNOWN,      /* no readable status file */
	STAGE_STATUS_EXITED,       /* exit_code valid */
	STAGE_STATUS_SIGNALED,     /* exit_code = 128 + signal, signal valid */
	STAGE_STATUS_SETUP_FAILED, /* launch.sh failed before the agent ran */
};

struct stage_status {
	enum stage_status_kind kind;
	int exit_code;
	int signal;
	const char *setup; /* "env" or "cwd" for SETUP_FAILED, else NULL */
};

/*
 * Create the stage for spawn id under root.  base_override (may be NULL) is
 * COLIBRI_JAIL_STAGE_DIR; root_base (may be NULL: no check) is
 * COLIBRI_JAIL_ROOT_BASE.  Fails if the stage directory already exists.
 * Returns the stage (free with stage_free) or NULL with *cause (caller frees).
 */
struct stage *stage_create(const char *root, const char *id, const char *base_override,
                           const char *root_base, char **cause);
/*
 * Remove the stage a previous daemon left for spawn id (same arguments as
 * stage_create; nothing is created on the way).  1 when one was removed, 0
 * when there was none, -1 with *cause.
 */
int stage_remove_leftover(const char *root, const char *id, const char *base_override,
                          const char *root_base, char **cause);
/*
 * Hand the stage to the agent's user (a root daemon running bubblewrap as an
 * unprivileged uid): the stage directory, env.sh and launch.sh, and the
 * directories between the root and the stage that stage_create made (so the
 * agent can reach its stage and its HOME).  Directories that existed before
 * are left as they are: they must let the agent through.  0, or -1 with
 * *cause.
 */
int stage_give(struct stage *, uid_t uid, gid_t gid, char **cause);
/* Host path of the stage directory. */
const char *stage_host_dir(const struct stage *);
/* The stage directory's path relative to the root ("/home/..."), NULL if outside the root. */
const char *stage_jail_dir(const struct stage *);
/* The canonical root the stage was created in. */
const char *stage_root(const struct stage *);

/*
 * Write env.sh from n name/value pairs (any order; duplicates refused).
 * Returns 0, or -1 with *cause naming the offending variable.
 */
int stage_write_env(struct stage *, const char *const *names, const char *const *values, size_t n,
                    char **cause);
/* The same from a JSON object of strings (NULL: empty env.sh). */
int stage_write_env_json(struct stage *, const json_t *env, char **cause);
/*
 * Write launch.sh running binary with args (NULL-terminated, without argv[0])
 * in cwd (an absolute in-confinement path; NULL: stay where the confinement
 * starts).  Returns 0, or -1 with *cause.
 */
int stage_write_launch(struct stage *, const char *cwd, const char *binary, const char *const *args,
                       char **cause);
/* Read STAGE/status (never following a symlink).  Always fills *out. */
void stage_read_status(const struct stage *, struct stage_status *out);
/* "exit 3", "signal 9", "setup cwd" or "unknown" for logs (static or caller's buffer). */
const char *stage_status_str(const struct stage_status *, char *buf, size_t len);
/*
 * Remove everything in the stage directory (whatever the agent left there,
 * subdirectories included, symlinks removed as links) and the directory
 * itself.  Returns 0, or -1 with *cause; safe to call twice.
 */
int stage_remove(struct stage *, char **cause);
/* Close the descriptors and free; does not remove.  NULL is fine. */
void stage_free(struct stage *);

/* Single-quote s for sh: 'it'\''s' (caller frees).  Exposed for tests. */
char *stage_shell_quote(const char *s);

#endif
