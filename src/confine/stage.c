/*
 * stage.c -- creating, filling, reading and removing the staged payload.
 *
 * The stage lives inside a jail root that processes inside the jail can
 * write, so every path below the root is treated as hostile: directories are
 * walked with openat(O_NOFOLLOW), files created with O_EXCL|O_NOFOLLOW, and
 * the directory is removed through descriptors held since its creation.  See
 * stage.h for the payload and the reasons for it.
 */
#include "confine/stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/jail-name.h"

#define STAGE_DIR_FLAGS      (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define STAGE_REMOVE_DEPTH   32
#define STAGE_STATUS_MAXREAD 64

struct stage {
	char *id;
	char *root;     /* canonical root */
	char *host_dir; /* host path of the stage directory */
	char *jail_dir; /* path inside the root, or NULL */
	int parent_fd;  /* the directory holding <id> */
	int dir_fd;     /* the stage directory */
	int removed;
	uint32_t made; /* bit k: the walk created the k-th component on the way to the stage */
};

/* Canonical path of p, or NULL with *cause. */
static char *
stage_realpath(const char *what, const char *p, char **cause)
{
	char *r = realpath(p, NULL);

	if (r == NULL)
		xasprintf(cause, "%s %s: %s", what, p, strerror(errno));
	return r;
}

/* Non-zero when canonical path p lies strictly under canonical dir. */
static int
stage_path_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return p[0] == '/' && p[1] != '\0';
	return strncmp(p, dir, n) == 0 && p[n] == '/' && p[n + 1] != '\0';
}

static int
stage_open_component(int fd, const char *name, int create, const char *where, int *made,
                     char **cause)
{
	struct stat st;
	int nfd;

	nfd = openat(fd, name, STAGE_DIR_FLAGS);
	if (nfd == -1 && errno == ENOENT && create) {
		if (mkdirat(fd, name, 0700) == 0)
			*made = 1;
		else if (errno != EEXIST) {
			xasprintf(cause, "cannot create %s/%s: %s", where, name, strerror(errno));
			return -1;
		}
		nfd = openat(fd, name, STAGE_DIR_FLAGS);
	}
	if (nfd != -1)
		return nfd;
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		xasprintf(cause, "%s/%s is a symlink: refusing to follow it", where, name);
	else
		xasprintf(cause, "cannot open %s/%s: %s", where, name, strerror(errno));
	return -1;
}

/* Walk rel (components separated by '/') below fd; returns the final directory's fd. */
static int
stage_walk(int fd, const char *where, const char *rel, int create, uint32_t *made_mask,
           char **cause)
{
	char *copy = xstrdup(rel), *comp, *save = NULL;
	char *path = xstrdup(where), *tmp;
	int cur = dup(fd), nfd, made, k = 0;

	for (comp = strtok_r(copy, "/", &save); comp != NULL && cur != -1;
	     comp = strtok_r(NULL, "/", &save), k++) {
		made = 0;
		nfd = stage_open_component(cur, comp, create, path, &made, cause);
		if (made && k < 32)
			*made_mask |= (uint32_t)1 << k;
		close(cur);
		cur = nfd;
		tmp = path_join(path, comp);
		free(path);
		path = tmp;
	}
	if (cur == -1 && *cause == NULL)
		xasprintf(cause, "dup: %s", strerror(errno));
	free(copy);
	free(path);
	return cur;
}

static int
stage_check_root(struct stage *st, const char *root, const char *root_base, char **cause)
{
	char *base;
	int ok;

	if ((st->root = stage_realpath("jail root", root, cause)) == NULL)
		return -1;
	if (root_base == NULL)
		return 0;
	if ((base = stage_realpath("jail root base", root_base, cause)) == NULL)
		return -1;
	ok = stage_path_under(st->root, base);
	if (!ok)
		xasprintf(cause, "jail root %s (%s) is not strictly under %s", root, st->root,
		          base);
	free(base);
	return ok ? 0 : -1;
}

