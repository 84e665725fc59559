/*
 * catalog.c -- scan skills dirs, look up and search skills.
 *
 * All opening goes through openat with O_NOFOLLOW from a descriptor of the
 * configured dir, so a symlink planted inside a skills dir cannot make the
 * daemon read a file elsewhere; the file is read through its descriptor
 * after fstat, with the size bounded before and during the read.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "common/util.h"
#include "common/xmalloc.h"

void
skills_catalog_init(struct skills_catalog *cat)
{
	memset(cat, 0, sizeof *cat);
}

void
skills_catalog_free(struct skills_catalog *cat)
{
	size_t i;

	if (cat == NULL)
		return;
	for (i = 0; i < cat->nskills; i++)
		skill_free(&cat->skills[i]);
	free(cat->skills);
	for (i = 0; i < cat->nerrors; i++) {
		free(cat->errors[i].path);
		free(cat->errors[i].message);
	}
	free(cat->errors);
	memset(cat, 0, sizeof *cat);
}

/* Record an error; message is taken over (allocated). */
static void
skills_error_add(struct skills_catalog *cat, const char *path, char *message)
{
	cat->errors = xreallocarray(cat->errors, cat->nerrors + 1, sizeof *cat->errors);
	cat->errors[cat->nerrors].path = xstrdup(path);
	cat->errors[cat->nerrors++].message = message;
}

static void
skills_errorf(struct skills_catalog *cat, const char *path, const char *what, int err)
{
	char *msg;

	xasprintf(&msg, "%s: %s%s%s", path, what, err != 0 ? ": " : "",
	          err != 0 ? strerror(err) : "");
	skills_error_add(cat, path, msg);
}

/* Read at most SKILL_MAX_BYTES from fd; -1 (errno set, EFBIG if too large). */
static char *
skills_read_fd(int fd, size_t *len)
{
	struct stat st;
	char *data;
	size_t n = 0;
	ssize_t r;

	if (fstat(fd, &st) == -1)
		return NULL;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return NULL;
	}
	if (st.st_size > SKILL_MAX_BYTES) {
		errno = EFBIG;
		return NULL;
	}
	data = xmalloc(SKILL_MAX_BYTES + 1);
	while (n <= SKILL_MAX_BYTES && (r = read(fd, data + n, SKILL_MAX_BYTES + 1 - n)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			free(data);
			return NULL;
		}
		n += (size_t)r;
	}
	if (n > SKILL_MAX_BYTES) {
		free(data);
		errno = EFBIG;
		return NULL;
	}
	*len = n;
	return data;
}

