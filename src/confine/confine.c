/*
 * confine.c -- the spawner's entry point: options, stage and argv together.
 *
 * Glue only: the pure argv builders are jail.c and bwrap.c, the file work is
 * stage.c, and the OS defaults are confine-linux.c / confine-freebsd.c.
 */
#include "confine/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xmalloc.h"

const char *
confine_backend_name(enum confine_backend b)
{
	return b == CONFINE_BACKEND_BWRAP ? "bwrap" : "freebsd-jail";
}

static char *
confine_env_dup(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? xstrdup(v) : NULL;
}

int
confine_opts_from_env(struct confine_opts *o, char **cause)
{
	memset(o, 0, sizeof *o);
	*cause = NULL;
	if (confine_backend_parse(getenv("COLIBRI_CONFINE"), &o->backend, cause) == -1)
		return -1;
	if (priv_mode_parse(getenv("COLIBRI_JAIL_PRIV_MODE"), &o->priv, cause) == -1)
		return -1;
	o->stage_base = confine_env_dup("COLIBRI_JAIL_STAGE_DIR");
	if (o->stage_base != NULL && o->stage_base[0] != '/') {
		xasprintf(cause, "COLIBRI_JAIL_STAGE_DIR=%s is not an absolute path",
		          o->stage_base);
		confine_opts_clear(o);
		return -1;
	}
	o->root_base = confine_env_dup("COLIBRI_JAIL_ROOT_BASE");
	if (o->root_base == NULL && o->backend == CONFINE_BACKEND_JAIL)
		o->root_base = xstrdup(CONFINE_ROOT_BASE_DEFAULT);
	bwrap_host_probe(&o->host);
	return 0;
}

void
confine_opts_clear(struct confine_opts *o)
{
	size_t i;

	if (o == NULL)
		return;
	free(o->stage_base);
	free(o->root_base);
	for (i = 0; o->ro_paths != NULL && o->ro_paths[i] != NULL; i++)
		free(o->ro_paths[i]);
	free(o->ro_paths);
	for (i = 0; i < o->nprivates; i++) {
		free((char *)o->privates[i].path);
		free((char *)o->privates[i].what);
	}
	free(o->privates);
	free(o->agent_user);
	bwrap_host_clear(&o->host);
	memset(o, 0, sizeof *o);
}

void
confine_opts_add_private(struct confine_opts *o, const char *path, const char *what)
{
	struct bwrap_private *p;
	struct stat sb;
	char *canon;

	if (path == NULL || path[0] != '/')
		return;
	o->privates = xreallocarray(o->privates, o->nprivates + 1, sizeof *o->privates);
	p = &o->privates[o->nprivates++];
	memset(p, 0, sizeof *p);
	canon = realpath(path, NULL);
	p->path = canon != NULL ? canon : xstrdup(path);
	p->what = xstrdup(what);
	if (stat(p->path, &sb) == 0) {
		p->exists = 1;
		p->is_dir = S_ISDIR(sb.st_mode);
	}
}

/* Before anything is staged: the root must not hold or lie in the daemon's files. */
static int
confine_check_private_root(const struct confine_opts *o, const char *root, char **cause)
{
	const struct bwrap_private *p;
	char *canon = realpath(root, NULL);

	if (canon == NULL)
		return 0; /* stage_create reports it */
	if ((p = bwrap_private_conflict(canon, o->privates, o->nprivates)) != NULL)
		xasprintf(
		        cause,
		        "jail root %s (%s) and the daemon's %s %s overlap: refusing to show it to "
		        "an agent",
		        root, canon, p->what, p->path);
	free(canon);
	return p != NULL ? -1 : 0;
}

/* The agent binary's directory, canonical, must not be one of the daemon's either. */
static int
confine_check_binary(const struct confine_opts *o, const char *binary, char **cause)
{
	const struct bwrap_private *p;
	char *canon = binary != NULL ? realpath(binary, NULL) : NULL, *slash;

	if (canon == NULL)
		return 0;
	if ((slash = strrchr(canon, '/')) != NULL && slash != canon)
		*slash = '\0';
	p = bwrap_private_conflict(canon, o->privates, o->nprivates);
	if (p != NULL)
		xasprintf(cause,
		          "the agent binary %s lives in %s, beside the daemon's %s %s: refusing to "
		          "show it to an agent",
		          binary, canon, p->what, p->path);
	free(canon);
	return p != NULL ? -1 : 0;
}

