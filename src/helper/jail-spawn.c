/*
 * jail-spawn.c -- colibri-jail-spawn, the narrow setuid helper.
 *
 * The daemon runs unprivileged; on a shared host it reaches jails only
 * through this program (COLIBRI_JAIL_PRIV_MODE=helper), installed in libexec
 * as root:colibri-jail mode 4750.  colibri-jail is a group of its own whose
 * only member is the daemon's user: the socket group (the board's members)
 * must not be able to run it.  It grants exactly what the daemon needs --
 * run a staged launch.sh as an unprivileged user inside a jail under the
 * root base -- and refuses everything else.  The only requests:
 *
 *   colibri-jail-spawn exec -U USER NAME -- /bin/sh STAGE/ID/launch.sh
 *       -> /usr/sbin/jexec -U USER NAME /bin/sh STAGE/ID/launch.sh
 *   colibri-jail-spawn create [-4 IP4] -U USER PATH -- /bin/sh STAGE/ID/launch.sh
 *       -> /usr/sbin/jail -c path=PATH name=colibri-<last component>
 *          ip4.addr=IP4|ip4=inherit|ip4=disable exec.jail_user=USER
 *          command=/bin/sh STAGE/ID/launch.sh
 *
 * The helper builds the jexec/jail argv itself: the caller chooses values,
 * never parameters (a free-form `jail -c` could set exec.prestart and run
 * anything on the host as root).  Checks:
 *   NAME     [A-Za-z0-9_.-]{1,64}, no "..", no leading '-', not all digits;
 *            on FreeBSD the running jail's path must lie under the root base.
 *   PATH     absolute, canonical (realpath(PATH) == PATH: no symlink on the
 *            way), strictly under the root base, and every directory from the
 *            base down to PATH owned by the effective uid (root when setuid)
 *            and not writable by group or others, so the caller cannot swap
 *            a component between the check and jail(8).  A PATH with a
 *            jail.conf or fstab in it or beside it belongs to a jail manager
 *            (bastille's jails/NAME/{jail.conf,fstab,root}): refused unless
 *            the config lists it as a jail_root.
 *   USER     required; [A-Za-z0-9_][A-Za-z0-9_.-]{0,31}, not root, not toor,
 *            not all digits, not uid 0 in the host's password database, nor
 *            in the jail's etc/passwd or etc/master.passwd when the jail's
 *            root is known (create; exec on FreeBSD).  jexec -U and
 *            exec.jail_user look the user up inside the jail.
 *   PROGRAM  exactly /bin/sh STAGE/ID/launch.sh, STAGE the configured stage
 *            prefix (default /home/clawdie/.cache/colibri/stage, the daemon's
 *            in-jail stage directory, see confine/stage.h), ID a stage id;
 *            when the jail's root is known (create; exec on FreeBSD) the
 *            launcher must be a regular file there, reached without a
 *            symlink: the daemon staged it in the tree the jail runs.
 *   IP4      address|inherit|disable.
 *
 * The configuration, when running setuid, comes only from compile-time
 * defaults and the file COLIBRI_HELPER_CONF:
 *   root_base = /path      the root base (default /usr/local/bastille/jails)
 *   stage_dir = /path      the in-jail stage prefix
 *   jail_root = /path      a managed jail root `create` may use (repeatable)
 * The file must be a regular file owned by root and not writable by group or
 * others, reached from "/" through directories owned by root, the one
 * holding it not writable by group or others (ancestors may be sticky, like
 * /tmp): otherwise whoever owns the directory (once, the daemon's user) could
 * replace the file.  A missing file or directory means the defaults.  The
 * caller's environment is never consulted then.  When NOT running setuid
 * (getuid() == geteuid(), no secure-exec flag: root itself, or tests) the
 * environment may set COLIBRI_JAIL_ROOT_BASE, COLIBRI_JAIL_SPAWN_CONFIG (the
 * config file; "root" then means the effective uid) and
 * COLIBRI_JAIL_SPAWN_TEST_BINDIR (a directory holding stand-in jexec/jail).
 *
 * Before exec: stdio is guaranteed open, descriptors above 2 are closed,
 * signals are reset to default and unblocked, the umask is 022, the
 * environment is replaced by PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:
 * /usr/local/bin, and a setuid run becomes fully root (groups, gid, uid) so
 * jexec/jail are not refused over a ruid/euid mismatch; they drop to USER.
 *
 * Exit codes (else the exec'd jexec/jail's own status):
 *   64 malformed request (verb, options, -U missing, "--", extra arguments)
 *   65 invalid value (name, user, ip4, path syntax)
 *   77 refused: program not the stage's launch.sh, user root, path not
 *      canonical, outside the base, unsafe ownership or mode, a managed jail
 *      root not listed, jail not managed (outside the base)
 *   78 configuration: root base or config file missing or unsafe
 *   71 operating system error (cannot become root, exec failed)
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confine/jail-name.h"
#include "helper/helper-os.h"

#define EXIT_BADREQ      64
#define EXIT_BADVAL      65
#define EXIT_OSERR       71
#define EXIT_REFUSE      77
#define EXIT_CONFIG      78
#define HELPER_ARGS      256
#define HELPER_PATH      "PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
#define HELPER_CONFMAX   4096
#define HELPER_ROOTS     32
#define HELPER_PASSWDMAX (4 * 1024 * 1024)
#define DIR_FLAGS        (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct request {
	int create; /* 0: exec NAME, 1: create PATH */
	const char *user;
	const char *ip4;
	const char *target;
	char **cmd; /* PROGRAM [ARG...], NULL-terminated (points into argv) */
	int ncmd;
};

