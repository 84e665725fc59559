/*
 * bwrap.h -- the Linux backend: one JailConfig as a bubblewrap sandbox.
 *
 * Mapping (the same JailConfig as on FreeBSD):
 *   root (root_path, else path)  bound read-write at the SAME path inside the
 *                                sandbox; the command starts there (--chdir),
 *                                HOME is ROOT/home/clawdie.  Host and agent see
 *                                the same paths, so cwd, session files and the
 *                                stage need no translation.
 *   name                         --hostname NAME (an ephemeral config gets
 *                                colibri-<last path component>).
 *   ip4                          unset, "inherit" or an address: --share-net,
 *                                the host's network as a FreeBSD jail with
 *                                ip4=inherit (bubblewrap cannot bind one
 *                                address; the host network is the nearest).
 *                                "disable" (or "none", parsed to it): no
 *                                network (only a private loopback).
 *   user                         USER and LOGNAME.  The sandbox runs as the
 *                                uid bwrap is started as: the daemon's, or
 *                                under a root daemon an unprivileged one
 *                                (confine.h), never root.
 * Always: --unshare-all (user, ipc, pid, net, uts, cgroup), --cap-drop ALL
 * (no capability inside, whoever starts bwrap), --die-with-parent,
 * --new-session (setsid: no access to the daemon's controlling terminal, so
 * no TIOCSTI injection; pipes on stdin/stdout/stderr keep working), a
 * read-only /usr plus /bin /sbin /lib* as symlinks or read-only binds as on
 * the host, a few read-only files of /etc (passwd, group, nsswitch, hosts,
 * resolv.conf, localtime, ld.so.*, ssl, ca-certificates, alternatives), a
 * fresh /proc, /dev and /tmp, the sandbox's own / remounted read-only after
 * the binds (writable: the root and /tmp only), --clearenv (env.sh supplies the environment)
 * with HOME and PATH set, a read-only bind of the agent binary's directory
 * when it is not already visible, read-only binds of the directories the
 * agent's program needs (agent_dirs: every hop of its symlink chain, its
 * package directory, its interpreter; resolved on the host by confine.c),
 * the interpreter's directory put first on PATH (so `#!/usr/bin/env node`
 * finds the host's node), and the stage bound at its own path when it lies
 * outside the root.  The privilege mode is not used: bubblewrap runs
 * unprivileged.
 *
 * The daemon's own files (its state directory, sessions, database, socket,
 * provider.env, configuration directories: struct bwrap_private) never
 * appear inside: a bind whose source contains one of them or lies inside
 * one (the root, an outside stage, the agent binary's directory, a
 * read-only path) is refused with the reason, and one that lies inside a
 * directory the sandbox shows anyway (/usr, the /etc files) is covered: an
 * empty tmpfs over a directory, /dev/null over a file.
 */
#ifndef COLIBRI_CONFINE_BWRAP_H
#define COLIBRI_CONFINE_BWRAP_H

#include "confine/jail.h"

#define BWRAP_NTOP 6

/* How /bin, /sbin, /lib, /lib64, /lib32, /libx32 look on the host. */
struct bwrap_host {
	int present[BWRAP_NTOP]; /* exists (as a directory or a symlink) */
	char *link[BWRAP_NTOP];  /* symlink target, or NULL for a directory */
};

/* The top-level names bwrap_host describes, in order. */
extern const char *const bwrap_host_dirs[BWRAP_NTOP];

/* Fill *h from the running host (lstat + readlink).  Release with bwrap_host_clear. */
void bwrap_host_probe(struct bwrap_host *h);
void bwrap_host_clear(struct bwrap_host *h);

/* A path of the daemon's that no sandbox may see. */
struct bwrap_private {
	const char *path; /* absolute, canonical when it exists */
	const char *what; /* for the refusal: "state directory", "socket"... */
	int is_dir;
	int exists; /* only existing paths can be covered */
};

struct bwrap_spec {
	const struct jail_config *cfg;
	const char *root;      /* canonical host root, bound read-write */
	const char *stage_dir; /* host path of the stage; bound when outside root (may be NULL) */
	const char *agent_binary;    /* the agent's binary, for the read-only bind (may be NULL) */
	const char *const *ro_paths; /* extra read-only binds (NULL-terminated, may be NULL) */
	/* Directories the agent's program needs, read-only (NULL-terminated, may be NULL). */
	const char *const *agent_dirs;
	const char *path_first; /* a directory put before the default PATH (may be NULL) */
	const struct bwrap_private *privates; /* the daemon's paths (may be NULL) */
	size_t nprivates;
	const struct bwrap_host *host;
	const char *program;     /* what bwrap runs: "/bin/sh" */
	const char *const *args; /* its arguments: the launch.sh path */
};

/*
 * PURE: the bwrap argv for spec.  Returns the command (free with
 * confine_cmd_free) or NULL with *cause when the spec cannot be mapped (no
 * root, root "/", relative paths).
 */
struct confine_cmd *bwrap_wrap(const struct bwrap_spec *spec, char **cause);
/*
 * PURE: the first of privates[0..n) that a bind of path would expose (path
 * inside it, or it inside path), or NULL.
 */
const struct bwrap_private *bwrap_private_conflict(const char *path,
                                                   const struct bwrap_private *privates, size_t n);

/*
 * PURE: NULL when p is a read-only path a spawn may ask for: absolute and
 * written canonically (no ".", "..", "//" or trailing "/", not "/"); else
 * the reason.  The caller also checks that it resolves to itself
 * (realpath) and bwrap_wrap that it does not overlap the daemon's files.
 */
const char *bwrap_ro_path_check(const char *p);
/*
 * PURE: the interpreter named by a script's first line (head, n bytes).
 * "#!/usr/bin/env [-S] NAME ..." gives NAME (to look up on PATH), "#!/PATH
 * ..." gives /PATH; anything else (no #!, a binary) gives NULL.  Caller frees.
 */
char *bwrap_shebang_interp(const char *head, size_t n);
/*
 * PURE: the outermost ancestor of path (or path itself) named node_modules,
 * where npm keeps a package's hoisted dependencies beside it; NULL when
 * there is none.  Caller frees.
 */
char *bwrap_node_modules_top(const char *path);

#endif