static const struct skill *
skills_find_in(const struct skill *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* Parse one SKILL.md already open as fd; adds the skill or an error. */
static void
skills_load(struct skills_catalog *cat, int fd, const char *path)
{
	const struct skill *dup;
	struct skill sk;
	char *data, *cause, *msg;
	size_t len;

	if ((data = skills_read_fd(fd, &len)) == NULL) {
		skills_errorf(cat, path, errno == EFBIG ? "file too large" : "cannot read SKILL.md",
		              errno == EFBIG ? 0 : errno);
		return;
	}
	if (skill_parse(data, len, path, &sk, &cause) == -1) {
		skills_error_add(cat, path, cause);
	} else if ((dup = skills_find_in(cat->skills, cat->nskills, sk.name)) != NULL) {
		xasprintf(&msg, "%s: duplicate skill name '%s' (already defined by %s)", path,
		          sk.name, dup->path);
		skills_error_add(cat, path, msg);
		skill_free(&sk);
	} else {
		sk.path = xstrdup(path);
		cat->skills = xreallocarray(cat->skills, cat->nskills + 1, sizeof *cat->skills);
		cat->skills[cat->nskills++] = sk;
	}
	free(data);
}

/* One entry of a skills dir: a skill folder, or something to skip or report. */
static void
skills_scan_entry(struct skills_catalog *cat, int dfd, const char *dir, const char *name)
{
	char *sub = path_join(dir, name), *file = path_join(sub, "SKILL.md");
	struct stat st;
	int sfd = -1, fd = -1;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto out;
	if (S_ISLNK(st.st_mode)) {
		if (fstatat(dfd, name, &st, 0) == 0 && S_ISDIR(st.st_mode))
			skills_errorf(cat, sub, "symlinked skill folder not followed", 0);
		goto out;
	}
	if (!S_ISDIR(st.st_mode))
		goto out;
	if ((sfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		skills_errorf(cat, sub, "cannot open skill folder", errno);
		goto out;
	}
	if (fstatat(sfd, "SKILL.md", &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT)
			skills_errorf(cat, file, "cannot stat SKILL.md", errno);
		goto out;
	}
	if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
		skills_errorf(cat, file,
		              S_ISLNK(st.st_mode) ? "SKILL.md is a symlink, not followed"
		                                  : "SKILL.md is not a regular file",
		              0);
		goto out;
	}
	fd = openat(sfd, "SKILL.md", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		skills_errorf(cat, file, "cannot open SKILL.md", errno);
	else
		skills_load(cat, fd, file);
out:
	if (fd != -1)
		close(fd);
	if (sfd != -1)
		close(sfd);
	free(file);
	free(sub);
}

static int
skills_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in an open dir, sorted, without dot entries; caller frees each and the array. */
static char **
skills_list_dir(int dfd, size_t *n)
{
	struct dirent *de;
	char **names = NULL;
	DIR *d;
	int fd;

	*n = 0;
	if ((fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0)) == -1)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xreallocarray(names, *n + 1, sizeof *names);
		names[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (*n > 0)
		qsort(names, *n, sizeof *names, skills_strcmp_p);
	return names;
}

static int
skills_utf8_name(const char *name)
{
	size_t bad;

	return skill_utf8_valid((const unsigned char *)name, strlen(name), &bad);
}

/* A folder name that is not UTF-8 cannot be named in JSON: report it with '?'s. */
static void
skills_bad_name(struct skills_catalog *cat, const char *dir, const char *name)
{
	char *clean = xstrdup(name), *path;
	size_t i;

	for (i = 0; clean[i] != '\0'; i++)
		if ((unsigned char)clean[i] >= 0x80)
			clean[i] = '?';
	path = path_join(dir, clean);
	skills_errorf(cat, path, "name is not valid UTF-8, skipped", 0);
	free(path);
	free(clean);
}

static void
skills_scan_dir(struct skills_catalog *cat, const char *dir)
{
	char **names;
	size_t n, i;
	int dfd;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		skills_errorf(cat, dir, "cannot open skills dir", errno);
		return;
	}
	names = skills_list_dir(dfd, &n);
	for (i = 0; i < n; i++) {
		if (skills_utf8_name(names[i]))
			skills_scan_entry(cat, dfd, dir, names[i]);
		else
			skills_bad_name(cat, dir, names[i]);
		free(names[i]);
	}
	free(names);
	close(dfd);
}

static int
skills_cmp(const void *a, const void *b)
{
	return strcmp(((const struct skill *)a)->name, ((const struct skill *)b)->name);
}

size_t
skills_scan(struct skills_catalog *cat, const char *const *dirs, size_t ndirs)
{
	size_t i, before = cat->nerrors;

	for (i = 0; i < ndirs; i++)
		skills_scan_dir(cat, dirs[i]);
	if (cat->nskills > 1)
		qsort(cat->skills, cat->nskills, sizeof *cat->skills, skills_cmp);
	return cat->nerrors - before;
}

const struct skill *
skills_find(const struct skills_catalog *cat, const char *name)
{
	return skills_find_in(cat->skills, cat->nskills, name);
}

static int
skills_matches(const struct skill *sk, const char *q)
{
	return strcasestr(sk->name, q) != NULL || strcasestr(sk->description, q) != NULL ||
	       strcasestr(sk->body, q) != NULL;
}

size_t
skills_search(const struct skills_catalog *cat, const char *query, const struct skill ***out)
{
	size_t i, n = 0;

	*out = xcalloc(cat->nskills + 1, sizeof **out);
	for (i = 0; i < cat->nskills; i++)
		if (query == NULL || *query == '\0' || skills_matches(&cat->skills[i], query))
			(*out)[n++] = &cat->skills[i];
	return n;
}

json_t *
skills_catalog_to_json(const struct skills_catalog *cat, const char *query, int with_body)
{
	json_t *items = json_array(), *errors = json_array();
	const struct skill **found;
	size_t i, n;

	n = skills_search(cat, query, &found);
	for (i = 0; i < n; i++)
		json_array_append_new(items, skill_to_json(found[i], with_body));
	free(found);
	for (i = 0; i < cat->nerrors; i++)
		json_array_append_new(errors, json_pack("{s:s, s:s}", "path", cat->errors[i].path,
		                                        "message", cat->errors[i].message));
	return json_pack("{s:o, s:o}", "items", items, "errors", errors);
}