struct helper {
	int privileged;
	const char *conf;
	char base[PATH_MAX];  /* canonical root base */
	char stage[PATH_MAX]; /* in-jail stage prefix, no trailing '/' */
	char bindir[PATH_MAX];
	char *roots[HELPER_ROOTS]; /* jail_root lines: managed roots create may use */
	int nroots;
};

static void __attribute__((noreturn, format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("colibri-jail-spawn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
helper_sanitize_process(void)
{
	sigset_t none;
	int fd, sig;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", O_RDWR) != fd)
			die(EXIT_OSERR, "cannot open /dev/null for descriptor %d", fd);
	}
	closefrom(3);
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(022);
}

static int
parse_option(struct request *r, char **argv, int *i, int argc)
{
	const char **slot;

	if (strcmp(argv[*i], "-U") == 0)
		slot = &r->user;
	else if (strcmp(argv[*i], "-4") == 0 && r->create)
		slot = &r->ip4;
	else
		return 0;
	if (*slot != NULL)
		die(EXIT_BADREQ, "refused: option %s given twice", argv[*i]);
	if (*i + 1 >= argc)
		die(EXIT_BADREQ, "refused: option %s needs a value", argv[*i]);
	*slot = argv[*i + 1];
	*i += 2;
	return 1;
}

static void
parse_request(struct request *r, int argc, char **argv)
{
	int i = 2;

	memset(r, 0, sizeof *r);
	if (argc < 2 || (strcmp(argv[1], "exec") != 0 && strcmp(argv[1], "create") != 0))
		die(EXIT_BADREQ, "refused: usage: colibri-jail-spawn exec -U USER NAME -- /bin/sh "
		                 "STAGE/ID/launch.sh | create [-4 IP4] -U USER PATH -- /bin/sh "
		                 "STAGE/ID/launch.sh");
	r->create = strcmp(argv[1], "create") == 0;
	while (i < argc && parse_option(r, argv, &i, argc))
		;
	if (i >= argc || argv[i][0] == '-')
		die(EXIT_BADREQ, "refused: expected a jail %s, got %s", r->create ? "path" : "name",
		    i < argc ? argv[i] : "nothing");
	r->target = argv[i++];
	if (i >= argc || strcmp(argv[i], "--") != 0)
		die(EXIT_BADREQ, "refused: expected \"--\" after the jail %s, got %s",
		    r->create ? "path" : "name", i < argc ? argv[i] : "nothing");
	r->cmd = argv + i + 1;
	r->ncmd = argc - i - 1;
	if (r->ncmd < 1)
		die(EXIT_BADREQ, "refused: no program after \"--\"");
	if (r->ncmd > HELPER_ARGS)
		die(EXIT_BADREQ, "refused: more than %d program arguments", HELPER_ARGS);
	if (r->user == NULL)
		die(EXIT_BADREQ, "refused: -U USER is required: the helper runs a jailed command "
		                 "only as an unprivileged user");
}

static void
check_values(const struct request *r)
{
	const char *err;

	if (!r->create && (err = jail_name_check(r->target)) != NULL)
		die(EXIT_BADVAL, "refused: jail name %s", err);
	if (r->create && (err = jail_path_check(r->target)) != NULL)
		die(EXIT_BADVAL, "refused: jail path %s", err);
	if ((err = jail_user_check(r->user)) != NULL)
		die(EXIT_BADVAL, "refused: user %s", err);
	if (r->ip4 != NULL && (err = jail_ip4_check(r->ip4)) != NULL)
		die(EXIT_BADVAL, "refused: ip4 %s", err);
	if ((err = jail_unpriv_user_check(r->user)) != NULL)
		die(EXIT_REFUSE, "refused: user %s %s", r->user, err);
}

/* ---- the configuration file ------------------------------------------- */

/*
 * A directory on the way to the config: owned by root (or the effective
 * uid), not writable by group or others -- except, above the config's own
 * directory, a sticky one such as /tmp, where nobody can rename what others own.
 */
static void
config_check_dir(int fd, const char *conf, const char *what, int last)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode))
		die(EXIT_CONFIG, "config %s: %s is not a directory", conf, what);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		die(EXIT_CONFIG, "config %s: directory %s must be owned by root (it is uid %u)",
		    conf, what, (unsigned)st.st_uid);
	if ((st.st_mode & 022) != 0 && (last || (st.st_mode & S_ISVTX) == 0))
		die(EXIT_CONFIG, "config %s: directory %s must not be writable by group or others",
		    conf, what);
}