/* Can uid/gid (no supplementary groups) do `bits` (an S_IXOTH-style mask: 1 x, 2 w, 4 r) on sb? */
static int
confine_may(const struct stat *sb, uid_t uid, gid_t gid, mode_t bits)
{
	if (sb->st_uid == uid)
		return (sb->st_mode & (bits << 6)) == (bits << 6);
	if (sb->st_gid == gid)
		return (sb->st_mode & (bits << 3)) == (bits << 3);
	return (sb->st_mode & bits) == bits;
}

/*
 * bubblewrap runs as the agent user, so it must reach what it binds: every
 * directory on the way to path searchable, and path itself allowing bits.
 * A clear refusal here beats bwrap's "Can't find source path" in a log.
 */
static int
confine_check_reach(const char *what, const char *path, uid_t uid, gid_t gid, mode_t bits,
                    const char *user, char **cause)
{
	char *canon = realpath(path, NULL), *p;
	struct stat sb;
	int ok = 1;

	if (canon == NULL)
		return 0; /* missing: reported where it is used */
	for (p = strchr(canon + 1, '/'); ok && p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		ok = stat(canon, &sb) == 0 && confine_may(&sb, uid, gid, 1);
		if (!ok)
			xasprintf(
			        cause,
			        "%s %s is not reachable by the agent user %s (uid %ld): %s is mode "
			        "%03o, owner %ld; make every directory on the way searchable by it",
			        what, path, user, (long)uid, canon, (unsigned)(sb.st_mode & 0777),
			        (long)sb.st_uid);
		*p = '/';
	}
	if (ok && (stat(canon, &sb) != 0 || !confine_may(&sb, uid, gid, bits))) {
		ok = 0;
		xasprintf(cause,
		          "%s %s does not give the agent user %s (uid %ld) the access it needs%s",
		          what, path, user, (long)uid,
		          bits & 2 ? ": the jail root must be writable by it" : "");
	}
	free(canon);
	return ok ? 0 : -1;
}

/*
 * Under drop: the root (searchable and writable), the agent binary
 * (executable) and the read-only paths (their directories searchable: bwrap
 * opens them as that user), reachable.
 */
static int
confine_check_agent_reach(const struct jail_config *cfg, const struct confine_spawn *sp,
                          const char *binary, char *const *ro_paths, const char *user, char **cause)
{
	char *const *p;

	if (confine_check_reach("jail root", jail_config_root(cfg), sp->uid, sp->gid, 3, user,
	                        cause) == -1)
		return -1;
	if (binary != NULL && binary[0] == '/' &&
	    confine_check_reach("agent binary", binary, sp->uid, sp->gid, 1, user, cause) == -1)
		return -1;
	for (p = ro_paths; p != NULL && *p != NULL; p++)
		if (confine_check_reach("read-only path", *p, sp->uid, sp->gid, 0, user, cause) ==
		    -1)
			return -1;
	return 0;
}

/*
 * Under a root daemon: whom bubblewrap runs as.  The jail's user if it
 * exists here and is not root, else agent_user; never uid 0.  That user
 * must reach the root and the agent binary.
 */
static int
confine_agent_identity(const struct confine_opts *o, const struct jail_config *cfg,
                       const char *binary, struct confine_spawn *sp, char **cause)
{
	const char *name = o->agent_user != NULL ? o->agent_user : "nobody";
	struct passwd *pw = NULL;

	if (cfg->user != NULL && (pw = getpwnam(cfg->user)) != NULL && pw->pw_uid != 0)
		name = cfg->user;
	else if ((pw = getpwnam(name)) == NULL) {
		xasprintf(cause,
		          "the daemon runs as root and the agent user %s does not exist on this "
		          "host%s%s%s: refusing to run bubblewrap as root",
		          name, cfg->user != NULL ? " (nor an unprivileged jail user " : "",
		          cfg->user != NULL ? cfg->user : "", cfg->user != NULL ? ")" : "");
		return -1;
	}
	if (pw->pw_uid == 0) {
		xasprintf(cause, "the agent user %s is uid 0: refusing to run bubblewrap as root",
		          name);
		return -1;
	}
	sp->drop = 1;
	sp->uid = pw->pw_uid;
	sp->gid = pw->pw_gid;
	return confine_check_agent_reach(cfg, sp, binary, o->ro_paths, name, cause);
}

