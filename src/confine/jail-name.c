/*
 * jail-name.c -- validators for jail names, users, addresses, ids and paths.
 *
 * These run on the daemon side when a spawn request is parsed and again in
 * the setuid helper before anything is executed as root, so they depend on
 * libc only and return static strings instead of allocating.
 */
#include "confine/jail-name.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static int
name_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static const char *
token_check(const char *s, size_t max)
{
	size_t i, len;

	if (s == NULL || *s == '\0')
		return "must not be empty";
	len = strlen(s);
	if (len > max)
		return "is too long";
	for (i = 0; i < len; i++) {
		if (!name_char_ok((unsigned char)s[i]))
			return "may contain only letters, digits, '_', '.' and '-'";
	}
	if (strstr(s, "..") != NULL)
		return "must not contain \"..\"";
	if (s[0] == '-')
		return "must not start with '-'";
	return NULL;
}

const char *
jail_name_check(const char *name)
{
	const char *err;

	if ((err = token_check(name, JAIL_NAME_MAX)) != NULL)
		return err;
	if (strspn(name, "0123456789") == strlen(name))
		return "must not be all digits (jexec would read a jail id)";
	return NULL;
}

const char *
jail_user_check(const char *user)
{
	const char *err;

	if ((err = token_check(user, JAIL_USER_MAX)) != NULL)
		return err;
	if (user[0] == '.')
		return "must not start with '.'";
	return NULL;
}

const char *
jail_ip4_check(const char *ip4)
{
	struct in_addr a;

	if (ip4 == NULL || *ip4 == '\0')
		return "must not be empty";
	if (strcmp(ip4, "inherit") == 0 || strcmp(ip4, "disable") == 0)
		return NULL;
	if (inet_pton(AF_INET, ip4, &a) != 1)
		return "must be a dotted IPv4 address, \"inherit\" or \"disable\"";
	return NULL;
}

const char *
stage_id_check(const char *id)
{
	const char *err;

	if ((err = token_check(id, STAGE_ID_MAX)) != NULL)
		return err;
	if (strcmp(id, ".") == 0)
		return "must not be \".\"";
	return NULL;
}

static int
is_dot_component(const char *p, size_t n)
{
	return (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.');
}

const char *
jail_path_check(const char *path)
{
	const char *p, *end;

	if (path == NULL || *path == '\0')
		return "must not be empty";
	if (path[0] != '/')
		return "must be an absolute path";
	if (strlen(path) >= PATH_MAX)
		return "is too long";
	for (p = path; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "must not contain control characters";
	}
	for (p = path; *p != '\0'; p = end) {
		while (*p == '/')
			p++;
		end = p + strcspn(p, "/");
		if (is_dot_component(p, (size_t)(end - p)))
			return "must not contain \".\" or \"..\" components";
	}
	return NULL;
}

void
jail_ephemeral_name(const char *path, char *out, size_t outlen)
{
	const char *last = path, *p;
	size_t n = 0, i, used;

	for (p = path; *p != '\0'; p++) {
		if (*p == '/' && p[1] != '/' && p[1] != '\0')
			last = p + 1;
	}
	if (*last != '/')
		n = strcspn(last, "/");
	if (n > 48)
		n = 48;
	used = (size_t)snprintf(out, outlen, "colibri-%s", n == 0 ? "root" : "");
	for (i = 0; i < n && used + 1 < outlen; i++) {
		unsigned char c = (unsigned char)last[i];
		out[used++] = (c == '.' || !name_char_ok(c)) ? '_' : (char)c;
	}
	if (used < outlen)
		out[used] = '\0';
}
