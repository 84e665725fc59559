/*
 * config-file.c -- the configuration directory's files, read with one
 * strictness (see config-file.h).  Shared by profiles.c and the policies
 * the daemon reloads on SIGHUP, so no file of the directory is held to a
 * looser rule than another.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/paths.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/config-file.h"
#include "daemon/daemon.h"

int
config_open_own(const char *path, int secret, int *fd, char **cause)
{
	struct stat sb;

	if ((*fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(*fd, &sb) == -1 || !S_ISREG(sb.st_mode))
		xasprintf(cause, "%s: not a regular file", path);
	else if (sb.st_uid != geteuid())
		xasprintf(cause, "%s: owned by uid %ld, not the daemon's uid %ld", path,
		          (long)sb.st_uid, (long)geteuid());
	else if (secret && (sb.st_mode & 077) != 0)
		xasprintf(cause, "%s: mode %04o: an env file of secrets must be mode 0600", path,
		          (unsigned)(sb.st_mode & 07777));
	else if (!secret && (sb.st_mode & 022) != 0)
		xasprintf(cause, "%s: mode %04o: group or others may write it", path,
		          (unsigned)(sb.st_mode & 07777));
	else
		return 0;
	close(*fd);
	*fd = -1;
	return -1;
}

char *
config_path(const char *name)
{
	return path_join(D.cfg.config_dir != NULL ? D.cfg.config_dir : PATH_DEFAULT_CONFIG_DIR,
	                 name);
}

int
config_load_json(const char *path, json_t **out, char **cause)
{
	json_error_t jerr;
	int fd;

	*out = NULL;
	if (access(path, F_OK) == -1 && errno == ENOENT)
		return 0;
	if (config_open_own(path, 0, &fd, cause) == -1)
		return -1;
	*out = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	close(fd);
	if (*out == NULL) {
		xasprintf(cause, "%s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		xasprintf(cause, "%s: the file must hold one JSON object", path);
		return -1;
	}
	return 0;
}

int
config_keys_check(const json_t *o, const char *const *keys, const char *what, char **cause)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)o, k, v)
	{
		for (i = 0; keys[i] != NULL && strcmp(keys[i], k) != 0; i++)
			;
		if (keys[i] == NULL) {
			xasprintf(cause, "%s: unknown key \"%.64s\"", what, k);
			return -1;
		}
	}
	return 0;
}
