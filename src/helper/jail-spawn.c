/*
 * jail-spawn.c -- colibri-jail-spawn, the narrow setuid helper.
 *
 * The daemon runs unprivileged; on a shared host it reaches jails only
 * through this program (COLIBRI_JAIL_PRIV_MODE=helper), installed in libexec
 * as root:<colibri group> mode 4750 so only the daemon's group can run it.  It
 * does one thing and refuses everything else.  The only requests:
 *
 *   colibri-jail-spawn exec [-U USER] NAME -- PROGRAM [ARG...]
 *       -> /usr/sbin/jexec [-U USER] NAME PROGRAM [ARG...]
 *   colibri-jail-spawn create [-4 IP4] [-U USER] PATH -- PROGRAM [ARG...]
 *       -> /usr/sbin/jail -c path=PATH name=colibri-<last component>
 *          ip4.addr=IP4|ip4=inherit|ip4=disable [exec.jail_user=USER]
 *          command=PROGRAM [ARG...]
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
 *            a component between the check and jail(8).
 *   USER     [A-Za-z0-9_][A-Za-z0-9_.-]{0,31}.   IP4  address|inherit|disable.
 *   PROGRAM  absolute (it is resolved inside the jail).
 *
 * The root base (default /usr/local/bastille/jails) comes, when running
 * setuid, only from the compile-time default or from the root-owned file
 * COLIBRI_HELPER_CONF (`root_base = /path`; must be a regular file owned by
 * root and not writable by group/others).  The caller's environment is never
 * consulted then: COLIBRI_JAIL_ROOT_BASE from an unprivileged caller would
 * let it choose which directories count as jails.  When NOT running setuid
 * (getuid() == geteuid(), no secure-exec flag: root itself, or tests) the
 * environment may set COLIBRI_JAIL_ROOT_BASE, COLIBRI_JAIL_SPAWN_CONFIG (the
 * config file; ownership required: the effective uid) and
 * COLIBRI_JAIL_SPAWN_TEST_BINDIR (a directory holding stand-in jexec/jail).
 *
 * Before exec: stdio is guaranteed open, descriptors above 2 are closed,
 * signals are reset to default and unblocked, the umask is 022, the
 * environment is replaced by PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:
 * /usr/local/bin, and a setuid run becomes fully root (groups, gid, uid) so
 * the jailed shell does not drop privileges over a ruid/euid mismatch.
 *
 * Exit codes (else the exec'd jexec/jail's own status):
 *   64 malformed request (verb, options, missing "--", extra arguments)
 *   65 invalid value (name, user, ip4, path syntax, program not absolute)
 *   77 refused: path not canonical, outside the base, unsafe ownership or
 *      mode, jail not managed (outside the base)
 *   78 configuration: root base or config file missing or unsafe
 *   71 operating system error (cannot become root, exec failed)
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confine/jail-name.h"
#include "helper/helper-os.h"

#define EXIT_BADREQ    64
#define EXIT_BADVAL    65
#define EXIT_OSERR     71
#define EXIT_REFUSE    77
#define EXIT_CONFIG    78
#define HELPER_ARGS    256
#define HELPER_PATH    "PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
#define HELPER_CONFMAX 4096

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
	char base[PATH_MAX]; /* canonical root base */
	char bindir[PATH_MAX];
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
		die(EXIT_BADREQ,
		    "refused: usage: colibri-jail-spawn exec [-U USER] NAME -- PROGRAM "
		    "[ARG...] | create [-4 IP4] [-U USER] PATH -- PROGRAM [ARG...]");
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
}

static void
check_values(const struct request *r)
{
	const char *err;

	if (!r->create && (err = jail_name_check(r->target)) != NULL)
		die(EXIT_BADVAL, "refused: jail name %s", err);
	if (r->create && (err = jail_path_check(r->target)) != NULL)
		die(EXIT_BADVAL, "refused: jail path %s", err);
	if (r->user != NULL && (err = jail_user_check(r->user)) != NULL)
		die(EXIT_BADVAL, "refused: user %s", err);
	if (r->ip4 != NULL && (err = jail_ip4_check(r->ip4)) != NULL)
		die(EXIT_BADVAL, "refused: ip4 %s", err);
	if (r->cmd[0][0] != '/')
		die(EXIT_BADVAL, "refused: program %s must be an absolute path", r->cmd[0]);
}

/* The file must be a regular file owned by the effective uid, not writable by group/others. */
static int
config_open(const char *path)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return -1;
		die(EXIT_CONFIG, "config %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		die(EXIT_CONFIG, "config %s is not a regular file", path);
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0)
		die(EXIT_CONFIG,
		    "config %s must be owned by uid %u and not writable by group or "
		    "others",
		    path, (unsigned)geteuid());
	return fd;
}