/* What the agent's program needs on the host, to bind read-only (bubblewrap). */
struct confine_prog {
	char **dirs; /* NULL-terminated */
	size_t n;
	char *path_first; /* the interpreter's directory as PATH finds it, or NULL */
};

static void
confine_prog_add_dir_of(struct confine_prog *pr, const char *file)
{
	char *d = xstrdup(file), *slash = strrchr(d, '/');

	if (slash == NULL || slash == d) {
		free(d);
		return;
	}
	*slash = '\0';
	pr->dirs = xreallocarray(pr->dirs, pr->n + 2, sizeof *pr->dirs);
	pr->dirs[pr->n++] = d;
	pr->dirs[pr->n] = NULL;
}

static void
confine_prog_clear(struct confine_prog *pr)
{
	size_t i;

	for (i = 0; i < pr->n; i++)
		free(pr->dirs[i]);
	free(pr->dirs);
	free(pr->path_first);
	memset(pr, 0, sizeof *pr);
}

/*
 * Every hop of path's symlink chain (the link's directory must exist inside
 * for the kernel to follow it) and the canonical file.  Returns the
 * canonical path (caller frees) or NULL.
 */
static char *
confine_prog_chain(struct confine_prog *pr, const char *path)
{
	char target[PATH_MAX], *cur = xstrdup(path), *next, *slash;
	ssize_t len;
	int hops;

	for (hops = 0; hops < 40; hops++) {
		confine_prog_add_dir_of(pr, cur);
		if ((len = readlink(cur, target, sizeof target - 1)) <= 0)
			break;
		target[len] = '\0';
		if (target[0] == '/')
			next = xstrdup(target);
		else {
			slash = strrchr(cur, '/');
			xasprintf(&next, "%.*s/%s", (int)(slash - cur), cur, target);
		}
		free(cur);
		cur = next;
	}
	free(cur);
	if ((next = realpath(path, NULL)) != NULL)
		confine_prog_add_dir_of(pr, next);
	return next;
}

/*
 * The package of canonical file: the outermost node_modules above it (npm
 * hoists the dependencies there), else the nearest directory at most
 * CONFINE_PKG_DEPTH levels up holding package.json -- not further, so a
 * stray package.json in a home directory does not show the whole home.
 */
#define CONFINE_PKG_DEPTH 3

static void
confine_prog_package(struct confine_prog *pr, const char *file)
{
	char *d = xstrdup(file), *slash, *pj, *top;
	int found = 0, depth = 0;

	while (!found && depth++ < CONFINE_PKG_DEPTH && (slash = strrchr(d, '/')) != NULL &&
	       slash != d) {
		*slash = '\0';
		pj = path_join(d, "package.json");
		found = access(pj, F_OK) == 0;
		free(pj);
	}
	top = bwrap_node_modules_top(file);
	if (top != NULL || found) {
		pj = path_join(top != NULL ? top : d, "x");
		confine_prog_add_dir_of(pr, pj);
		free(pj);
		free(top);
	}
	free(d);
}

/*
 * NAME looked up on the daemon's PATH, as env would inside; NULL when not
 * found.  Under drop, a candidate the agent user cannot reach is skipped
 * (root's PATH may hold /root/.pyenv/shims), as it could not be bound.
 */
static char *
confine_prog_which(const char *name, const struct confine_spawn *sp)
{
	const char *path = getenv("PATH"), *p, *colon;
	char *cand, *ignored = NULL;

	for (p = path; p != NULL && *p != '\0'; p = colon != NULL ? colon + 1 : NULL) {
		colon = strchr(p, ':');
		xasprintf(&cand, "%.*s/%s", colon != NULL ? (int)(colon - p) : (int)strlen(p), p,
		          name);
		if (cand[0] == '/' && access(cand, X_OK) == 0 &&
		    (!sp->drop || confine_check_reach("interpreter", cand, sp->uid, sp->gid, 1, "",
		                                      &ignored) == 0))
			return cand;
		free(ignored);
		ignored = NULL;
		free(cand);
	}
	return NULL;
}