/* Open the base directory holding the stages; sets jail_dir's prefix in *rel_out. */
static int
stage_open_base(struct stage *st, const char *override, int create, char **rel_out, char **cause)
{
	char *canon;
	int rootfd, fd;

	*rel_out = NULL;
	if (override == NULL) {
		*rel_out = xstrdup("/" STAGE_DEFAULT_REL);
		if ((rootfd = open(st->root, STAGE_DIR_FLAGS)) == -1) {
			xasprintf(cause, "cannot open jail root %s: %s", st->root, strerror(errno));
			return -1;
		}
		fd = stage_walk(rootfd, st->root, STAGE_DEFAULT_REL, create, &st->made, cause);
		close(rootfd);
		return fd;
	}
	if ((canon = stage_realpath("COLIBRI_JAIL_STAGE_DIR", override, cause)) == NULL)
		return -1;
	if (stage_path_under(canon, st->root)) {
		*rel_out = xstrdup(canon + (strcmp(st->root, "/") == 0 ? 0 : strlen(st->root)));
		rootfd = open(st->root, STAGE_DIR_FLAGS);
		fd = rootfd == -1
		             ? -1
		             : stage_walk(rootfd, st->root, *rel_out, create, &st->made, cause);
		if (rootfd != -1)
			close(rootfd);
	} else if ((fd = open(canon, STAGE_DIR_FLAGS)) == -1)
		xasprintf(cause, "cannot open COLIBRI_JAIL_STAGE_DIR %s: %s", canon,
		          strerror(errno));
	if (fd == -1 && *cause == NULL)
		xasprintf(cause, "cannot open jail root %s: %s", st->root, strerror(errno));
	free(canon);
	return fd;
}

static char *
stage_base_host_path(const struct stage *st, const char *override, const char *rel)
{
	if (rel != NULL)
		return path_join(st->root, rel);
	return realpath(override, NULL);
}

static int
stage_make_dir(struct stage *st, char **cause)
{
	if (mkdirat(st->parent_fd, st->id, 0700) == -1) {
		xasprintf(cause, "cannot create stage %s: %s", st->host_dir, strerror(errno));
		return -1;
	}
	st->dir_fd = openat(st->parent_fd, st->id, STAGE_DIR_FLAGS);
	if (st->dir_fd == -1 || fchmod(st->dir_fd, 0700) == -1) {
		xasprintf(cause, "cannot open stage %s: %s", st->host_dir, strerror(errno));
		if (st->dir_fd == -1)
			unlinkat(st->parent_fd, st->id, AT_REMOVEDIR);
		return -1;
	}
	return 0;
}