/* Walk from "/" to the config's directory; returns its fd, or -1 when a component is absent. */
static int
config_open_dir(const char *conf, char *dirpart)
{
	char *comp, *next, *save = NULL;
	int fd, nfd;

	if ((fd = open("/", DIR_FLAGS)) == -1)
		die(EXIT_CONFIG, "config %s: cannot open /: %s", conf, strerror(errno));
	comp = strtok_r(dirpart, "/", &save);
	config_check_dir(fd, conf, "/", comp == NULL);
	for (; comp != NULL; comp = next) {
		next = strtok_r(NULL, "/", &save);
		nfd = openat(fd, comp, DIR_FLAGS);
		close(fd);
		if (nfd == -1 && errno == ENOENT)
			return -1;
		if (nfd == -1)
			die(EXIT_CONFIG, "config %s: directory %s: %s", conf, comp,
			    strerror(errno));
		fd = nfd;
		config_check_dir(fd, conf, comp, next == NULL);
	}
	return fd;
}

/* The config file's descriptor, checked; -1 when it (or a directory on its way) is absent. */
static int
config_open(const char *conf)
{
	char dirpart[PATH_MAX], *slash;
	struct stat st;
	int dfd, fd;

	if (conf[0] != '/' || strlen(conf) >= sizeof dirpart)
		die(EXIT_CONFIG, "config %s must be an absolute path", conf);
	memcpy(dirpart, conf, strlen(conf) + 1);
	slash = strrchr(dirpart, '/');
	*slash = '\0';
	if ((dfd = config_open_dir(conf, dirpart)) == -1)
		return -1;
	fd = openat(dfd, slash + 1, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (fd == -1 && errno == ENOENT)
		return -1;
	if (fd == -1)
		die(EXIT_CONFIG, "config %s: %s", conf, strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		die(EXIT_CONFIG, "config %s is not a regular file", conf);
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0)
		die(EXIT_CONFIG,
		    "config %s must be owned by uid %u and not writable by group or "
		    "others",
		    conf, (unsigned)geteuid());
	return fd;
}

/* An absolute path value without trailing slashes, into out. */
static void
config_path_value(const char *conf, const char *key, const char *val, char *out)
{
	size_t n = strlen(val);

	if (jail_path_check(val) != NULL || n >= PATH_MAX)
		die(EXIT_CONFIG,
		    "config %s: %s must be an absolute path without . or .. "
		    "components",
		    conf, key);
	while (n > 1 && val[n - 1] == '/')
		n--;
	memcpy(out, val, n);
	out[n] = '\0';
}

static void
config_set(struct helper *h, const char *key, const char *val)
{
	char v[PATH_MAX];

	if (strcmp(key, "root_base") != 0 && strcmp(key, "stage_dir") != 0 &&
	    strcmp(key, "jail_root") != 0)
		die(EXIT_CONFIG,
		    "config %s: unknown key %s (known: root_base, stage_dir, jail_root)", h->conf,
		    key);
	config_path_value(h->conf, key, val, v);
	if (strcmp(key, "root_base") == 0) {
		memcpy(h->base, v, strlen(v) + 1);
	} else if (strcmp(key, "stage_dir") == 0) {
		if (strcmp(v, "/") == 0)
			die(EXIT_CONFIG, "config %s: stage_dir must not be /", h->conf);
		memcpy(h->stage, v, strlen(v) + 1);
	} else {
		if (h->nroots == HELPER_ROOTS)
			die(EXIT_CONFIG, "config %s: more than %d jail_root lines", h->conf,
			    HELPER_ROOTS);
		if ((h->roots[h->nroots++] = strdup(v)) == NULL)
			die(EXIT_OSERR, "out of memory");
	}
}

static void
config_line(struct helper *h, char *line)
{
	char *key, *val, *end;

	line += strspn(line, " \t");
	if (*line == '#' || *line == '\0')
		return;
	key = line;
	if ((val = strchr(line, '=')) == NULL)
		die(EXIT_CONFIG, "config %s: expected key = value: %s", h->conf, line);
	*val++ = '\0';
	for (end = val - 2; end >= key && (*end == ' ' || *end == '\t'); end--)
		*end = '\0';
	val += strspn(val, " \t");
	for (end = val + strlen(val); end > val && (end[-1] == ' ' || end[-1] == '\t'); end--)
		end[-1] = '\0';
	config_set(h, key, val);
}

/* Read the config file into h; leaves the defaults alone if it is absent. */
static void
config_read(struct helper *h)
{
	char buf[HELPER_CONFMAX + 1], *line, *save = NULL;
	ssize_t n;
	int fd;

	if ((fd = config_open(h->conf)) == -1)
		return;
	n = read(fd, buf, HELPER_CONFMAX);
	close(fd);
	if (n < 0 || n == HELPER_CONFMAX)
		die(EXIT_CONFIG, "config %s: unreadable or larger than %d bytes", h->conf,
		    HELPER_CONFMAX - 1);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		config_line(h, line);
}

static void
helper_setup(struct helper *h)
{
	const char *v;

	memset(h, 0, sizeof *h);
	h->privileged = helper_os_privileged();
	h->conf = COLIBRI_HELPER_CONF;
	snprintf(h->bindir, sizeof h->bindir, "/usr/sbin");
	snprintf(h->base, sizeof h->base, "%s", COLIBRI_HELPER_ROOT_BASE);
	snprintf(h->stage, sizeof h->stage, "/%s", JAIL_STAGE_REL);
	if (!h->privileged && (v = getenv("COLIBRI_JAIL_SPAWN_CONFIG")) != NULL && *v != '\0')
		h->conf = v;
	config_read(h);
	if (!h->privileged && (v = getenv("COLIBRI_JAIL_ROOT_BASE")) != NULL && *v != '\0')
		snprintf(h->base, sizeof h->base, "%s", v);
	if (!h->privileged && (v = getenv("COLIBRI_JAIL_SPAWN_TEST_BINDIR")) != NULL && *v != '\0')
		snprintf(h->bindir, sizeof h->bindir, "%s", v);
}

/* Canonicalise the root base, when a request needs it (create; exec on FreeBSD). */
static void
helper_resolve_base(struct helper *h)
{
	char base[PATH_MAX];

	if (realpath(h->base, base) == NULL)
		die(EXIT_CONFIG, "root base %s: %s", h->base, strerror(errno));
	memcpy(h->base, base, strlen(base) + 1);
}

/* ---- the program and the user --------------------------------------- */

static void
check_program(const struct helper *h, const struct request *r)
{
	const char *err;

	if ((err = jail_launch_check(h->stage, r->cmd, r->ncmd)) != NULL)
		die(EXIT_REFUSE,
		    "refused: the program %s (the only program is /bin/sh %s/ID/launch.sh, "
		    "a stage of the daemon's)",
		    err, h->stage);
}

/* Refuse when the host's password database gives user uid 0. */
static void
check_user_host(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw != NULL && pw->pw_uid == 0)
		die(EXIT_REFUSE, "refused: user %s is uid 0 on the host", user);
}

