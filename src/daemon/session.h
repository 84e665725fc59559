/*
 * session.h -- append-only session logs under STATE/sessions/.
 *
 * An agent's stdout lines go, verbatim and in order, to
 * sessions/<session_id>.jsonl; its stderr to sessions/<session_id>.stderr,
 * rotated to .stderr.1 past a size cap.  Session ids are restricted to
 * [A-Za-z0-9_.-] (1-128 chars, not starting with '.') so a session file can
 * never escape the sessions directory; files are opened with O_NOFOLLOW.
 */
#ifndef COLIBRI_SESSION_H
#define COLIBRI_SESSION_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#define SESSION_ID_MAX 128

struct session_log {
	int fd;
	off_t bytes;
	long long lines; /* newlines in the file, once session_count_lines has counted them */
	char *path;
};

int session_id_valid(const char *id);
/* Open (append) sessions/<id><suffix>.  -1 with *cause. */
int session_open(struct session_log *, const char *id, const char *suffix, char **cause);
void session_close(struct session_log *);
/*
 * Count the newlines already in an open log into s->lines (a log appended
 * to again: a restart on the same session).  The next line appended is line
 * s->lines + 1 as session-read numbers them (its `since` is that minus 1).
 * 0, or -1 with *cause.
 */
int session_count_lines(struct session_log *s, char **cause);
/* Append bytes; -1 on write error (errno set). */
int session_append(struct session_log *, const char *p, size_t n);
/* Rotate when past cap: rename to <path>.1 and reopen.  */
int session_rotate_if(struct session_log *, off_t cap);
/*
 * Read lines [since, since+limit) of sessions/<id><suffix> (.jsonl or .stderr), up to max_bytes
 * in total.  Returns {"lines": [...], "next": N} or NULL with *cause.
 */
json_t *session_read(const char *id, const char *suffix, long long since, long long limit,
                     size_t max_bytes, char **cause);

#endif
