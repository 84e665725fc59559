/*
 * tree.c -- the pure half of tree.h: reading /proc/self/cgroup and
 * /proc/self/mountinfo text, and naming groups.  No I/O here, so the unit
 * test can feed it the layouts of real hosts (hybrid systemd, pure v2,
 * a container).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "job/tree.h"

char *
tree_parse_cgroup(const char *text)
{
	const char *p = text, *nl;

	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		if (strncmp(p, "0::", 3) == 0) {
			size_t n = nl != NULL ? (size_t)(nl - p - 3) : strlen(p + 3);
			if (n == 0 || p[3] != '/')
				return NULL;
			return xstrndup(p + 3, n);
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
	return NULL;
}

/* Decode mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
static char *
tree_unescape(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
			              (s[i + 3] - '0'));
			i += 3;
		} else
			*o++ = s[i];
	}
	*o = '\0';
	return out;
}

/* The n-th (0-based) space-separated field of line [p, end), or NULL. */
static const char *
tree_field(const char *p, const char *end, int n, size_t *len)
{
	const char *q;

	while (n-- > 0) {
		if ((q = memchr(p, ' ', (size_t)(end - p))) == NULL)
			return NULL;
		p = q + 1;
	}
	q = memchr(p, ' ', (size_t)(end - p));
	*len = q != NULL ? (size_t)(q - p) : (size_t)(end - p);
	return p;
}

char *
tree_parse_mountinfo(const char *text)
{
	const char *p = text, *end, *mnt, *sep, *fs;
	size_t mlen, flen;

	for (; p != NULL && *p != '\0'; p = *end == '\n' ? end + 1 : NULL) {
		end = strchr(p, '\n');
		if (end == NULL)
			end = p + strlen(p);
		/* id parent major:minor root mount-point options [optional...] - fstype source
		 * super */
		if ((mnt = tree_field(p, end, 4, &mlen)) == NULL)
			continue;
		if ((sep = strstr(mnt, " - ")) == NULL || sep >= end)
			continue;
		if ((fs = tree_field(sep + 3, end, 0, &flen)) == NULL)
			continue;
		if (flen == 7 && memcmp(fs, "cgroup2", 7) == 0)
			return tree_unescape(mnt, mlen);
	}
	return NULL;
}

void
tree_key_name(const char *key, char *out, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	const char *p;

	for (p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	snprintf(out, len, "colibri-%016llx", (unsigned long long)h);
}

int
tree_name_valid(const char *name)
{
	const char *p;

	if (name == NULL || *name == '\0' || *name == '.' || strlen(name) >= TREE_NAME_MAX)
		return 0;
	for (p = name; *p != '\0'; p++)
		if (*p == '/' || (unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f)
			return 0;
	/* cgroup's own files live beside the groups: never shadow one. */
	return strncmp(name, "cgroup.", 7) != 0;
}
