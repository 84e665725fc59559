/*
 * vault.c -- provider env, bw output, containment and the .env writer.
 * See vault.h.  Everything that holds a secret is wiped before it is freed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "vault/vault.h"

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
vault_creds_clear(struct vault_creds *c)
{
	wipe_free(c->server);
	wipe_free(c->client_id);
	wipe_free(c->client_secret);
	wipe_free(c->password);
	memset(c, 0, sizeof *c);
}

int
vault_creds_complete(const struct vault_creds *c, const char **missing)
{
	*missing = c->server == NULL          ? "BW_SERVER"
	           : c->client_id == NULL     ? "BW_CLIENTID"
	           : c->client_secret == NULL ? "BW_CLIENTSECRET"
	           : c->password == NULL      ? "BW_PASSWORD"
	                                      : NULL;
	return *missing == NULL;
}

static char **
creds_slot(struct vault_creds *c, const char *key, size_t klen)
{
	static const struct {
		const char *name;
		size_t off;
	} keys[] = {
	        {"BW_SERVER", offsetof(struct vault_creds, server)},
	        {"BW_CLIENTID", offsetof(struct vault_creds, client_id)},
	        {"BW_CLIENTSECRET", offsetof(struct vault_creds, client_secret)},
	        {"BW_PASSWORD", offsetof(struct vault_creds, password)},
	};
	size_t i;

	for (i = 0; i < sizeof keys / sizeof *keys; i++)
		if (strlen(keys[i].name) == klen && memcmp(keys[i].name, key, klen) == 0)
			return (char **)((char *)c + keys[i].off);
	return NULL;
}

int
vault_parse_provider_env(const char *text, size_t len, struct vault_creds *c, char **cause)
{
	const char *p = text, *end = text + len, *eol, *le, *eq, *k, *v, *ve;
	char **slot, *key;
	int line = 0, ok;

	while (p < end) {
		line++;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		le = eol; /* a CRLF line ends before its CR */
		if (le > p && le[-1] == '\r')
			le--;
		while (p < le && (*p == ' ' || *p == '\t'))
			p++;
		if (p == le || *p == '#') {
			p = eol + 1;
			continue;
		}
		if ((size_t)(le - p) > 7 && memcmp(p, "export ", 7) == 0)
			p += 7;
		if ((eq = memchr(p, '=', (size_t)(le - p))) == NULL) {
			xasprintf(cause, "provider env line %d: expected NAME=value", line);
			return -1;
		}
		k = p;
		key = xstrndup(k, (size_t)(eq - k));
		ok = is_shell_identifier(key) && strlen(key) == (size_t)(eq - k);
		free(key);
		if (!ok) {
			xasprintf(cause,
			          "provider env line %d: the name before '=' is not a valid "
			          "variable name",
			          line);
			return -1;
		}
		v = eq + 1;
		ve = le;
		if (ve - v >= 2 && (*v == '\'' || *v == '"') && ve[-1] == *v) {
			v++;
			ve--;
		}
		if (memchr(v, '\0', (size_t)(ve - v)) != NULL) {
			xasprintf(cause, "provider env line %d: NUL byte in value", line);
			return -1;
		}
		if ((slot = creds_slot(c, k, (size_t)(eq - k))) != NULL) {
			wipe_free(*slot);
			*slot = xstrndup(v, (size_t)(ve - v));
		}
		p = eol + 1;
	}
	return 0;
}

int
vault_check_provider_env_mode(const char *path, char **cause)
{
	struct stat sb;

	if (lstat(path, &sb) == -1)
		return errno == ENOENT ? 0
		                       : (xasprintf(cause, "%s: %s", path, strerror(errno)), -1);
	if (!S_ISREG(sb.st_mode)) {
		xasprintf(cause, "provider env %s is not a regular file", path);
		return -1;
	}
	if ((sb.st_mode & 077) != 0) {
		xasprintf(cause,
		          "provider env %s has mode %04o: it holds secrets and must not be "
		          "readable by group or others (chmod 600)",
		          path, (unsigned)(sb.st_mode & 07777));
		return -1;
	}
	if (sb.st_uid != geteuid() && sb.st_uid != 0) {
		xasprintf(cause, "provider env %s belongs to uid %ld", path, (long)sb.st_uid);
		return -1;
	}
	return 0;
}

