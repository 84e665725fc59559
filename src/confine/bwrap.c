/*
 * bwrap.c -- building the bubblewrap command line for a JailConfig.
 *
 * bwrap_wrap is pure: the host's layout of /bin and /lib comes in through
 * struct bwrap_host, probed once by the daemon at start-up, so the unit tests
 * can feed both a merged-/usr host and a classic one.  The mapping itself is
 * documented in bwrap.h.
 */
#include "confine/bwrap.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/jail-name.h"

const char *const bwrap_host_dirs[BWRAP_NTOP] = {
        "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
};

static const char *const bwrap_etc_files[] = {
        "/etc/passwd",       "/etc/group",        "/etc/nsswitch.conf", "/etc/hosts",
        "/etc/host.conf",    "/etc/resolv.conf",  "/etc/localtime",     "/etc/ld.so.cache",
        "/etc/ld.so.conf",   "/etc/ld.so.conf.d", "/etc/ssl",           "/etc/ca-certificates",
        "/etc/alternatives",
};

/* Directories visible without an extra bind (besides the root); /tmp is a fresh tmpfs. */
static const char *const bwrap_visible[] = {
        "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
};

void
bwrap_host_probe(struct bwrap_host *h)
{
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;
	size_t i;

	memset(h, 0, sizeof *h);
	for (i = 0; i < BWRAP_NTOP; i++) {
		if (lstat(bwrap_host_dirs[i], &st) == -1)
			continue;
		if (S_ISLNK(st.st_mode)) {
			n = readlink(bwrap_host_dirs[i], target, sizeof target - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			h->link[i] = xstrdup(target);
		} else if (!S_ISDIR(st.st_mode))
			continue;
		h->present[i] = 1;
	}
}

void
bwrap_host_clear(struct bwrap_host *h)
{
	size_t i;

	for (i = 0; i < BWRAP_NTOP; i++)
		free(h->link[i]);
	memset(h, 0, sizeof *h);
}

static void
bwrap_add2(struct confine_cmd *c, const char *opt, const char *a)
{
	confine_cmd_add(c, opt);
	confine_cmd_add(c, a);
}

static void
bwrap_add3(struct confine_cmd *c, const char *opt, const char *a, const char *b)
{
	confine_cmd_add(c, opt);
	confine_cmd_add(c, a);
	confine_cmd_add(c, b);
}

/* Non-zero when p is dir or below it. */
static int
bwrap_path_within(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

static int
bwrap_already_visible(const char *p, const char *root)
{
	size_t i;

	if (bwrap_path_within(p, root))
		return 1;
	for (i = 0; i < sizeof bwrap_visible / sizeof bwrap_visible[0]; i++) {
		if (bwrap_path_within(p, bwrap_visible[i]))
			return 1;
	}
	return 0;
}

static void
bwrap_add_system(struct confine_cmd *c, const struct bwrap_host *h)
{
	size_t i;

	bwrap_add3(c, "--ro-bind", "/usr", "/usr");
	for (i = 0; h != NULL && i < BWRAP_NTOP; i++) {
		if (!h->present[i])
			continue;
		if (h->link[i] != NULL)
			bwrap_add3(c, "--symlink", h->link[i], bwrap_host_dirs[i]);
		else
			bwrap_add3(c, "--ro-bind", bwrap_host_dirs[i], bwrap_host_dirs[i]);
	}
	for (i = 0; i < sizeof bwrap_etc_files / sizeof bwrap_etc_files[0]; i++)
		bwrap_add3(c, "--ro-bind-try", bwrap_etc_files[i], bwrap_etc_files[i]);
	bwrap_add2(c, "--proc", "/proc");
	bwrap_add2(c, "--dev", "/dev");
	bwrap_add2(c, "--tmpfs", "/tmp");
}

static void
bwrap_add_namespaces(struct confine_cmd *c, const struct jail_config *cfg)
{
	char name[JAIL_EPHEMERAL_NAME_SIZE];

	confine_cmd_add(c, "--unshare-all");
	bwrap_add2(c, "--cap-drop", "ALL");
	/* As on FreeBSD, an unset ip4 inherits the host's network; only "disable" cuts it. */
	if (cfg->ip4 == NULL || strcmp(cfg->ip4, "disable") != 0)
		confine_cmd_add(c, "--share-net");
	confine_cmd_add(c, "--die-with-parent");
	confine_cmd_add(c, "--new-session");
	if (cfg->name != NULL)
		bwrap_add2(c, "--hostname", cfg->name);
	else if (cfg->path != NULL) {
		jail_ephemeral_name(cfg->path, name, sizeof name);
		bwrap_add2(c, "--hostname", name);
	}
}

const struct bwrap_private *
bwrap_private_conflict(const char *path, const struct bwrap_private *privates, size_t n)
{
	size_t i;

	for (i = 0; privates != NULL && i < n; i++)
		if (bwrap_path_within(path, privates[i].path) ||
		    bwrap_path_within(privates[i].path, path))
			return &privates[i];
	return NULL;
}

/* Non-zero when p shows inside the sandbox without a bind of ours (/usr, the /etc files...). */
static int
bwrap_system_visible(const char *p)
{
	size_t i;

	for (i = 0; i < sizeof bwrap_visible / sizeof bwrap_visible[0]; i++)
		if (bwrap_path_within(p, bwrap_visible[i]))
			return 1;
	for (i = 0; i < sizeof bwrap_etc_files / sizeof bwrap_etc_files[0]; i++)
		if (bwrap_path_within(p, bwrap_etc_files[i]))
			return 1;
	return 0;
}

/* Cover the daemon's paths that a system bind shows: an empty tmpfs, or /dev/null. */
static void
bwrap_cover_privates(struct confine_cmd *c, const struct bwrap_spec *s)
{
	size_t i;

	for (i = 0; s->privates != NULL && i < s->nprivates; i++) {
		const struct bwrap_private *p = &s->privates[i];
		if (!p->exists || !bwrap_system_visible(p->path))
			continue;
		if (p->is_dir)
			bwrap_add2(c, "--tmpfs", p->path);
		else
			bwrap_add3(c, "--ro-bind", "/dev/null", p->path);
	}
}

/* Non-zero when *p is also listed earlier in agent_dirs or lies below an entry (bound there). */
static int
bwrap_dir_covered(const struct bwrap_spec *s, const char *const *p)
{
	const char *const *q;

	for (q = s->agent_dirs; *q != NULL; q++)
		if (q != p && bwrap_path_within(*p, *q) && (strcmp(*p, *q) != 0 || q < p))
			return 1;
	return 0;
}

/* Non-zero when p is one of agent_dirs or below one (bound with them). */
static int
bwrap_in_agent_dirs(const struct bwrap_spec *s, const char *p)
{
	const char *const *q;

	for (q = s->agent_dirs; q != NULL && *q != NULL; q++)
		if (bwrap_path_within(p, *q))
			return 1;
	return 0;
}

static void
bwrap_add_binds(struct confine_cmd *c, const struct bwrap_spec *s)
{
	const char *const *p;
	char *dir;

	bwrap_add3(c, "--bind", s->root, s->root);
	if (s->stage_dir != NULL && !bwrap_path_within(s->stage_dir, s->root))
		bwrap_add3(c, "--bind", s->stage_dir, s->stage_dir);
	if (s->agent_binary != NULL && s->agent_binary[0] == '/') {
		dir = xstrdup(s->agent_binary);
		*strrchr(dir, '/') = '\0';
		if (*dir != '\0' && !bwrap_already_visible(dir, s->root) &&
		    !bwrap_in_agent_dirs(s, dir))
			bwrap_add3(c, "--ro-bind", dir, dir);
		free(dir);
	}
	for (p = s->agent_dirs; p != NULL && *p != NULL; p++)
		if (!bwrap_already_visible(*p, s->root) && !bwrap_dir_covered(s, p))
			bwrap_add3(c, "--ro-bind", *p, *p);
	for (p = s->ro_paths; p != NULL && *p != NULL; p++)
		bwrap_add3(c, "--ro-bind-try", *p, *p);
	bwrap_cover_privates(c, s);
	/* Last: the sandbox's own / (a tmpfs holding the mount points) becomes read-only. */
	bwrap_add2(c, "--remount-ro", "/");
}

#define BWRAP_PATH "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

static void
bwrap_add_env(struct confine_cmd *c, const struct bwrap_spec *s)
{
	char *home = path_join(s->root, "home/clawdie");

	char *path;

	confine_cmd_add(c, "--clearenv");
	bwrap_add3(c, "--setenv", "HOME", home);
	if (s->path_first != NULL && !bwrap_system_visible(s->path_first))
		xasprintf(&path, "%s:%s", s->path_first, BWRAP_PATH);
	else
		path = xstrdup(BWRAP_PATH);
	bwrap_add3(c, "--setenv", "PATH", path);
	free(path);
	if (s->cfg->user != NULL) {
		bwrap_add3(c, "--setenv", "USER", s->cfg->user);
		bwrap_add3(c, "--setenv", "LOGNAME", s->cfg->user);
	}
	bwrap_add2(c, "--chdir", s->root);
	free(home);
}

/* -1 with *cause when a bind of path (what: "jail root"...) would show the daemon's files. */
static int
bwrap_bind_check(const struct bwrap_spec *s, const char *what, const char *path, char **cause)
{
	const struct bwrap_private *p = bwrap_private_conflict(path, s->privates, s->nprivates);

	if (p == NULL)
		return 0;
	if (bwrap_path_within(path, p->path))
		xasprintf(cause,
		          "%s %s lies inside the daemon's %s %s: refusing to show it to an agent",
		          what, path, p->what, p->path);
	else
		xasprintf(cause,
		          "%s %s contains the daemon's %s %s: refusing to show it to an agent",
		          what, path, p->what, p->path);
	return -1;
}

static int
bwrap_binds_check(const struct bwrap_spec *s, char **cause)
{
	const char *const *p;
	char *dir;
	int rc = 0;

	if (bwrap_bind_check(s, "jail root", s->root, cause) == -1)
		return -1;
	if (s->stage_dir != NULL &&
	    bwrap_bind_check(s, "stage directory", s->stage_dir, cause) == -1)
		return -1;
	if (s->agent_binary != NULL && s->agent_binary[0] == '/') {
		dir = xstrdup(s->agent_binary);
		*strrchr(dir, '/') = '\0';
		if (*dir != '\0' && !bwrap_already_visible(dir, s->root))
			rc = bwrap_bind_check(s, "the agent binary's directory", dir, cause);
		free(dir);
		if (rc == -1)
			return -1;
	}
	for (p = s->agent_dirs; p != NULL && *p != NULL; p++)
		if (!bwrap_already_visible(*p, s->root) &&
		    bwrap_bind_check(s, "the agent program's directory", *p, cause) == -1)
			return -1;
	for (p = s->ro_paths; p != NULL && *p != NULL; p++)
		if (bwrap_bind_check(s, "read-only path", *p, cause) == -1)
			return -1;
	return 0;
}

static int
bwrap_spec_check(const struct bwrap_spec *s, char **cause)
{
	const char *const *p;

	if (s->root == NULL || s->root[0] != '/') {
		xasprintf(cause, "the bubblewrap backend needs an absolute root_path or path");
		return -1;
	}
	if (strcmp(s->root, "/") == 0) {
		xasprintf(cause, "jail root / would expose the whole host read-write");
		return -1;
	}
	if (s->stage_dir != NULL && s->stage_dir[0] != '/') {
		xasprintf(cause, "stage directory %s is not absolute", s->stage_dir);
		return -1;
	}
	for (p = s->ro_paths; p != NULL && *p != NULL; p++) {
		if ((*p)[0] != '/') {
			xasprintf(cause, "read-only path %s is not absolute", *p);
			return -1;
		}
	}
	for (p = s->agent_dirs; p != NULL && *p != NULL; p++) {
		if ((*p)[0] != '/') {
			xasprintf(cause, "the agent program's directory %s is not absolute", *p);
			return -1;
		}
	}
	if (s->program == NULL || s->cfg == NULL) {
		xasprintf(cause, "bubblewrap spec without a program or jail config");
		return -1;
	}
	return bwrap_binds_check(s, cause);
}

struct confine_cmd *
bwrap_wrap(const struct bwrap_spec *s, char **cause)
{
	struct confine_cmd *c;
	const char *const *a;

	*cause = NULL;
	if (bwrap_spec_check(s, cause) == -1)
		return NULL;
	c = confine_cmd_new();
	confine_cmd_add(c, "bwrap");
	bwrap_add_namespaces(c, s->cfg);
	bwrap_add_system(c, s->host);
	bwrap_add_binds(c, s);
	bwrap_add_env(c, s);
	confine_cmd_add(c, "--");
	confine_cmd_add(c, s->program);
	for (a = s->args; a != NULL && *a != NULL; a++)
		confine_cmd_add(c, *a);
	return c;
}

char *
bwrap_shebang_interp(const char *head, size_t n)
{
	const char *p = head, *end, *w;
	size_t len;

	if (n < 3 || head[0] != '#' || head[1] != '!')
		return NULL;
	end = memchr(head, '\n', n);
	if (end == NULL)
		end = head + n;
	p += 2;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (w = p; w < end && *w != ' ' && *w != '\t' && *w != '\r'; w++)
		;
	if (w == p || *p != '/')
		return NULL;
	len = (size_t)(w - p);
	if (len == 12 && strncmp(p, "/usr/bin/env", 12) == 0) {
		/* env's own options (-S, -i...) come before the name it looks up. */
		for (p = w;;) {
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			for (w = p; w < end && *w != ' ' && *w != '\t' && *w != '\r'; w++)
				;
			if (w == p || *p != '-')
				break;
			p = w;
		}
		if (w == p || memchr(p, '=', (size_t)(w - p)) != NULL)
			return NULL;
		len = (size_t)(w - p);
	}
	return xstrndup(p, len);
}

char *
bwrap_node_modules_top(const char *path)
{
	const char *p, *hit = NULL;

	for (p = strstr(path, "/node_modules"); p != NULL; p = strstr(p + 1, "/node_modules")) {
		if (p[13] == '/' || p[13] == '\0') {
			hit = p;
			break;
		}
	}
	return hit != NULL ? xstrndup(path, (size_t)(hit - path) + 13) : NULL;
}

const char *
bwrap_ro_path_check(const char *p)
{
	const char *c;
	size_t n;

	if (p[0] != '/')
		return "is not absolute";
	if (p[1] == '\0')
		return "is / (the whole host)";
	for (c = p; *c != '\0'; c += n) {
		c++; /* past the '/' */
		n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return "is not canonical (empty, \".\" or \"..\" component)";
	}
	return NULL;
}
