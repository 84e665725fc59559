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
jail_unpriv_user_check(const char *user)
{
	const char *err;

	if ((err = jail_user_check(user)) != NULL)
		return err;
	if (strcmp(user, "root") == 0 || strcmp(user, "toor") == 0)
		return "must not be root (the helper never runs a jailed command as uid 0)";
	if (strspn(user, "0123456789") == strlen(user))
		return "must be a name, not a uid";
	return NULL;
}

long
jail_passwd_uid(const char *line, const char *user)
{
	size_t n = strlen(user);
	const char *p;
	long uid = 0;

	if (strncmp(line, user, n) != 0 || line[n] != ':')
		return -1;
	if ((p = strchr(line + n + 1, ':')) == NULL || p[1] < '0' || p[1] > '9')
		return -1;
	for (p++; *p >= '0' && *p <= '9'; p++) {
		if (uid > 99999999)
			return -1;
		uid = uid * 10 + (*p - '0');
	}
	return *p == ':' ? uid : -1;
}

const char *
jail_launch_check(const char *prefix, char *const *cmd, int n)
{
	size_t plen = strlen(prefix);
	const char *id, *rest;
	char buf[STAGE_ID_MAX + 1];
	size_t idlen;

	if (n != 2 || strcmp(cmd[0], "/bin/sh") != 0)
		return "must be exactly /bin/sh STAGE/launch.sh";
	if (strncmp(cmd[1], prefix, plen) != 0 || cmd[1][plen] != '/')
		return "must run a launch.sh under the stage prefix";
	id = cmd[1] + plen + 1;
	if ((rest = strchr(id, '/')) == NULL || strcmp(rest, "/launch.sh") != 0)
		return "must run STAGE/<id>/launch.sh";
	if ((idlen = (size_t)(rest - id)) > STAGE_ID_MAX)
		return "has a stage id that is too long";
	memcpy(buf, id, idlen);
	buf[idlen] = '\0';
	if (stage_id_check(buf) != NULL)
		return "has an invalid stage id";
	return NULL;
}

const char *
jail_ip4_check(const char *ip4)
{
	struct in_addr a;

	if (ip4 == NULL || *ip4 == '\0')
		return "must not be empty";
	if (strcmp(ip4, "inherit") == 0 || strcmp(ip4, "disable") == 0 || strcmp(ip4, "none") == 0)
		return NULL;
	if (inet_pton(AF_INET, ip4, &a) != 1)
		return "must be a dotted IPv4 address, \"inherit\", \"disable\" or \"none\"";
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
