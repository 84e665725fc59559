/*
 * session.c -- append-only session logs.  See session.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/session.h"

int
session_id_valid(const char *id)
{
	size_t n = 0;

	if (id == NULL || *id == '\0' || *id == '.')
		return 0;
	for (; *id != '\0'; id++, n++) {
		if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z') ||
		      (*id >= '0' && *id <= '9') || *id == '_' || *id == '.' || *id == '-'))
			return 0;
	}
	return n <= SESSION_ID_MAX;
}

int
session_open(struct session_log *s, const char *id, const char *suffix, char **cause)
{
	struct stat sb;
	char *name;

	memset(s, 0, sizeof *s);
	s->fd = -1;
	if (!session_id_valid(id)) {
		xasprintf(cause, "invalid session id");
		return -1;
	}
	xasprintf(&name, "%s%s", id, suffix);
	s->path = path_join(D.cfg.sessions_dir, name);
	free(name);
	s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->fd == -1 || fstat(s->fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		xasprintf(cause, "session file %s: %s", s->path,
		          s->fd == -1 ? strerror(errno) : "not a regular file");
		session_close(s);
		return -1;
	}
	s->bytes = sb.st_size;
	return 0;
}

void
session_close(struct session_log *s)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	free(s->path);
	s->path = NULL;
}

int
session_count_lines(struct session_log *s, char **cause)
{
	char buf[65536];
	const char *p, *end;
	off_t off = 0;
	ssize_t n;
	int fd;

	s->lines = 0;
	if (s->bytes == 0)
		return 0;
	if ((fd = open(s->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		goto fail;
	while (off < s->bytes && (n = pread(fd, buf, sizeof buf, off)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			close(fd);
			goto fail;
		}
		for (p = buf, end = buf + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
			s->lines++;
		off += n;
	}
	close(fd);
	return 0;
fail:
	xasprintf(cause, "session file %s: %s", s->path, strerror(errno));
	return -1;
}

int
session_append(struct session_log *s, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(s->fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		s->bytes += w;
	}
	return 0;
}

int
session_rotate_if(struct session_log *s, off_t cap)
{
	char *old;
	int fd;

	if (s->bytes < cap)
		return 0;
	xasprintf(&old, "%s.1", s->path);
	if (rename(s->path, old) == -1) {
		free(old);
		return -1;
	}
	free(old);
	fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_TRUNC, 0600);
	if (fd == -1)
		return -1;
	close(s->fd);
	s->fd = fd;
	s->bytes = 0;
	return 0;
}

/* A JSON string of n bytes; invalid UTF-8 bytes become U+FFFD. */
static json_t *
string_lossy(const char *p, size_t n)
{
	json_t *s = json_stringn(p, n);
	char *fixed;
	size_t i, o = 0;

	if (s != NULL)
		return s;
	fixed = xmalloc(n * 3 + 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x80 && c != 0)
			fixed[o++] = (char)c;
		else {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
		}
	}
	s = json_stringn(fixed, o);
	free(fixed);
	return s != NULL ? s : json_string("");
}

json_t *
session_read(const char *id, const char *suffix, long long since, long long limit, size_t max_bytes,
             char **cause)
{
	char *name, *path, *line = NULL;
	size_t cap = 0, total = 0;
	long long idx = 0;
	ssize_t n;
	json_t *lines;
	FILE *fp;
	int fd;

	if (!session_id_valid(id)) {
		xasprintf(cause, "invalid session id");
		return NULL;
	}
	xasprintf(&name, "%s%s", id, suffix);
	path = path_join(D.cfg.sessions_dir, name);
	free(name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(path);
	if (fd == -1 || (fp = fdopen(fd, "r")) == NULL) {
		xasprintf(cause, "no session log for %s", id);
		if (fd != -1)
			close(fd);
		return NULL;
	}
	lines = json_array();
	while ((n = getline(&line, &cap, fp)) > 0) {
		if (idx++ < since)
			continue;
		if ((long long)json_array_size(lines) >= limit || total + (size_t)n > max_bytes) {
			idx--;
			break;
		}
		if (line[n - 1] == '\n')
			n--;
		total += (size_t)n;
		json_array_append_new(lines, string_lossy(line, (size_t)n));
	}
	free(line);
	fclose(fp);
	if (idx < since)
		idx = since;
	return json_pack("{s:o, s:I}", "lines", lines, "next", (json_int_t)idx);
}