int
vault_load_creds(const char *path, struct vault_creds *c, char **cause)
{
	static const char *names[] = {"BW_SERVER", "BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD"};
	char buf[65536];
	ssize_t n;
	size_t i;
	int fd;

	memset(c, 0, sizeof *c);
	if (path != NULL && vault_check_provider_env_mode(path, cause) == -1)
		return -1;
	if (path != NULL && (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) != -1) {
		n = read(fd, buf, sizeof buf);
		close(fd);
		if (n < 0 || n == (ssize_t)sizeof buf) {
			explicit_bzero(buf, sizeof buf);
			xasprintf(cause, "provider env %s: unreadable or too large", path);
			return -1;
		}
		if (vault_parse_provider_env(buf, (size_t)n, c, cause) == -1) {
			explicit_bzero(buf, sizeof buf);
			vault_creds_clear(c);
			return -1;
		}
		explicit_bzero(buf, sizeof buf);
	}
	for (i = 0; i < sizeof names / sizeof *names; i++) {
		char **slot = creds_slot(c, names[i], strlen(names[i]));
		const char *v = getenv(names[i]);
		if (*slot == NULL && v != NULL && *v != '\0')
			*slot = xstrdup(v);
	}
	return 0;
}

int
vault_parse_status(const char *out, size_t len, char **server, char **status, char **cause)
{
	json_t *j = json_loadb(out, len, 0, NULL), *s;

	*server = *status = NULL;
	if (!json_is_object(j) || !json_is_string(s = json_object_get(j, "status"))) {
		json_decref(j);
		xasprintf(cause, "bw status: unexpected output");
		return -1;
	}
	*status = xstrdup(json_string_value(s));
	if (json_is_string(s = json_object_get(j, "serverUrl")))
		*server = xstrdup(json_string_value(s));
	json_decref(j);
	return 0;
}

/* Length without trailing slashes. */
static size_t
url_len(const char *u)
{
	size_t n = strlen(u);

	while (n > 0 && u[n - 1] == '/')
		n--;
	return n;
}

int
vault_server_matches(const char *a, const char *b)
{
	size_t la, lb, i, host_end;
	const char *s;

	if (a == NULL || b == NULL)
		return 0;
	la = url_len(a);
	lb = url_len(b);
	if (la != lb || la == 0)
		return 0;
	/* scheme://host is case-insensitive; the path is not. */
	s = strstr(a, "://");
	host_end = s != NULL ? (size_t)(s - a) + 3 : 0;
	while (host_end < la && a[host_end] != '/')
		host_end++;
	for (i = 0; i < la; i++) {
		if (i < host_end ? tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])
		                 : a[i] != b[i])
			return 0;
	}
	return 1;
}

int
vault_find_collection(const char *out, size_t len, const char *name, char **id, char **cause)
{
	json_t *j = json_loadb(out, len, 0, NULL), *c;
	size_t i, found = 0;

	*id = NULL;
	if (!json_is_array(j)) {
		json_decref(j);
		xasprintf(cause, "bw list collections: unexpected output");
		return -1;
	}
	json_array_foreach(j, i, c)
	{
		const char *n = json_string_value(json_object_get(c, "name"));
		const char *cid = json_string_value(json_object_get(c, "id"));
		if (n == NULL || cid == NULL || strcmp(n, name) != 0)
			continue;
		if (found++ == 0)
			*id = xstrdup(cid);
	}
	json_decref(j);
	if (found == 1)
		return 0;
	free(*id);
	*id = NULL;
	if (found == 0)
		xasprintf(cause, "no collection named %s is visible to the bootstrap account",
		          name);
	else
		xasprintf(cause, "%zu collections are named %s; the name must be unique", found,
		          name);
	return -1;
}