/* Open the existing stage directory (for stage_remove_leftover). */
static int
stage_open_dir(struct stage *st, char **cause)
{
	st->dir_fd = openat(st->parent_fd, st->id, STAGE_DIR_FLAGS);
	if (st->dir_fd == -1) {
		xasprintf(cause, "cannot open stage %s: %s", st->host_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static struct stage *stage_open_mode(const char *root, const char *id, const char *base_override,
                                     const char *root_base, int create, char **cause);

struct stage *
stage_create(const char *root, const char *id, const char *base_override, const char *root_base,
             char **cause)
{
	return stage_open_mode(root, id, base_override, root_base, 1, cause);
}

int
stage_remove_leftover(const char *root, const char *id, const char *base_override,
                      const char *root_base, char **cause)
{
	struct stage *st;
	int rc;

	*cause = NULL;
	errno = 0; /* ENOENT below comes from the walk itself, not from before */
	if ((st = stage_open_mode(root, id, base_override, root_base, 0, cause)) == NULL) {
		if (errno != ENOENT)
			return -1;
		free(*cause); /* no stage there: nothing to remove */
		*cause = NULL;
		return 0;
	}
	rc = stage_remove(st, cause);
	stage_free(st);
	return rc == 0 ? 1 : -1;
}

static struct stage *
stage_open_mode(const char *root, const char *id, const char *base_override, const char *root_base,
                int create, char **cause)
{
	struct stage *st = xcalloc(1, sizeof *st);
	char *rel = NULL, *base = NULL;
	const char *err;
	int e;

	*cause = NULL;
	st->parent_fd = st->dir_fd = -1;
	st->id = xstrdup(id != NULL ? id : "");
	if ((err = stage_id_check(id)) != NULL) {
		xasprintf(cause, "stage id %s", err);
		goto fail;
	}
	if (root == NULL || (err = jail_path_check(root)) != NULL) {
		xasprintf(cause, "jail root %s", root == NULL ? "is not set" : err);
		goto fail;
	}
	if (stage_check_root(st, root, root_base, cause) == -1)
		goto fail;
	if ((st->parent_fd = stage_open_base(st, base_override, create, &rel, cause)) == -1)
		goto fail;
	if ((base = stage_base_host_path(st, base_override, rel)) == NULL) {
		xasprintf(cause, "cannot resolve %s: %s", base_override, strerror(errno));
		goto fail;
	}
	st->host_dir = path_join(base, id);
	st->jail_dir = rel != NULL ? path_join(rel, id) : NULL;
	if ((create ? stage_make_dir(st, cause) : stage_open_dir(st, cause)) == -1)
		goto fail;
	free(rel);
	free(base);
	return st;
fail:
	e = errno;
	free(rel);
	free(base);
	st->removed = 1;
	stage_free(st);
	errno = e;
	return NULL;
}

/* fchown a directory the daemon made; 0 or -1 with *cause. */
static int
stage_give_dir(int fd, const char *what, uid_t uid, gid_t gid, char **cause)
{
	if (fchown(fd, uid, gid) == -1) {
		xasprintf(cause, "cannot give %s to uid %ld: %s", what, (long)uid, strerror(errno));
		return -1;
	}
	return 0;
}

int
stage_give(struct stage *st, uid_t uid, gid_t gid, char **cause)
{
	static const char *const files[] = {"env.sh", "launch.sh"};
	char *copy, *comp, *save = NULL;
	int cur, nfd, rc = 0, k = 0;
	size_t i;

	*cause = NULL;
	/* The way from the root to the stage, where it is inside the root. */
	if (st->jail_dir != NULL && (cur = open(st->root, STAGE_DIR_FLAGS)) != -1) {
		copy = xstrdup(st->jail_dir);
		for (comp = strtok_r(copy, "/", &save); comp != NULL && rc == 0;
		     comp = strtok_r(NULL, "/", &save), k++) {
			if (strcmp(comp, st->id) == 0 && save != NULL && *save == '\0')
				break;
			if ((nfd = openat(cur, comp, STAGE_DIR_FLAGS)) == -1)
				break;
			close(cur);
			cur = nfd;
			if (k < 32 && (st->made & ((uint32_t)1 << k)) != 0)
				rc = stage_give_dir(cur, comp, uid, gid, cause);
		}
		close(cur);
		free(copy);
		if (rc == -1)
			return -1;
	}
	if (stage_give_dir(st->dir_fd, st->host_dir, uid, gid, cause) == -1)
		return -1;
	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (fchownat(st->dir_fd, files[i], uid, gid, AT_SYMLINK_NOFOLLOW) == -1 &&
		    errno != ENOENT) {
			xasprintf(cause, "cannot give %s/%s to uid %ld: %s", st->host_dir, files[i],
			          (long)uid, strerror(errno));
			return -1;
		}
	}
	return 0;
}

const char *
stage_host_dir(const struct stage *st)
{
	return st->host_dir;
}

const char *
stage_jail_dir(const struct stage *st)
{
	return st->jail_dir;
}

const char *
stage_root(const struct stage *st)
{
	return st->root;
}

char *
stage_shell_quote(const char *s)
{
	struct buf b;

	buf_init(&b);
	buf_addc(&b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			buf_adds(&b, "'\\''");
		else
			buf_addc(&b, *s);
	}
	buf_addc(&b, '\'');
	return buf_cstr(&b);
}

/* Create name (0600) in the stage and write the buffer; never follows a symlink. */
static int
stage_write_file(struct stage *st, const char *name, const struct buf *b, char **cause)
{
	size_t off = 0, len = buf_used(b);
	ssize_t n;
	int fd, rc = -1;

	fd = openat(st->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		xasprintf(cause, "cannot create %s/%s: %s", st->host_dir, name, strerror(errno));
		return -1;
	}
	while (off < len) {
		n = write(fd, buf_head(b) + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			xasprintf(cause, "cannot write %s/%s: %s", st->host_dir, name,
			          strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, 0600) == -1) {
		xasprintf(cause, "cannot chmod %s/%s: %s", st->host_dir, name, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int
stage_env_name_check(const char *name, char **cause)
{
	if (name == NULL || !is_shell_identifier(name)) {
		xasprintf(cause, "environment variable name \"%s\" is not a valid shell identifier",
		          name == NULL ? "(null)" : name);
		return -1;
	}
	if (strncmp(name, "_colibri_", 9) == 0) {
		xasprintf(cause, "environment variable name \"%s\" is reserved (_colibri_*)", name);
		return -1;
	}
	return 0;
}

struct stage_env_pair {
	const char *name;
	const char *value;
};

static int
stage_env_cmp(const void *a, const void *b)
{
	return strcmp(((const struct stage_env_pair *)a)->name,
	              ((const struct stage_env_pair *)b)->name);
}

static int
stage_env_render(struct stage_env_pair *v, size_t n, struct buf *b, char **cause)
{
	char *q;
	size_t i;

	qsort(v, n, sizeof *v, stage_env_cmp);
	buf_adds(b, "# colibri env.sh: the agent's environment, sorted, single-quoted.\n");
	for (i = 0; i < n; i++) {
		if (stage_env_name_check(v[i].name, cause) == -1)
			return -1;
		if (i > 0 && strcmp(v[i - 1].name, v[i].name) == 0) {
			xasprintf(cause, "environment variable \"%s\" is given twice", v[i].name);
			return -1;
		}
		q = stage_shell_quote(v[i].value != NULL ? v[i].value : "");
		buf_printf(b, "export %s=%s\n", v[i].name, q);
		free(q);
	}
	return 0;
}

int
stage_write_env(struct stage *st, const char *const *names, const char *const *values, size_t n,
                char **cause)
{
	struct stage_env_pair *v = xcalloc(n + 1, sizeof *v);
	struct buf b;
	size_t i;
	int rc = -1;

	*cause = NULL;
	buf_init(&b);
	for (i = 0; i < n; i++) {
		v[i].name = names[i];
		v[i].value = values[i];
	}
	if (stage_env_render(v, n, &b, cause) == 0)
		rc = stage_write_file(st, "env.sh", &b, cause);
	buf_free(&b);
	free(v);
	return rc;
}

int
stage_write_env_json(struct stage *st, const json_t *env, char **cause)
{
	size_t n = 0, cap = env != NULL ? json_object_size(env) : 0;
	const char **names = xcalloc(cap + 1, sizeof *names);
	const char **values = xcalloc(cap + 1, sizeof *values);
	const char *key;
	json_t *v;
	int rc = -1;

	*cause = NULL;
	if (env != NULL && !json_is_object(env)) {
		xasprintf(cause, "env must be an object of strings");
		goto out;
	}
	json_object_foreach((json_t *)env, key, v)
	{
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			xasprintf(cause, "env.%s must be a string without NUL bytes", key);
			goto out;
		}
		names[n] = key;
		values[n++] = json_string_value(v);
	}
	rc = stage_write_env(st, names, values, n, cause);
out:
	free(names);
	free(values);
	return rc;
}

static void
stage_add_quoted(struct buf *b, const char *s)
{
	char *q = stage_shell_quote(s);

	buf_adds(b, q);
	free(q);
}

static void
stage_render_launch(struct buf *b, const char *cwd, const char *binary, const char *const *args)
{
	buf_adds(b, "# colibri launch.sh: runs one confined agent and records its exit status.\n"
	            "# Run as /bin/sh STAGE/launch.sh; STAGE is ${0%/*}.\n"
	            "[ -r \"${0%/*}/env.sh\" ] || { printf 'setup env\\n' >\"${0%/*}/status\"; "
	            "exit 125; }\n"
	            ". \"${0%/*}/env.sh\"\n");
	if (cwd != NULL) {
		buf_adds(b, "cd ");
		stage_add_quoted(b, cwd);
		buf_adds(b, " || { printf 'setup cwd\\n' >\"${0%/*}/status\"; exit 125; }\n");
	}
	buf_adds(b, "trap : HUP INT TERM\n");
	stage_add_quoted(b, binary);
	for (; args != NULL && *args != NULL; args++) {
		buf_addc(b, ' ');
		stage_add_quoted(b, *args);
	}
	buf_adds(b, "\n_colibri_rc=$?\n"
	            "printf 'exit %d\\n' \"$_colibri_rc\" >\"${0%/*}/status\"\n"
	            "exit \"$_colibri_rc\"\n");
}

int
stage_write_launch(struct stage *st, const char *cwd, const char *binary, const char *const *args,
                   char **cause)
{
	struct buf b;
	int rc;

	*cause = NULL;
	if (binary == NULL || *binary == '\0') {
		xasprintf(cause, "launch: no binary given");
		return -1;
	}
	if (cwd != NULL && cwd[0] != '/') {
		xasprintf(cause, "launch: cwd %s must be an absolute path", cwd);
		return -1;
	}
	buf_init(&b);
	stage_render_launch(&b, cwd, binary, args);
	rc = stage_write_file(st, "launch.sh", &b, cause);
	buf_free(&b);
	return rc;
}

static void
stage_parse_status(const char *s, struct stage_status *out)
{
	char *end;
	long v;

	if (strcmp(s, "setup env\n") == 0 || strcmp(s, "setup cwd\n") == 0) {
		out->kind = STAGE_STATUS_SETUP_FAILED;
		out->exit_code = STAGE_SETUP_EXIT;
		out->setup = s[6] == 'e' ? "env" : "cwd";
		return;
	}
	if (strncmp(s, "exit ", 5) != 0 || s[5] < '0' || s[5] > '9')
		return;
	errno = 0;
	v = strtol(s + 5, &end, 10);
	if (errno != 0 || strcmp(end, "\n") != 0 || v < 0 || v > 255)
		return;
	out->exit_code = (int)v;
	out->kind = STAGE_STATUS_EXITED;
	if (v > 128 && v < 128 + 65) {
		out->kind = STAGE_STATUS_SIGNALED;
		out->signal = (int)v - 128;
	}
}

void
stage_read_status(const struct stage *st, struct stage_status *out)
{
	char buf[STAGE_STATUS_MAXREAD + 1];
	ssize_t n;
	int fd;

	memset(out, 0, sizeof *out);
	out->kind = STAGE_STATUS_UNKNOWN;
	if (st == NULL || st->dir_fd == -1)
		return;
	fd = openat(st->dir_fd, "status", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return;
	n = read(fd, buf, STAGE_STATUS_MAXREAD);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	stage_parse_status(buf, out);
}

const char *
stage_status_str(const struct stage_status *s, char *buf, size_t len)
{
	switch (s->kind) {
	case STAGE_STATUS_EXITED:
		snprintf(buf, len, "exit %d", s->exit_code);
		return buf;
	case STAGE_STATUS_SIGNALED:
		snprintf(buf, len, "signal %d", s->signal);
		return buf;
	case STAGE_STATUS_SETUP_FAILED:
		snprintf(buf, len, "setup %s", s->setup);
		return buf;
	case STAGE_STATUS_UNKNOWN:
		break;
	}
	return "unknown";
}

static int stage_empty_dir(int fd, int depth, char **cause);

static int
stage_remove_entry(int fd, const char *name, int depth, char **cause)
{
	int sub, rc;

	if (unlinkat(fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM) {
		xasprintf(cause, "cannot remove %s: %s", name, strerror(errno));
		return -1;
	}
	if ((sub = openat(fd, name, STAGE_DIR_FLAGS)) == -1) {
		xasprintf(cause, "cannot open %s: %s", name, strerror(errno));
		return -1;
	}
	rc = stage_empty_dir(sub, depth + 1, cause);
	close(sub);
	if (rc == 0 && unlinkat(fd, name, AT_REMOVEDIR) == -1 && errno != ENOENT) {
		xasprintf(cause, "cannot remove directory %s: %s", name, strerror(errno));
		rc = -1;
	}
	return rc;
}

/* Remove every entry below the directory fd (not fd itself). */
static int
stage_empty_dir(int fd, int depth, char **cause)
{
	struct dirent *de;
	DIR *d;
	int dfd, rc = 0;

	if (depth > STAGE_REMOVE_DEPTH) {
		xasprintf(cause, "stage tree deeper than %d levels", STAGE_REMOVE_DEPTH);
		return -1;
	}
	if ((dfd = dup(fd)) == -1 || (d = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		xasprintf(cause, "cannot read stage directory: %s", strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = stage_remove_entry(fd, de->d_name, depth, cause);
	}
	closedir(d);
	return rc;
}

/* Remove <id> from the parent only if it is still the directory we created. */
static int
stage_remove_self(struct stage *st, char **cause)
{
	struct stat a, b;

	if (fstat(st->dir_fd, &a) == -1 ||
	    fstatat(st->parent_fd, st->id, &b, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return 0;
		xasprintf(cause, "cannot stat stage %s: %s", st->host_dir, strerror(errno));
		return -1;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		xasprintf(cause, "stage %s was replaced: not removing it", st->host_dir);
		return -1;
	}
	if (unlinkat(st->parent_fd, st->id, AT_REMOVEDIR) == -1 && errno != ENOENT) {
		xasprintf(cause, "cannot remove stage %s: %s", st->host_dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
stage_remove(struct stage *st, char **cause)
{
	char *sub = NULL;

	*cause = NULL;
	if (st == NULL || st->removed)
		return 0;
	if (stage_empty_dir(st->dir_fd, 0, &sub) == -1) {
		xasprintf(cause, "stage %s: %s", st->host_dir, sub);
		free(sub);
		return -1;
	}
	if (stage_remove_self(st, cause) == -1)
		return -1;
	st->removed = 1;
	return 0;
}

void
stage_free(struct stage *st)
{
	if (st == NULL)
		return;
	if (st->dir_fd != -1)
		close(st->dir_fd);
	if (st->parent_fd != -1)
		close(st->parent_fd);
	free(st->id);
	free(st->root);
	free(st->host_dir);
	free(st->jail_dir);
	free(st);
}