/* The interpreter of the script canonical file (its #! line), its chain and its directory. */
static void
confine_prog_interp(struct confine_prog *pr, const char *file, const struct confine_spawn *sp)
{
	char head[256], *name, *found, *canon, *slash;
	ssize_t n;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return;
	n = read(fd, head, sizeof head);
	close(fd);
	if (n <= 0 || (name = bwrap_shebang_interp(head, (size_t)n)) == NULL)
		return;
	found = name[0] == '/' ? xstrdup(name) : confine_prog_which(name, sp);
	if (found != NULL) {
		if (name[0] != '/' && (slash = strrchr(found, '/')) != NULL)
			pr->path_first = xstrndup(found, (size_t)(slash - found));
		canon = confine_prog_chain(pr, found);
		if (canon != NULL)
			confine_prog_package(pr, canon);
		free(canon);
	}
	free(found);
	free(name);
}

/*
 * Resolve what an absolute binary needs to run inside bubblewrap: npm's
 * node_modules/.bin/x is a symlink into its package, which needs the
 * package's dependencies and an interpreter (node) found through `#!`.
 */
static void
confine_prog_resolve(struct confine_prog *pr, const char *binary, const struct confine_spawn *sp)
{
	char *canon;

	memset(pr, 0, sizeof *pr);
	if (binary == NULL || binary[0] != '/')
		return;
	if ((canon = confine_prog_chain(pr, binary)) == NULL)
		return;
	confine_prog_package(pr, canon);
	confine_prog_interp(pr, canon, sp);
	free(canon);
}

/* The confined command for a prepared stage: /bin/sh <launch.sh as seen inside>. */
static struct confine_cmd *
confine_wrap_stage(const struct confine_opts *o, const struct jail_config *cfg,
                   const struct confine_spawn *sp, const char *agent_binary, char **cause)
{
	struct bwrap_spec spec;
	struct confine_prog prog;
	struct confine_cmd *c;
	const struct stage *st = sp->stage;
	const char *args[2] = {NULL, NULL};
	char *launch;

	if (o->backend == CONFINE_BACKEND_JAIL && stage_jail_dir(st) == NULL) {
		xasprintf(cause, "stage %s is outside the jail root %s: a jail cannot see it",
		          stage_host_dir(st), stage_root(st));
		return NULL;
	}
	xasprintf(&launch, "%s/launch.sh",
	          o->backend == CONFINE_BACKEND_JAIL ? stage_jail_dir(st) : stage_host_dir(st));
	args[0] = launch;
	if (o->backend == CONFINE_BACKEND_JAIL) {
		c = jail_wrap(o->priv, cfg, "/bin/sh", args);
	} else {
		memset(&spec, 0, sizeof spec);
		spec.cfg = cfg;
		spec.root = stage_root(st);
		spec.stage_dir = stage_host_dir(st);
		spec.agent_binary = agent_binary;
		confine_prog_resolve(&prog, agent_binary, sp);
		spec.agent_dirs = (const char *const *)prog.dirs;
		spec.path_first = prog.path_first;
		spec.ro_paths = (const char *const *)o->ro_paths;
		spec.privates = o->privates;
		spec.nprivates = o->nprivates;
		spec.host = &o->host;
		spec.program = "/bin/sh";
		spec.args = args;
		c = bwrap_wrap(&spec, cause);
		confine_prog_clear(&prog);
	}
	free(launch);
	return c;
}

static int
confine_fill_stage(struct stage *st, const char *binary, const char *const *args, const json_t *env,
                   const char *cwd, char **cause)
{
	if (stage_write_env_json(st, env, cause) == -1)
		return -1;
	return stage_write_launch(st, cwd, binary, args, cause);
}

static int
confine_check_root(const struct confine_opts *o, const struct jail_config *cfg, char **cause)
{
	if (jail_config_root(cfg) != NULL)
		return 0;
	xasprintf(cause, "jail %s has no root_path: the payload cannot be staged",
	          cfg->name != NULL ? cfg->name : "(unnamed)");
	(void)o;
	return -1;
}

/* Non-zero when canonical p lies strictly under canonical dir. */
static int
confine_path_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return p[0] == '/' && p[1] != '\0';
	return strncmp(p, dir, n) == 0 && p[n] == '/' && p[n + 1] != '\0';
}

