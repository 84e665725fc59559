/*
 * log.c -- timestamped log lines to stderr or to a file that SIGHUP reopens.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_prog = "colibri";
static enum log_level log_level = LOG_LEVEL_INFO;
static char *log_path;
static FILE *log_fp;

int
log_init(const char *progname, enum log_level level, const char *path)
{
	log_prog = progname;
	log_level = level;
	free(log_path);
	log_path = path != NULL ? strdup(path) : NULL;
	return log_reopen();
}

int
log_reopen(void)
{
	FILE *fp;
	int fd;

	if (log_path == NULL) {
		log_fp = NULL;
		return 0;
	}
	/* A log made here is 0600: an existing one keeps the mode its operator gave it. */
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if ((fp = fdopen(fd, "a")) == NULL) {
		close(fd);
		return -1;
	}
	setvbuf(fp, NULL, _IOLBF, 0);
	if (log_fp != NULL)
		fclose(log_fp);
	log_fp = fp;
	return 0;
}

void
log_close(void)
{
	if (log_fp != NULL)
		fclose(log_fp);
	log_fp = NULL;
	free(log_path);
	log_path = NULL;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	int i;

	for (i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

static void __attribute__((format(printf, 2, 0)))
log_vwrite(enum log_level level, const char *fmt, va_list ap, int with_errno)
{
	static const char *tags[] = {"error", "warn", "info", "debug"};
	int saved = errno;
	FILE *fp = log_fp != NULL ? log_fp : stderr;
	struct timeval tv;
	struct tm tm;
	char ts[32], msg[2048];

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (with_errno)
		fprintf(fp, "%s.%03ldZ %s[%ld] %s: %s: %s\n", ts, (long)tv.tv_usec / 1000, log_prog,
		        (long)getpid(), tags[level], msg, strerror(saved));
	else
		fprintf(fp, "%s.%03ldZ %s[%ld] %s: %s\n", ts, (long)tv.tv_usec / 1000, log_prog,
		        (long)getpid(), tags[level], msg);
	fflush(fp);
	errno = saved;
}

#define LOG_FN(name, level, with_errno)                                                            \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vwrite(level, fmt, ap, with_errno);                                            \
		va_end(ap);                                                                        \
	}

LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, 1);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}