/* Refuse when the password file name (below the jail's etc, fd etcfd) gives user uid 0. */
static void
check_user_file(int etcfd, const char *root, const char *name, const char *user)
{
	char *buf, *line, *save = NULL;
	struct stat st;
	ssize_t n;
	int fd;

	if ((fd = openat(etcfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return;
		die(EXIT_REFUSE, "refused: %s/etc/%s: %s", root, name, strerror(errno));
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0 || st.st_size >= HELPER_PASSWDMAX)
		die(EXIT_REFUSE,
		    "refused: %s/etc/%s must be a regular file owned by uid %u, not "
		    "writable by group or others, under %d bytes",
		    root, name, (unsigned)geteuid(), HELPER_PASSWDMAX);
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		die(EXIT_OSERR, "out of memory");
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n < 0)
		die(EXIT_REFUSE, "refused: %s/etc/%s: %s", root, name, strerror(errno));
	/* A NUL byte or a short read would hide the lines after it: fail closed. */
	if (n != st.st_size || memchr(buf, '\0', (size_t)n) != NULL)
		die(EXIT_REFUSE, "refused: %s/etc/%s: a NUL byte or a short read", root, name);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (jail_passwd_uid(line, user) == 0)
			die(EXIT_REFUSE, "refused: user %s is uid 0 in %s/etc/%s", user, root,
			    name);
	}
	free(buf);
}