/* jail.KEY = p, canonical, strictly under the canonical base. */
static int
confine_check_one(const char *key, const char *p, const char *base, char **cause)
{
	char *canon = realpath(p, NULL);
	int ok;

	if (canon == NULL) {
		xasprintf(cause, "jail.%s %s: %s", key, p, strerror(errno));
		return -1;
	}
	if (!(ok = confine_path_under(canon, base)))
		xasprintf(cause, "jail.%s %s (%s) is not strictly under the root base %s", key, p,
		          canon, base);
	free(canon);
	return ok ? 0 : -1;
}

/*
 * Both path and root_path against the root base, whichever is set: the stage
 * checks only the root it is created in, and a jail whose path escapes the
 * base while root_path stays inside it must not pass.
 */
static int
confine_check_base(const struct confine_opts *o, const struct jail_config *cfg, char **cause)
{
	char *base;
	int rc = 0;

	if (o->root_base == NULL)
		return 0;
	if ((base = realpath(o->root_base, NULL)) == NULL) {
		xasprintf(cause, "jail root base %s: %s", o->root_base, strerror(errno));
		return -1;
	}
	if (cfg->path != NULL)
		rc = confine_check_one("path", cfg->path, base, cause);
	if (rc == 0 && cfg->root_path != NULL)
		rc = confine_check_one("root_path", cfg->root_path, base, cause);
	free(base);
	return rc;
}

struct confine_spawn *
confine_prepare(const struct confine_opts *o, const struct jail_config *cfg, const char *id,
                const char *binary, const char *const *args, const json_t *env, const char *cwd,
                char **cause)
{
	struct confine_spawn *sp = xcalloc(1, sizeof *sp);
	char *sub = NULL;

	*cause = NULL;
	sp->backend = o->backend;
	if (!jail_config_active(cfg)) {
		sp->cmd = jail_wrap(o->priv, NULL, binary, args);
		return sp;
	}
	if (confine_check_root(o, cfg, cause) == -1)
		goto fail;
	if (o->backend == CONFINE_BACKEND_JAIL && jail_config_check_mode(cfg, o->priv, cause) == -1)
		goto fail;
	if (confine_check_base(o, cfg, cause) == -1)
		goto fail;
	/* Whatever the backend, a jail never holds the daemon's own files. */
	if (confine_check_private_root(o, jail_config_root(cfg), cause) == -1)
		goto fail;
	if (o->backend == CONFINE_BACKEND_BWRAP && confine_check_binary(o, binary, cause) == -1)
		goto fail;
	if (o->backend == CONFINE_BACKEND_BWRAP && o->drop_root &&
	    confine_agent_identity(o, cfg, binary, sp, cause) == -1)
		goto fail;
	sp->stage = stage_create(jail_config_root(cfg), id, o->stage_base, o->root_base, cause);
	if (sp->stage == NULL)
		goto fail;
	if (confine_fill_stage(sp->stage, binary, args, env, cwd, cause) == -1)
		goto fail;
	if ((sp->cmd = confine_wrap_stage(o, cfg, sp, binary, cause)) == NULL)
		goto fail;
	if (sp->drop && stage_give(sp->stage, sp->uid, sp->gid, cause) == -1)
		goto fail;
	return sp;
fail:
	if (confine_spawn_finish(sp, &sub) == -1)
		free(sub);
	return NULL;
}

void
confine_spawn_status(const struct confine_spawn *sp, int exit_code, int term_signal,
                     struct stage_status *out)
{
	memset(out, 0, sizeof *out);
	if (sp->stage != NULL) {
		stage_read_status(sp->stage, out);
		if (out->kind != STAGE_STATUS_UNKNOWN)
			return;
	}
	out->exit_code = exit_code;
	if (term_signal != 0) {
		out->kind = STAGE_STATUS_SIGNALED;
		out->signal = term_signal;
		out->exit_code = 128 + term_signal;
	} else if (sp->stage == NULL)
		out->kind = STAGE_STATUS_EXITED;
	else
		out->kind = STAGE_STATUS_UNKNOWN;
}

int
confine_spawn_finish(struct confine_spawn *sp, char **cause)
{
	int rc = 0;

	*cause = NULL;
	if (sp == NULL)
		return 0;
	if (sp->stage != NULL)
		rc = stage_remove(sp->stage, cause);
	stage_free(sp->stage);
	confine_cmd_free(sp->cmd);
	free(sp);
	return rc;
}