json_t *
vault_items_to_vars(const char *out, size_t len, char **cause)
{
	/* NUL is allowed while parsing so that it can be refused by name below. */
	json_t *j = json_loadb(out, len, JSON_ALLOW_NUL, NULL), *it, *vars, *pw, *nm;
	size_t i;

	if (!json_is_array(j)) {
		json_decref(j);
		xasprintf(cause, "bw list items: unexpected output");
		return NULL;
	}
	if (json_array_size(j) == 0) {
		json_decref(j);
		xasprintf(cause, "the collection is empty");
		return NULL;
	}
	vars = json_object();
	json_array_foreach(j, i, it)
	{
		const char *name = json_string_value(nm = json_object_get(it, "name"));
		if (name == NULL || !is_shell_identifier(name) || strlen(name) > 128 ||
		    strlen(name) != json_string_length(nm)) {
			xasprintf(cause, "item %zu: name \"%.64s\" is not a valid variable name", i,
			          name != NULL ? name : "(none)");
			goto fail;
		}
		if (json_object_get(vars, name) != NULL) {
			xasprintf(cause, "two items are named %s", name);
			goto fail;
		}
		pw = json_object_get(json_object_get(it, "login"), "password");
		if (!json_is_string(pw)) {
			xasprintf(cause,
			          "item %s has no login password (a login item with a password the "
			          "bootstrap account may view is needed)",
			          name);
			goto fail;
		}
		if (strlen(json_string_value(pw)) != json_string_length(pw)) {
			xasprintf(cause, "item %s: the password holds a NUL byte", name);
			goto fail;
		}
		json_object_set(vars, name, pw);
	}
	json_decref(j);
	return vars;
fail:
	json_decref(vars);
	json_decref(j);
	return NULL;
}

int
vault_root_canonical(const char *root, char **cause)
{
	char canon[PATH_MAX], *want;
	int rc = 0;

	if (realpath(root, canon) == NULL)
		return errno == ENOENT
		               ? 0
		               : (xasprintf(cause, "jail root %s: %s", root, strerror(errno)), -1);
	want = path_normalize_trailing(root);
	if (strcmp(canon, want) != 0) {
		xasprintf(cause,
		          "jail root %s resolves to %s: a tenant's root must be its own canonical "
		          "path (no symlink, no . or .. and no doubled slash)",
		          root, canon);
		rc = -1;
	}
	free(want);
	return rc;
}

char *
vault_contain(const char *root, const char *base, char **cause)
{
	char croot[PATH_MAX], cbase[PATH_MAX];
	size_t lb;

	if (root == NULL || root[0] != '/') {
		xasprintf(cause, "jail root must be an absolute path");
		return NULL;
	}
	if (realpath(base, cbase) == NULL) {
		xasprintf(cause, "jail root base %s: %s", base, strerror(errno));
		return NULL;
	}
	if (realpath(root, croot) == NULL) {
		xasprintf(cause, "jail root %s: %s", root, strerror(errno));
		return NULL;
	}
	lb = strlen(cbase);
	if (strcmp(cbase, "/") == 0)
		lb = 0;
	if (strncmp(croot, cbase, lb) != 0 || croot[lb] != '/' || croot[lb + 1] == '\0') {
		xasprintf(cause, "jail root %s resolves to %s, which is not strictly under %s",
		          root, croot, cbase);
		return NULL;
	}
	if (vault_root_canonical(root, cause) == -1)
		return NULL;
	return xstrdup(croot);
}

/* A value that needs no quoting in a .env file. */
static int
env_plain(const char *v)
{
	for (; *v != '\0'; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') || strchr("_./:@+,-%=", *v) != NULL))
			return 0;
	return 1;
}

char *
vault_render_env(json_t *vars, size_t *len)
{
	const char **names;
	struct buf b;
	size_t n = json_object_size(vars), i = 0, j;
	const char *k, *v;
	json_t *val;

	names = xcalloc(n + 1, sizeof *names);
	json_object_foreach(vars, k, val) names[i++] = k;
	for (i = 1; i < n; i++) /* insertion sort: a few dozen keys */
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	buf_init(&b);
	buf_adds(&b, "# Written by colibri-daemon from the tenant's vault collection. "
	             "Do not edit: it is replaced on the next provisioning.\n");
	for (i = 0; i < n; i++) {
		v = json_string_value(json_object_get(vars, names[i]));
		buf_adds(&b, names[i]);
		buf_addc(&b, '=');
		if (env_plain(v)) {
			buf_adds(&b, v);
		} else if (strchr(v, '\'') == NULL && strchr(v, '\n') == NULL) {
			buf_addc(&b, '\'');
			buf_adds(&b, v);
			buf_addc(&b, '\'');
		} else {
			/*
			 * Double quotes with \\ \" \$ and \` escaped.  A newline stays a
			 * literal newline: inside double quotes sh reads "\n" as a
			 * backslash and an n, not as a newline.
			 */
			buf_addc(&b, '"');
			for (; *v != '\0'; v++) {
				if (strchr("\\\"$`", *v) != NULL)
					buf_addc(&b, '\\');
				buf_addc(&b, *v);
			}
			buf_addc(&b, '"');
		}
		buf_addc(&b, '\n');
	}
	free(names);
	*len = b.len;
	buf_cstr(&b);
	return b.data;
}

/* Open the canonical directory path from "/" without following any symlink. */
static int
open_dir_nofollow(const char *path, char **cause)
{
	char *copy = xstrdup(path), *comp, *save = NULL;
	int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), next;

	for (comp = strtok_r(copy, "/", &save); comp != NULL && fd != -1;
	     comp = strtok_r(NULL, "/", &save)) {
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next == -1)
			xasprintf(cause, "%s: component %s: %s", path, comp,
			          errno == ELOOP || errno == ENOTDIR
			                  ? "a symlink or not a directory"
			                  : strerror(errno));
		close(fd);
		fd = next;
	}
	free(copy);
	return fd;
}