static void
config_line(char *line, const char *path, char *base, size_t len)
{
	char *key, *val, *end;

	line += strspn(line, " \t");
	if (*line == '#' || *line == '\0')
		return;
	key = line;
	if ((val = strchr(line, '=')) == NULL)
		die(EXIT_CONFIG, "config %s: expected key = value: %s", path, line);
	*val++ = '\0';
	for (end = val - 2; end >= key && (*end == ' ' || *end == '\t'); end--)
		*end = '\0';
	val += strspn(val, " \t");
	for (end = val + strlen(val); end > val && (end[-1] == ' ' || end[-1] == '\t'); end--)
		end[-1] = '\0';
	if (strcmp(key, "root_base") != 0)
		die(EXIT_CONFIG, "config %s: unknown key %s", path, key);
	if (val[0] != '/' || strlen(val) >= len)
		die(EXIT_CONFIG, "config %s: root_base must be an absolute path", path);
	memcpy(base, val, strlen(val) + 1);
}

/* Read root_base from the config file into base; leaves base alone if the file is absent. */
static void
config_read(const char *path, char *base, size_t len)
{
	char buf[HELPER_CONFMAX + 1], *line, *save = NULL;
	ssize_t n;
	int fd;

	if ((fd = config_open(path)) == -1)
		return;
	n = read(fd, buf, HELPER_CONFMAX);
	close(fd);
	if (n < 0 || n == HELPER_CONFMAX)
		die(EXIT_CONFIG, "config %s: unreadable or larger than %d bytes", path,
		    HELPER_CONFMAX);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		config_line(line, path, base, len);
}

static void
helper_setup(struct helper *h)
{
	char base[PATH_MAX] = COLIBRI_HELPER_ROOT_BASE;
	const char *conf = COLIBRI_HELPER_CONF, *v;

	h->privileged = helper_os_privileged();
	snprintf(h->bindir, sizeof h->bindir, "/usr/sbin");
	if (!h->privileged && (v = getenv("COLIBRI_JAIL_SPAWN_CONFIG")) != NULL && *v != '\0')
		conf = v;
	config_read(conf, base, sizeof base);
	if (!h->privileged && (v = getenv("COLIBRI_JAIL_ROOT_BASE")) != NULL && *v != '\0')
		snprintf(base, sizeof base, "%s", v);
	if (!h->privileged && (v = getenv("COLIBRI_JAIL_SPAWN_TEST_BINDIR")) != NULL && *v != '\0')
		snprintf(h->bindir, sizeof h->bindir, "%s", v);
	if (realpath(base, h->base) == NULL)
		die(EXIT_CONFIG, "root base %s: %s", base, strerror(errno));
}

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

/* Walk from the base to canon with O_NOFOLLOW, checking every directory. */
static void
check_chain(const char *base, const char *canon)
{
	char rest[PATH_MAX], *comp, *save = NULL;
	int fd, nfd;

	if ((fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		die(EXIT_CONFIG, "root base %s: %s", base, strerror(errno));
	check_dir_safe(fd, base);
	snprintf(rest, sizeof rest, "%s", canon + (strcmp(base, "/") == 0 ? 0 : strlen(base)));
	for (comp = strtok_r(rest, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save)) {
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd == -1)
			die(EXIT_REFUSE, "refused: %s: component %s: %s", canon, comp,
			    strerror(errno));
		close(fd);
		fd = nfd;
		check_dir_safe(fd, comp);
	}
	close(fd);
}

static void
check_path(const struct helper *h, const char *path)
{
	char canon[PATH_MAX], given[PATH_MAX];
	size_t n;

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
	check_chain(h->base, canon);
}

static void
check_jail(const struct helper *h, const char *name)
{
	char path[PATH_MAX], canon[PATH_MAX], err[512];
	int rc;

	rc = helper_os_jail_path(name, path, sizeof path, err, sizeof err);
	if (rc == 1)
		return;
	if (rc == -1)
		die(EXIT_REFUSE, "refused: %s", err);
	if (realpath(path, canon) == NULL || !path_strictly_under(canon, h->base))
		die(EXIT_REFUSE, "refused: jail %s (root %s) is not under the root base %s", name,
		    path, h->base);
}

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
	if (!r->create && r->user != NULL) {
		av[n++] = "-U";
		av[n++] = (char *)r->user;
	}
	if (!r->create)
		av[n++] = (char *)r->target;
	if (r->create) {
		jail_ephemeral_name(r->target, name, sizeof name);
		av[n++] = "-c";
		av[n++] = xjoin("path=", r->target);
		av[n++] = xjoin("name=", name);
		if (r->ip4 == NULL || strcmp(r->ip4, "inherit") == 0)
			av[n++] = "ip4=inherit";
		else if (strcmp(r->ip4, "disable") == 0)
			av[n++] = "ip4=disable";
		else
			av[n++] = xjoin("ip4.addr=", r->ip4);
		if (r->user != NULL)
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
	char *envp[] = {HELPER_PATH, NULL};
	struct request r;
	struct helper h;
	char **av;

	helper_sanitize_process();
	parse_request(&r, argc, argv);
	check_values(&r);
	helper_setup(&h);
	if (r.create)
		check_path(&h, r.target);
	else
		check_jail(&h, r.target);
	av = build_argv(&h, &r);
	if (h.privileged)
		become_root();
	execve(av[0], av, envp);
	die(EXIT_OSERR, "cannot execute %s: %s", av[0], strerror(errno));
}
