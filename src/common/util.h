/*
 * util.h -- small helpers shared by every program: time, paths, fds.
 */
#ifndef COLIBRI_UTIL_H
#define COLIBRI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Milliseconds since the epoch (wall clock) and since boot (monotonic). */
int64_t now_ms(void);
int64_t mono_ms(void);
/*
 * A test facility (colibri-daemon's COLIBRI_TEST_CLOCK_OFFSET_FILE): from
 * now on now_ms() adds the integer in the file at path (milliseconds, a
 * whole line, re-read at every call; the file stays open, so rewrite it in
 * place).  path NULL or empty: nothing (0); 1 when on; -1 (errno) when the
 * file cannot be opened, or EPERM when it is not a regular file of the
 * caller's euid that group and others cannot write.  Monotonic time (mono_ms, timers) is untouched.
 */
int now_ms_test_init(const char *path);
/* Create a directory and its parents; existing directories are fine. */
int mkdir_p(const char *path, mode_t mode);
/* Join two path parts with exactly one slash; caller frees. */
char *path_join(const char *a, const char *b);
/* Strip trailing slashes (but keep a lone "/"); returns a new string. */
char *path_normalize_trailing(const char *p);
int set_cloexec(int fd);
int set_nonblock(int fd);
/*
 * Make s valid UTF-8 in place: every byte of an invalid or overlong
 * sequence becomes '?', and an incomplete sequence at the end (a cut
 * string) is dropped.  Returns s.
 */
char *utf8_scrub(char *s);
/*
 * Where to cut s (len bytes) to keep at most max bytes without splitting a
 * UTF-8 sequence: len when it fits; otherwise max, moved back to the start of
 * a sequence that would not end within it.  Also drops an incomplete
 * sequence at the end of s itself (a buffer cut by someone else), so
 * utf8_cut_len(s, n, n) trims one.  Bytes that are not UTF-8 are kept.
 */
size_t utf8_cut_len(const char *s, size_t len, size_t max);
/* Four hex digits at p (p + 4 <= end) into *out: 0, or -1 if there are fewer or one is not hex. */
int hex4_decode(const char *p, const char *end, unsigned *out);
/* Code point cp (at most U+10FFFF) as UTF-8 into out (4 bytes room); returns the byte count. */
size_t utf8_encode(unsigned cp, char *out);
/*
 * Find an executable: name itself when it holds a '/', else the first
 * PATH directory (absolute entries only) that has it, else the directory
 * of the running program or, for a build tree, its ../tools and ../bin.
 * Returns a new string, or NULL.
 */
char *path_search(const char *name);
/* A valid shell identifier: [A-Za-z_][A-Za-z0-9_]* */
int is_shell_identifier(const char *s);

#endif