int
vault_write_env(const char *canon_root, const char *text, size_t len, char **cause)
{
	struct stat sb;
	char tmp[64];
	uint32_t r = 0;
	ssize_t w;
	size_t off = 0;
	int dfd, fd = -1, rc = -1;

	if ((dfd = open_dir_nofollow(canon_root, cause)) == -1)
		return -1;
	if (fstatat(dfd, ".env", &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode)) {
		xasprintf(cause, "%s/.env exists and is not a regular file (a symlink is refused)",
		          canon_root);
		goto out;
	}
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint32_t)getpid();
	snprintf(tmp, sizeof tmp, ".env.colibri-%08x", r);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		xasprintf(cause, "%s/%s: %s", canon_root, tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) == -1)
		goto werr;
	while (off < len) {
		if ((w = write(fd, text + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto werr;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto werr;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, ".env") == -1)
		goto werr;
	fsync(dfd);
	rc = 0;
	goto out;
werr:
	xasprintf(cause, "writing %s/.env: %s", canon_root, strerror(errno));
	if (fd != -1)
		close(fd);
	fd = -1;
	unlinkat(dfd, tmp, 0);
out:
	if (fd != -1)
		close(fd);
	close(dfd);
	return rc;
}

/* ---- reading a .env back ---- */

void
vault_vars_free(json_t *vars)
{
	const char *k;
	json_t *v;

	if (vars == NULL)
		return;
	/* jansson owns the value strings: wipe them before they go back. */
	json_object_foreach(vars, k, v)
	        explicit_bzero((char *)json_string_value(v), json_string_length(v));
	json_decref(vars);
}

/*
 * A byte an unquoted value may hold: none that the shell reads specially
 * (blanks, quotes, $, `, \, the operators, globs), no control byte.  A
 * leading ~ would be expanded; it is checked apart.
 */
static int
env_plain_byte(unsigned char c)
{
	return c >= 0x80 || (c > ' ' && c != 0x7f && strchr("\"'\\$`;&|<>()*?[", c) == NULL);
}

/*
 * One value from *pp on, into out (*olen bytes): '...' (no escapes),
 * "..." (\\ \" \$ \` escaped, backslash-newline removed, any other
 * backslash kept, an unescaped $ or ` refused: nothing is expanded), or a
 * plain word.  Newlines inside quotes are kept and counted in *line.
 * 0 with *pp past the value, or -1 with *why (static).
 */
static int
env_value(const char **pp, const char *end, size_t *line, char *out, size_t *olen, const char **why)
{
	const char *p = *pp;
	char q = p < end ? *p : '\0';
	size_t n = 0;

	if (q != '\'' && q != '"') {
		if (p < end && *p == '~') {
			*why = "must be quoted (a leading ~ is expanded by the shell)";
			return -1;
		}
		for (; p < end && *p != '\n' && *p != '\r' && *p != ' ' && *p != '\t'; p++) {
			if (!env_plain_byte((unsigned char)*p)) {
				*why = "must be quoted (it holds a byte the shell reads specially)";
				return -1;
			}
			out[n++] = *p;
		}
		*pp = p;
		*olen = n;
		return 0;
	}
	for (p++; p < end && *p != q; p++) {
		if (*p == '\n')
			(*line)++;
		if (q == '"' && (*p == '$' || *p == '`')) {
			*why = "holds an unescaped $ or ` in double quotes (nothing is expanded: "
			       "escape it or use single quotes)";
			return -1;
		}
		if (q == '"' && *p == '\\' && p + 1 < end && strchr("\\\"$`\n", p[1]) != NULL) {
			p++;
			if (*p == '\n') {
				(*line)++;
				continue;
			}
		}
		out[n++] = *p;
	}
	if (p == end) {
		*why = "opens a quote that is never closed";
		return -1;
	}
	*pp = p + 1;
	*olen = n;
	return 0;
}

/* After a value: blanks, then a # comment, then the end of the line.  0, or -1. */
static int
env_line_end(const char **pp, const char *end)
{
	const char *p = *pp, *b = p;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && *p == '#' && p > b)
		while (p < end && *p != '\n')
			p++;
	if (p < end && *p == '\r' && p + 1 < end && p[1] == '\n')
		p++;
	if (p < end && *p != '\n')
		return -1;
	*pp = p < end ? p + 1 : p;
	return 0;
}

