/*
 * util.c -- time, paths and descriptor flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>

#include "util.h"
#include "xmalloc.h"

/*
 * The test clock (now_ms_test_init): the offset file kept open, or -1.
 * Off, it costs now_ms one predictable branch; on (tests only), one
 * pread of a few bytes per call.
 */
static int test_clock_fd = -1;
static int64_t test_clock_offset;

static int64_t
test_clock_read(void)
{
	char b[32], *end;
	ssize_t n = pread(test_clock_fd, b, sizeof b - 1, 0);
	long long v;

	/* Only a whole line counts: a file caught mid-rewrite keeps the last offset. */
	if (n >= 2 && b[n - 1] == '\n') {
		b[n - 1] = '\0';
		v = strtoll(b, &end, 10);
		if (*end == '\0' && end != b)
			test_clock_offset = v;
	}
	return test_clock_offset;
}

int
now_ms_test_init(const char *path)
{
	if (path == NULL || *path == '\0')
		return 0;
	struct stat sb;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	/* Whoever may write it moves the clock (leases, retention): the daemon's own, only. */
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 022) != 0) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	test_clock_fd = fd;
	test_clock_read();
	return 1;
}

int64_t
now_ms(void)
{
	struct timespec ts;
	int64_t ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (__builtin_expect(test_clock_fd >= 0, 0))
		ms += test_clock_read();
	return ms;
}

int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) == -1 && errno != EEXIST) {
			rc = -1;
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, mode) == -1 && errno != EEXIST)
		rc = -1;
out:
	free(p);
	return rc;
}

char *
path_join(const char *a, const char *b)
{
	char *r;
	size_t la = strlen(a);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	xasprintf(&r, "%.*s/%s", (int)la, a, b);
	return r;
}

char *
path_normalize_trailing(const char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		n--;
	return xstrndup(p, n);
}

int
set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl == -1 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
is_shell_identifier(const char *s)
{
	if (s == NULL || *s == '\0' ||
	    !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	for (s++; *s != '\0'; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	}
	return 1;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned int cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

size_t
utf8_cut_len(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k, need;

	if (max > len)
		max = len;
	for (k = max; k > 0 && max - k < 4 && (p[k - 1] & 0xc0) == 0x80; k--)
		;
	if (k == 0 || p[k - 1] < 0xc2 || p[k - 1] > 0xf4)
		return max; /* ends in ASCII, or in bytes that lead no UTF-8 sequence */
	need = p[k - 1] >= 0xf0 ? 4 : p[k - 1] >= 0xe0 ? 3 : 2;
	return max - (k - 1) >= need ? max : k - 1;
}

char *
utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s), i = 0, k;

	while (i < n) {
		if ((k = utf8_seq(p + i, n - i)) > 0) {
			i += k;
			continue;
		}
		/* A lead byte whose sequence runs past the end: the string was cut. */
		if (p[i] >= 0xc2 && p[i] <= 0xf4) {
			size_t want = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : 2, j;
			int cut = n - i < want;
			for (j = i + 1; cut && j < n; j++)
				cut = (p[j] & 0xc0) == 0x80;
			if (cut) {
				p[i] = '\0';
				break;
			}
		}
		p[i++] = '?';
	}
	return s;
}

static char *
path_try(const char *dir, const char *name)
{
	char *cand = path_join(dir, name);

	if (access(cand, X_OK) == 0)
		return cand;
	free(cand);
	return NULL;
}

char *
path_search(const char *name)
{
	static const char *beside[] = {".", "../tools", "../bin"};
	const char *path = getenv("PATH");
	char *dirs, *d, *save = NULL, *found = NULL, self[PATH_MAX], *slash, *dir;
	ssize_t n;
	size_t i;

	if (strchr(name, '/') != NULL)
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	dirs = xstrdup(path != NULL ? path : "/usr/local/bin:/usr/bin:/bin");
	for (d = strtok_r(dirs, ":", &save); d != NULL && found == NULL;
	     d = strtok_r(NULL, ":", &save))
		if (d[0] == '/')
			found = path_try(d, name);
	free(dirs);
	if (found != NULL || (n = readlink("/proc/self/exe", self, sizeof self - 1)) <= 0)
		return found;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return NULL;
	*slash = '\0';
	for (i = 0; i < sizeof beside / sizeof *beside && found == NULL; i++) {
		dir = path_join(self, beside[i]);
		found = path_try(dir, name);
		free(dir);
	}
	return found;
}

int
hex4_decode(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char ch = p[i];
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

size_t
utf8_encode(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}
