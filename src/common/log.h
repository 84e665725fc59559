/*
 * log.h -- the three error tiers (OpenBSD/tmux style).
 *
 * fatal/fatalx: start-up failures and impossible states; they exit.
 * log_warn/log_warnx: recoverable errors; the caller returns -1.
 * log_info/log_debug: what an operator wants to follow.
 * The *x variants do not append strerror(errno).
 *
 * Never pass a secret value to any of these.
 */
#ifndef COLIBRI_LOG_H
#define COLIBRI_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Open the log: path NULL means stderr.  Returns -1 if the file cannot be opened. */
int log_init(const char *progname, enum log_level level, const char *path);
/* Reopen the log file (SIGHUP); a no-op for stderr. */
int log_reopen(void);
void log_close(void);
int log_parse_level(const char *s, enum log_level *out);
enum log_level log_get_level(void);

void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