/* The NAME of NAME=value at *pp (an optional "export " before it).  0, or -1. */
static int
env_name(const char **pp, const char *end, char *name, size_t cap)
{
	const char *p = *pp, *k;

	if (end - p > 7 && memcmp(p, "export ", 7) == 0)
		for (p += 7; p < end && (*p == ' ' || *p == '\t');)
			p++;
	k = p;
	while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
		p++;
	if (p == end || *p != '=' || p == k || (size_t)(p - k) >= cap || isdigit((unsigned char)*k))
		return -1;
	memcpy(name, k, (size_t)(p - k));
	name[p - k] = '\0';
	*pp = p + 1;
	return 0;
}

json_t *
vault_parse_env(const char *text, size_t len, char **cause)
{
	const char *p = text, *end = text + len, *why = NULL;
	char *val = xmalloc(len + 1), name[257];
	json_t *vars = json_object(), *s;
	size_t line = 1, at, n = 0;

	if (memchr(text, '\0', len) != NULL) {
		xasprintf(cause, "a NUL byte: not a text file");
		goto fail;
	}
	while (p < end) {
		at = line++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && (*p == '#' || *p == '\n' || *p == '\r')) {
			if (*p == '\r' && (p + 1 == end || p[1] != '\n'))
				goto bad_line;
			while (p < end && *p++ != '\n')
				;
			continue;
		}
		if (p == end)
			break;
		if (env_name(&p, end, name, sizeof name) == -1)
			goto bad_line;
		if (env_value(&p, end, &line, val, &n, &why) == -1) {
			xasprintf(cause, "line %zu: the value of %s %s", at, name, why);
			goto fail;
		}
		if (env_line_end(&p, end) == -1) {
			xasprintf(cause,
			          "line %zu: text after the value of %s (quote the whole value)",
			          at, name);
			goto fail;
		}
		if (json_object_get(vars, name) != NULL) {
			xasprintf(cause, "line %zu: %s is set twice", at, name);
			goto fail;
		}
		if ((s = json_stringn(val, n)) == NULL) {
			xasprintf(cause, "line %zu: the value of %s is not UTF-8", at, name);
			goto fail;
		}
		json_object_set_new(vars, name, s);
		explicit_bzero(val, n);
	}
	explicit_bzero(val, len + 1);
	free(val);
	return vars;
bad_line:
	xasprintf(cause,
	          "line %zu: expected NAME=value (a comment, a blank line or "
	          "[export ]NAME=value)",
	          at);
fail:
	explicit_bzero(val, len + 1);
	free(val);
	vault_vars_free(vars);
	return NULL;
}