/* The jail's own password files, below its root (fd rootfd): user must not be uid 0 there. */
static void
check_user_jail(int rootfd, const char *root, const char *user)
{
	struct stat st;
	int etcfd;

	if ((etcfd = openat(rootfd, "etc", DIR_FLAGS)) == -1) {
		if (errno == ENOENT)
			return;
		die(EXIT_REFUSE, "refused: %s/etc: %s", root, strerror(errno));
	}
	if (fstat(etcfd, &st) == -1 || st.st_uid != geteuid() || (st.st_mode & 022) != 0)
		die(EXIT_REFUSE,
		    "refused: %s/etc must be owned by uid %u and not writable by group "
		    "or others",
		    root, (unsigned)geteuid());
	check_user_file(etcfd, root, "passwd", user);
	check_user_file(etcfd, root, "master.passwd", user);
	close(etcfd);
}

/* ---- jail paths ------------------------------------------------------- */

static int
path_strictly_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return p[0] == '/' && p[1] != '\0';
	return strncmp(p, dir, n) == 0 && p[n] == '/' && p[n + 1] != '\0';
}

static void
check_dir_safe(int fd, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode))
		die(EXIT_REFUSE, "refused: %s is not a directory", what);
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0)
		die(EXIT_REFUSE,
		    "refused: %s must be owned by uid %u and not writable by group or "
		    "others",
		    what, (unsigned)geteuid());
}

