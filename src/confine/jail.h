/*
 * jail.h -- JailConfig, the privilege mode and the pure jail_wrap.
 *
 * A spawn may carry a jail configuration.  `name` enters a persistent FreeBSD
 * jail with jexec (it takes precedence); `path` creates an ephemeral jail with
 * `jail -c ... command=` that the kernel removes when the command exits;
 * `root_path` is the host-visible root used for the staged payload (it falls
 * back to `path`); `ip4` (an address, "inherit" or "disable"; "none" is
 * parsed to "disable"; unset means inherit, on Linux too) and `user` (the
 * in-jail user) refine both.  With neither name nor path set, there is no
 * jail and jail_wrap returns the command unchanged.
 *
 * jail and jexec need root; the daemon does not run as root, so the command is
 * prefixed according to the privilege mode (COLIBRI_JAIL_PRIV_MODE):
 *   mdo     mdo -u root jexec ...            (default; FreeBSD mac_do)
 *   helper  COLIBRI_LIBEXECDIR/colibri-jail-spawn exec|create ... -- binary args
 *   sudo    sudo -n jexec ...
 *   none    jexec ...                        (already root, or tests)
 * The helper form is the only request colibri-jail-spawn accepts:
 *   colibri-jail-spawn exec -U USER NAME -- /bin/sh STAGE/launch.sh
 *   colibri-jail-spawn create [-4 IP4] -U USER PATH -- /bin/sh STAGE/launch.sh
 * and the helper builds the jexec/jail argv itself from those values.  USER
 * is the jail config's user, required in helper mode and never root
 * (jail_config_check_mode).
 *
 * jexec runs without -l, so the environment is inherited where the privilege
 * tool passes it on; the spawner does not rely on that: every confined spawn
 * runs /bin/sh launch.sh from a staged payload (see stage.h).
 */
#ifndef COLIBRI_CONFINE_JAIL_H
#define COLIBRI_CONFINE_JAIL_H

#include <jansson.h>
#include <stddef.h>

/* Every field is a heap string or NULL when unset. */
struct jail_config {
	char *name;
	char *path;
	char *root_path;
	char *ip4;
	char *user;
};

enum priv_mode { PRIV_MODE_MDO, PRIV_MODE_HELPER, PRIV_MODE_SUDO, PRIV_MODE_NONE };

/* A program and its argv (argv[0] == program, NULL-terminated); see confine_cmd_free. */
struct confine_cmd {
	char *program;
	char **argv;
	size_t argc;
};

/*
 * Parse the "jail" object of a spawn request.  obj may be NULL or JSON null
 * (no jail).  Keys: name, path, root_path, ip4, user; each a non-empty string
 * or null.  Unknown keys, wrong types and invalid values are refused, and so
 * is an ephemeral jail (path, no name) whose root_path is not its path.
 * Returns 0 and fills *out (release with jail_config_clear), or -1 with
 * *cause set to a message naming the key (caller frees).
 */
int jail_config_parse(const json_t *obj, struct jail_config *out, char **cause);
/* Free the strings and zero the struct; safe on a zeroed struct. */
void jail_config_clear(struct jail_config *);
/* Deep copy into *out (release with jail_config_clear). */
void jail_config_copy(struct jail_config *out, const struct jail_config *in);
/* Non-zero when a jail is requested (name or path set). */
int jail_config_active(const struct jail_config *);
/* The host-visible root for the staged payload: root_path, else path, else NULL. */
const char *jail_config_root(const struct jail_config *);
/*
 * The checks that depend on the privilege mode, made before anything is
 * staged: in helper mode an active jail needs a user that
 * jail_unpriv_user_check accepts (the helper is always given -U USER and
 * refuses root).  Returns 0, or -1 with *cause (caller frees).
 */
int jail_config_check_mode(const struct jail_config *, enum priv_mode, char **cause);
/* The config as a JSON object with only the set keys (new reference). */
json_t *jail_config_to_json(const struct jail_config *);

/*
 * Parse COLIBRI_JAIL_PRIV_MODE: NULL or "" means mdo; "mdo", "helper",
 * "sudo", "none".  Returns 0, or -1 with *cause (caller frees) for any other
 * value; the daemon reports it at start-up.
 */
int priv_mode_parse(const char *value, enum priv_mode *out, char **cause);
const char *priv_mode_name(enum priv_mode);
/* The helper's absolute path: COLIBRI_LIBEXECDIR "/colibri-jail-spawn". */
const char *priv_helper_path(void);

/*
 * PURE: the command that runs binary with args (NULL-terminated, without
 * argv[0]; may be NULL) confined as cfg says, prefixed for mode.
 *   name set: [prefix] jexec [-U user] NAME binary args...
 *   path set: [prefix] jail -c path=P name=colibri-<last component>
 *             ip4.addr=IP | ip4=inherit | ip4=disable [exec.jail_user=U]
 *             command=binary args...
 *   neither:  binary args... (mode ignored)
 * Values are assumed validated (jail_config_parse).  Never returns NULL;
 * free with confine_cmd_free.
 */
struct confine_cmd *jail_wrap(enum priv_mode mode, const struct jail_config *cfg,
                              const char *binary, const char *const *args);

/* An empty command builder and helpers for other argv producers (bwrap.c). */
struct confine_cmd *confine_cmd_new(void);
void confine_cmd_add(struct confine_cmd *, const char *arg);
void confine_cmd_addf(struct confine_cmd *, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Free the command and its strings; NULL is fine. */
void confine_cmd_free(struct confine_cmd *);
/* The argv joined with spaces, for logs and tests (caller frees). */
char *confine_cmd_join(const struct confine_cmd *);

#endif
