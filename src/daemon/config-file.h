/*
 * config-file.h -- the files of the daemon's configuration directory, read
 * with one strictness.
 *
 * profiles.json, dispatch.json, retention.json and notify.json (and the
 * env files profiles name) are trusted only when they are regular files
 * owned by the daemon's uid that no group or other user may write (a file
 * of secrets: mode 0600), opened without following a symlink.  A JSON file
 * is parsed whole with duplicate keys refused; the caller checks its keys
 * (config_keys_check: every key known).  Causes name the file and the line,
 * never a value.
 */
#ifndef COLIBRI_CONFIG_FILE_H
#define COLIBRI_CONFIG_FILE_H

#include <jansson.h>

/* A file the daemon may trust (secret: mode 0600); *fd open on it.  0, or -1 with *cause. */
int config_open_own(const char *path, int secret, int *fd, char **cause);
/*
 * CONFIG_DIR/name (the daemon's --config-dir) as a new string; the caller frees it.
 */
char *config_path(const char *name);
/*
 * Load the JSON object in path into *out (a new reference).  A missing file is 0 with *out
 * NULL.  -1 with *cause ("PATH:LINE: why") when the file is not trusted, not JSON or not an
 * object.
 */
int config_load_json(const char *path, json_t **out, char **cause);
/*
 * Every key of o is one of keys (NULL-terminated): 0, or -1 with *cause naming what (a file
 * or a section) and the first unknown key.
 */
int config_keys_check(const json_t *o, const char *const *keys, const char *what, char **cause);

#endif