/*
 * Walk from the base to canon with O_NOFOLLOW; with strict, check every
 * directory.  Returns canon's fd; *parent (when not NULL) gets its parent's.
 */
static int
walk_chain(const char *base, const char *canon, int strict, int *parent)
{
	char rest[PATH_MAX], *comp, *save = NULL;
	int fd, nfd, up = -1;

	if ((fd = open(base, DIR_FLAGS)) == -1)
		die(EXIT_CONFIG, "root base %s: %s", base, strerror(errno));
	if (strict)
		check_dir_safe(fd, base);
	snprintf(rest, sizeof rest, "%s", canon + (strcmp(base, "/") == 0 ? 0 : strlen(base)));
	for (comp = strtok_r(rest, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save)) {
		if ((nfd = openat(fd, comp, DIR_FLAGS)) == -1)
			die(EXIT_REFUSE, "refused: %s: component %s: %s", canon, comp,
			    strerror(errno));
		if (up != -1)
			close(up);
		up = fd;
		fd = nfd;
		if (strict)
			check_dir_safe(fd, comp);
	}
	if (parent != NULL)
		*parent = up;
	else if (up != -1)
		close(up);
	return fd;
}

/* Non-zero when dirfd holds a jail manager's jail.conf or fstab (any kind of entry). */
static int
has_manager_files(int dirfd)
{
	static const char *const names[] = {"jail.conf", "fstab"};
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
			return 1;
	}
	return 0;
}

static int
root_listed(const struct helper *h, const char *canon)
{
	int i;

	for (i = 0; i < h->nroots; i++) {
		if (strcmp(h->roots[i], canon) == 0)
			return 1;
	}
	return 0;
}

/* create PATH: canonical, under the base, safe chain, not a manager's jail unless listed. */
static int
check_path(struct helper *h, const char *path)
{
	char canon[PATH_MAX], given[PATH_MAX];
	int fd, up;
	size_t n;

	helper_resolve_base(h);
	snprintf(given, sizeof given, "%s", path);
	for (n = strlen(given); n > 1 && given[n - 1] == '/'; n--)
		given[n - 1] = '\0';
	if (realpath(path, canon) == NULL)
		die(EXIT_REFUSE, "refused: jail path %s: %s", path, strerror(errno));
	if (strcmp(canon, given) != 0)
		die(EXIT_REFUSE, "refused: jail path %s is not canonical (it resolves to %s)", path,
		    canon);
	if (!path_strictly_under(canon, h->base))
		die(EXIT_REFUSE, "refused: jail path %s is not under the root base %s", canon,
		    h->base);
	fd = walk_chain(h->base, canon, 1, &up);
	if ((has_manager_files(fd) || has_manager_files(up)) && !root_listed(h, canon))
		die(EXIT_REFUSE,
		    "refused: jail path %s has a jail.conf or fstab in or beside it "
		    "(a jail another manager runs); list it as jail_root in %s to allow "
		    "it",
		    canon, h->conf);
	close(up);
	return fd;
}

/* exec NAME: on FreeBSD the running jail's root must lie under the base; its fd, or -1. */
static int
check_jail(struct helper *h, const char *name, char *root, size_t len)
{
	char path[PATH_MAX], err[512];
	int rc;

	rc = helper_os_jail_path(name, path, sizeof path, err, sizeof err);
	if (rc == 1)
		return -1;
	if (rc == -1)
		die(EXIT_REFUSE, "refused: %s", err);
	helper_resolve_base(h);
	if (realpath(path, root) == NULL || strlen(root) >= len ||
	    !path_strictly_under(root, h->base))
		die(EXIT_REFUSE, "refused: jail %s (root %s) is not under the root base %s", name,
		    path, h->base);
	return walk_chain(h->base, root, 0, NULL);
}