int
vault_read_env(const char *canon_root, json_t **vars, char **cause)
{
	struct stat sb;
	char *text = NULL, *why = NULL;
	ssize_t r;
	size_t off = 0;
	int dfd, fd = -1, rc = -1;

	*vars = NULL;
	if ((dfd = open_dir_nofollow(canon_root, cause)) == -1)
		return -1;
	if ((fd = openat(dfd, ".env", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			rc = 0;
		else
			xasprintf(cause, "%s/.env: %s", canon_root,
			          errno == ELOOP ? "a symlink (refused)" : strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077) != 0 || sb.st_nlink != 1 || sb.st_size > VAULT_ENV_MAX) {
		xasprintf(cause,
		          "%s/.env must be a regular file of the daemon's uid %ld, mode 0600, "
		          "one link, at most %d bytes (the vault writes it so): refusing it",
		          canon_root, (long)geteuid(), VAULT_ENV_MAX);
		goto out;
	}
	text = xmalloc((size_t)sb.st_size + 1);
	while (off < (size_t)sb.st_size) {
		if ((r = read(fd, text + off, (size_t)sb.st_size - off)) == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			xasprintf(cause, "reading %s/.env: %s", canon_root,
			          r == 0 ? "it shrank while read" : strerror(errno));
			goto out;
		}
		off += (size_t)r;
	}
	if ((*vars = vault_parse_env(text, off, &why)) == NULL) {
		xasprintf(cause, "%s/.env: %s", canon_root, why);
		free(why);
		goto out;
	}
	rc = 1;
out:
	if (text != NULL) {
		explicit_bzero(text, (size_t)sb.st_size + 1);
		free(text);
	}
	if (fd != -1)
		close(fd);
	close(dfd);
	return rc;
}

/* Empty the directory open at fd (which this takes over), depth levels at most. */
static int
remove_tree_at(int fd, int depth)
{
	struct dirent *de;
	DIR *d;
	int sub, rc = 0;

	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = -1;
			continue;
		}
		if (depth <= 0) {
			rc = -1;
			continue;
		}
		sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub == -1 || remove_tree_at(sub, depth - 1) == -1 ||
		    unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) == -1)
			rc = -1;
	}
	closedir(d);
	return rc;
}

int
vault_remove_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	if (remove_tree_at(fd, 8) == -1)
		return -1;
	return rmdir(dir) == -1 && errno != ENOENT ? -1 : 0;
}

/* A byte inside a UTF-8 character, not its first. */
static int
utf8_cont(char c)
{
	return ((unsigned char)c & 0xc0) == 0x80;
}

/* Mark in cover every byte of msg that a secret's substring covers (see vault.h). */
static void
scrub_mark(const char *msg, size_t len, const char *s, unsigned char *cover)
{
	size_t sl = strlen(s), i;
	const char *p;

	if (sl < VAULT_SCRUB_SHORT)
		return;
	if (sl < VAULT_SCRUB_MIN) {
		for (p = msg; (p = memmem(p, len - (size_t)(p - msg), s, sl)) != NULL; p++)
			memset(cover + (p - msg), 1, sl);
		return;
	}
	for (i = 0; i + VAULT_SCRUB_MIN <= len; i++)
		if (memmem(s, sl, msg + i, VAULT_SCRUB_MIN) != NULL)
			memset(cover + i, 1, VAULT_SCRUB_MIN);
}

void
vault_scrub(char *msg, const char *const *secrets, size_t n)
{
	size_t len = strlen(msg), i, r = 0, w = 0;
	unsigned char *cover;

	if (len == 0)
		return;
	cover = xcalloc(len, 1);
	for (i = 0; i < n; i++)
		if (secrets[i] != NULL)
			scrub_mark(msg, len, secrets[i], cover);
	/* Widen each run to whole characters: no half of a UTF-8 sequence stays. */
	for (i = 1; i < len; i++)
		if (cover[i - 1] && !cover[i] && utf8_cont(msg[i]))
			cover[i] = 1;
	for (i = len - 1; i > 0; i--)
		if (cover[i] && !cover[i - 1] && utf8_cont(msg[i]) &&
		    (unsigned char)msg[i - 1] >= 0x80)
			cover[i - 1] = 1;
	/* A run is 3 bytes or more, so "***" never overtakes the reading end. */
	while (r < len) {
		if (!cover[r]) {
			msg[w++] = msg[r++];
			continue;
		}
		memcpy(msg + w, "***", 3);
		w += 3;
		while (r < len && cover[r])
			r++;
	}
	explicit_bzero(msg + w, len - w);
	free(cover);
}

void
vault_cut(char *msg, size_t max)
{
	size_t len = strlen(msg);

	if (len <= max)
		return;
	while (max > 0 && utf8_cont(msg[max]))
		max--;
	explicit_bzero(msg + max, len - max);
}
