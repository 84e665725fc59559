/*
 * vault.h -- the pure parts of vault provisioning: reading the provider
 * env file, reading `bw` output, choosing the target, rendering and writing
 * the tenant's .env.  The daemon's vault runner (src/daemon/vault-run.c)
 * drives `bw` and calls these; keeping them free of the event loop makes
 * them unit-testable and fuzzable.
 *
 * Nothing here logs.  Error messages never contain a secret value: they
 * name keys, items and files, never passwords or session keys.
 */
#ifndef COLIBRI_VAULT_H
#define COLIBRI_VAULT_H

#include <jansson.h>
#include <stddef.h>

#define VAULT_ROOT_BASE_DEFAULT "/usr/local/bastille/jails"

/* Bootstrap credentials (BW_SERVER, BW_CLIENTID, BW_CLIENTSECRET, BW_PASSWORD). */
struct vault_creds {
	char *server;
	char *client_id;
	char *client_secret;
	char *password;
};

/*
 * Parse a provider env file's text: KEY=VALUE lines, optional "export ",
 * '#' comments, values optionally in single or double quotes.  Only the
 * BW_* keys above are kept.  Returns 0, or -1 with *cause (a line number,
 * never the value).
 */
int vault_parse_provider_env(const char *text, size_t len, struct vault_creds *, char **cause);
/*
 * Load the file: refuses one that is not a regular file, is a symlink, or is
 * readable or writable by group or others.  Missing keys are filled from
 * the environment.  Returns 0, or -1 with *cause.  A missing file is not an
 * error when every key is in the environment.
 */
int vault_load_creds(const char *path, struct vault_creds *, char **cause);
/* 0 if path is absent or has safe permissions (0600/0400, ours), else -1 with *cause. */
int vault_check_provider_env_mode(const char *path, char **cause);
/* Wipe and free. */
void vault_creds_clear(struct vault_creds *);
/* Non-zero when every credential is present. */
int vault_creds_complete(const struct vault_creds *, const char **missing);

/* `bw status` JSON: the server URL (NULL if unset) and the status string. */
int vault_parse_status(const char *out, size_t len, char **server, char **status, char **cause);
/* Equal server URLs, ignoring trailing slashes and the case of scheme and host. */
int vault_server_matches(const char *a, const char *b);
/* From `bw list collections` JSON: the id of the one collection named name. */
int vault_find_collection(const char *out, size_t len, const char *name, char **id, char **cause);
/*
 * From `bw list items` JSON: an object NAME -> value.  Item names must be
 * shell identifiers; duplicates, a null or missing login.password and an
 * empty list are errors (naming the item, never the value).
 */
json_t *vault_items_to_vars(const char *out, size_t len, char **cause);

/*
 * The containment check, before anything is created: canonicalise root and
 * base; root must lie strictly under base (a sibling that shares the prefix,
 * "/jails-evil" beside "/jails", is refused) and must be its own canonical
 * path (vault_root_canonical: a root that is, or passes through, a symlink
 * could land one tenant's secrets in another's root).  The base may be
 * given through a symlink.  Returns the canonical root (caller frees) or
 * NULL with *cause.
 */
char *vault_contain(const char *root, const char *base, char **cause);
/*
 * realpath(root) == root, trailing slashes aside: 0 when it holds or root
 * does not exist (yet: vault_contain checks again before writing), else -1
 * with *cause naming what it resolves to.
 */
int vault_root_canonical(const char *root, char **cause);
/* Render vars as .env text (sorted, quoted where needed).  Caller frees (wipe first). */
char *vault_render_env(json_t *vars, size_t *len);
/*
 * Write root/.env atomically at 0600: walk the canonical root from "/" with
 * O_NOFOLLOW, refuse an existing .env that is not a regular file (a planted
 * symlink), write a temporary file with O_EXCL, fsync, rename, fsync the
 * directory.  Returns 0, or -1 with *cause; nothing is left behind on error.
 */
int vault_write_env(const char *canon_root, const char *text, size_t len, char **cause);
/*
 * A .env's text back into an object NAME -> value, evaluating nothing: the
 * forms vault_render_env writes (plain words; '...'; "..." with \\ \" \$
 * \` escaped and literal newlines) and those a hand-written file commonly
 * has (blank lines, # comments, "export ", CRLF).  What the shell would
 * expand or split (an unescaped $ or ` in double quotes, an unquoted blank,
 * quote, $ or operator, a leading ~), a name set twice, a NUL byte or a
 * value that is not UTF-8 is refused.  NULL with *cause naming the line and
 * the name, never a value.  Free with vault_vars_free.
 */
json_t *vault_parse_env(const char *text, size_t len, char **cause);
/* Wipe every value of vars, then release it.  NULL is fine. */
void vault_vars_free(json_t *vars);
#define VAULT_ENV_MAX (1024 * 1024)
/*
 * Read canon_root/.env (walked from "/" without following a symlink) into
 * *vars.  It must be a regular file owned by the daemon's uid, with no group
 * or other bits, one link and at most VAULT_ENV_MAX bytes -- as
 * vault_write_env leaves it: a file an agent planted in its root is
 * refused.  1 with *vars, 0 when there is no .env, -1 with *cause.  The
 * text read is wiped.
 */
int vault_read_env(const char *canon_root, json_t **vars, char **cause);
/*
 * Remove a tenant's bw data dir and everything in it, without following a
 * symlink anywhere (a symlinked dir is unlinked, not entered).  Returns 0
 * when the dir is gone (or was absent), else -1 with errno set.
 */
int vault_remove_dir(const char *dir);
/*
 * Scrub msg in place: every run of bytes that a substring of
 * VAULT_SCRUB_MIN (8) or more bytes of any secret covers, and every whole
 * occurrence of a secret shorter than that (VAULT_SCRUB_SHORT, 3, bytes or
 * more), becomes "***"; overlapping and adjacent matches make one run.  A
 * run widens to whole UTF-8 characters.  NULL secrets are skipped.  The
 * bytes freed at the end are zeroed.  Scrub before cutting (vault_cut): a
 * cut-off prefix of a secret is still a substring of it, which a scrub
 * after the cut would only catch from 8 bytes on.
 */
#define VAULT_SCRUB_MIN   8
#define VAULT_SCRUB_SHORT 3
void vault_scrub(char *msg, const char *const *secrets, size_t n);
/* Cut msg to at most max bytes, never inside a UTF-8 character; the rest is zeroed. */
void vault_cut(char *msg, size_t max);

#endif