/*
 * The launcher must be staged inside the jail's root (fd rootfd): a regular
 * file reached without a symlink.  For create this is the helper's side of
 * "root_path == path": the daemon staged the payload under the same tree the
 * jail will run in.
 */
static void
check_staged(int rootfd, const char *root, const char *launch)
{
	char rest[PATH_MAX], *comp, *next, *save = NULL;
	struct stat st;
	int fd = dup(rootfd), nfd;

	snprintf(rest, sizeof rest, "%s", launch);
	for (comp = strtok_r(rest, "/", &save); comp != NULL && fd != -1; comp = next) {
		next = strtok_r(NULL, "/", &save);
		nfd = openat(fd, comp,
		             next != NULL ? DIR_FLAGS
		                          : O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		close(fd);
		fd = nfd;
	}
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		die(EXIT_REFUSE,
		    "refused: the launcher %s is not staged in the jail's root %s (the jail's "
		    "path and the stage's root must be the same tree)",
		    launch, root);
	close(fd);
}

/* ---- exec ------------------------------------------------------------- */

static char *
xjoin(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s == NULL)
		die(EXIT_OSERR, "out of memory");
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

/* Build the jexec/jail argv (argv[0] is the program's absolute path). */
static char **
build_argv(const struct helper *h, const struct request *r)
{
	char **av = calloc((size_t)r->ncmd + 12, sizeof *av), name[JAIL_EPHEMERAL_NAME_SIZE];
	int n = 0, i;

	if (av == NULL)
		die(EXIT_OSERR, "out of memory");
	av[n++] = xjoin(h->bindir, r->create ? "/jail" : "/jexec");
	if (!r->create) {
		av[n++] = "-U";
		av[n++] = (char *)r->user;
		av[n++] = (char *)r->target;
	} else {
		jail_ephemeral_name(r->target, name, sizeof name);
		av[n++] = "-c";
		av[n++] = xjoin("path=", r->target);
		av[n++] = xjoin("name=", name);
		if (r->ip4 == NULL || strcmp(r->ip4, "inherit") == 0)
			av[n++] = "ip4=inherit";
		else if (strcmp(r->ip4, "disable") == 0 || strcmp(r->ip4, "none") == 0)
			av[n++] = "ip4=disable";
		else
			av[n++] = xjoin("ip4.addr=", r->ip4);
		av[n++] = xjoin("exec.jail_user=", r->user);
	}
	for (i = 0; i < r->ncmd; i++)
		av[n++] = (i == 0 && r->create) ? xjoin("command=", r->cmd[0]) : r->cmd[i];
	return av;
}

static void
become_root(void)
{
	gid_t root_group = 0;

	if (setgroups(1, &root_group) == -1 || setgid(0) == -1 || setuid(0) == -1)
		die(EXIT_OSERR, "cannot become root: %s", strerror(errno));
}

int
main(int argc, char **argv)
{
	char *envp[] = {HELPER_PATH, NULL}, root[PATH_MAX];
	struct request r;
	struct helper h;
	char **av;
	int rootfd;

	helper_sanitize_process();
	parse_request(&r, argc, argv);
	check_values(&r);
	helper_setup(&h);
	check_program(&h, &r);
	check_user_host(r.user);
	if (r.create) {
		rootfd = check_path(&h, r.target);
		snprintf(root, sizeof root, "%s", r.target);
	} else
		rootfd = check_jail(&h, r.target, root, sizeof root);
	if (rootfd != -1) {
		check_user_jail(rootfd, root, r.user);
		check_staged(rootfd, root, r.cmd[1]);
		close(rootfd);
	}
	av = build_argv(&h, &r);
	if (h.privileged)
		become_root();
	execve(av[0], av, envp);
	die(EXIT_OSERR, "cannot execute %s: %s", av[0], strerror(errno));
}
