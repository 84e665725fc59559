/*
 * inventory.c -- collect the runtime inventory manifest.
 *
 * Tools are looked up on PATH (jail and jexec also in /sbin and /usr/sbin,
 * where FreeBSD keeps them).  A tool that is present is run as "TOOL
 * --version" and its first non-empty output line is its version; a tool that
 * fails, prints nothing or outlives the timeout has version null.  The
 * FreeBSD base tools (jexec, jail, mdo) have no --version: their version is
 * the OS release, and they are not looked for on other systems (on Linux
 * "jexec" is Java's jar launcher, not a jail tool).
 */
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "inventory.h"

extern char **environ;

#define INVENTORY_OUT_MAX     4096
#define INVENTORY_VERSION_MAX 200

struct inventory_tool {
	const char *name;
	int base; /* FreeBSD base-system tool: no --version, looked for only on FreeBSD */
};

static const struct inventory_tool inventory_tools[] = {
        {"pi", 0},    {"zot", 0},  {"node", 0}, {"bw", 0},   {"bwrap", 0},
        {"jexec", 1}, {"jail", 1}, {"mdo", 1},  {"sudo", 0}, {NULL, 0},
};

static int
inventory_is_freebsd(const struct utsname *u)
{
	return strcmp(u->sysname, "FreeBSD") == 0;
}

static int
inventory_executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* First executable dir/name along a colon-separated list; caller frees. */
static char *
inventory_search(const char *name, const char *list)
{
	const char *p = list, *end;
	char *dir, *path;

	while (p != NULL) {
		end = strchr(p, ':');
		dir = end != NULL ? xstrndup(p, (size_t)(end - p)) : xstrdup(p);
		path = path_join(*dir != '\0' ? dir : ".", name);
		free(dir);
		if (inventory_executable(path))
			return path;
		free(path);
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

static char *
inventory_which(const char *name, int base)
{
	const char *path = getenv("PATH");
	char *found = inventory_search(name, path != NULL ? path : "/usr/bin:/bin");

	if (found == NULL && base)
		found = inventory_search(name, "/usr/sbin:/sbin");
	return found;
}

static int
inventory_spawn(char *const argv[], int outfd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	int rc;

	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outfd, 1);
	posix_spawn_file_actions_adddup2(&fa, outfd, 2);
	/* Nothing of ours above 2 reaches the tool (glibc >= 2.34, FreeBSD >= 13.1). */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                        POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	rc = posix_spawn(pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

/* Read fd until EOF, the buffer is full or the deadline (monotonic ms). */
static size_t
inventory_drain(int fd, char *out, size_t cap, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t len = 0;
	ssize_t n;
	int64_t left;

	while (len < cap && (left = deadline - mono_ms()) > 0) {
		if (poll(&pfd, 1, (int)left) <= 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n = read(fd, out + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	return len;
}

/* Reap pid by the deadline, else kill its process group; exit status or -1. */
static int
inventory_reap(pid_t pid, int64_t deadline)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	int status;
	pid_t r;

	while ((r = waitpid(pid, &status, WNOHANG)) == 0 && mono_ms() < deadline)
		nanosleep(&ts, NULL);
	if (r == 0) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		return -1;
	}
	if (r == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * Run argv with stdin on /dev/null and stdout+stderr captured into out
 * (NUL-terminated, at most cap-1 bytes).  Returns the exit status, or -1 if
 * it could not start, died by a signal or outlived timeout_ms.
 */
static int
inventory_run(char *const argv[], int timeout_ms, char *out, size_t cap)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int fds[2], rc;
	pid_t pid;
	size_t len;

	out[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) == -1)
		return -1;
	rc = inventory_spawn(argv, fds[1], &pid);
	close(fds[1]);
	if (rc == -1) {
		close(fds[0]);
		return -1;
	}
	len = inventory_drain(fds[0], out, cap - 1, deadline);
	out[len] = '\0';
	close(fds[0]);
	return inventory_reap(pid, deadline);
}

/* The first non-empty line of s, trimmed, printable ASCII only; caller frees or NULL. */
static char *
inventory_first_line(const char *s)
{
	char line[INVENTORY_VERSION_MAX + 1];
	size_t n;

	for (;;) {
		s += strspn(s, " \t\r\n");
		if (*s == '\0')
			return NULL;
		for (n = 0; s[n] != '\0' && s[n] != '\n' && s[n] != '\r' && n < sizeof line - 1;
		     n++)
			line[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			n--;
		if (n > 0)
			break;
		s += strcspn(s, "\n");
	}
	line[n] = '\0';
	return xstrdup(line);
}

static json_t *
inventory_tool_version(const char *path, int timeout_ms)
{
	char out[INVENTORY_OUT_MAX], *line;
	char *argv[] = {(char *)path, (char *)"--version", NULL};
	json_t *v;

	if (inventory_run(argv, timeout_ms, out, sizeof out) != 0)
		return json_null();
	if ((line = inventory_first_line(out)) == NULL)
		return json_null();
	v = json_string(line);
	free(line);
	return v != NULL ? v : json_null();
}

/* {"path", "version"} for a present tool, null for an absent one. */
static json_t *
inventory_tool(const struct inventory_tool *t, const struct utsname *u, int timeout_ms)
{
	char *path;
	json_t *version, *res;

	if (t->base && !inventory_is_freebsd(u))
		return json_null();
	if ((path = inventory_which(t->name, t->base)) == NULL)
		return json_null();
	if (t->base)
		version = json_sprintf("%s %s", u->sysname, u->release);
	else
		version = inventory_tool_version(path, timeout_ms);
	res = json_pack("{s:s, s:o}", "path", path, "version", version);
	free(path);
	return res;
}

/* Can an unprivileged bubblewrap sandbox run here? */
static int
inventory_bwrap_works(const char *bwrap, int timeout_ms)
{
	char out[INVENTORY_OUT_MAX];
	char *argv[] = {
	        (char *)bwrap,           (char *)"--ro-bind",         (char *)"/",    (char *)"/",
	        (char *)"--unshare-all", (char *)"--die-with-parent", (char *)"true", NULL};

	return inventory_run(argv, timeout_ms, out, sizeof out) == 0;
}

static json_t *
inventory_confinement(json_t *tools, const struct utsname *u, int timeout_ms)
{
	const char *bwrap =
	        json_string_value(json_object_get(json_object_get(tools, "bwrap"), "path"));
	int has_bwrap = 0, has_jail = 0;
	json_t *avail = json_array();

	if (strcmp(u->sysname, "Linux") == 0 && bwrap != NULL)
		has_bwrap = inventory_bwrap_works(bwrap, timeout_ms);
	if (inventory_is_freebsd(u))
		has_jail = json_is_object(json_object_get(tools, "jail")) &&
		           json_is_object(json_object_get(tools, "jexec"));
	if (has_bwrap)
		json_array_append_new(avail, json_string("bwrap"));
	if (has_jail)
		json_array_append_new(avail, json_string("jail"));
	return json_pack("{s:b, s:b, s:o}", "bwrap", has_bwrap, "jail", has_jail, "available",
	                 avail);
}

static json_t *
inventory_privilege(json_t *tools)
{
	const char *helper = COLIBRI_LIBEXECDIR "/colibri-jail-spawn";
	int mdo = json_is_object(json_object_get(tools, "mdo"));
	int sudo = json_is_object(json_object_get(tools, "sudo"));
	int has_helper = inventory_executable(helper);
	json_t *avail = json_array();

	if (mdo)
		json_array_append_new(avail, json_string("mdo"));
	if (has_helper)
		json_array_append_new(avail, json_string("helper"));
	if (sudo)
		json_array_append_new(avail, json_string("sudo"));
	json_array_append_new(avail, json_string("none"));
	return json_pack("{s:b, s:b, s:b, s:b, s:s, s:I, s:o}", "mdo", mdo, "helper", has_helper,
	                 "sudo", sudo, "none", 1, "helper_path", helper, "euid",
	                 (json_int_t)geteuid(), "available", avail);
}

static json_t *
inventory_state_dir(const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) == -1)
		return json_pack("{s:s, s:n, s:n, s:s}", "path", dir, "free_bytes", "total_bytes",
		                 "error", strerror(errno));
	return json_pack("{s:s, s:I, s:I}", "path", dir, "free_bytes",
	                 (json_int_t)((unsigned long long)sv.f_bavail * sv.f_frsize), "total_bytes",
	                 (json_int_t)((unsigned long long)sv.f_blocks * sv.f_frsize));
}

/* PRETTY_NAME from /etc/os-release, or null. */
static json_t *
inventory_os_release(void)
{
	char line[512], *v, *end;
	json_t *res = NULL;
	FILE *f;

	if ((f = fopen("/etc/os-release", "re")) == NULL)
		return json_null();
	while (res == NULL && fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "PRETTY_NAME=", 12) != 0)
			continue;
		v = line + 12;
		v[strcspn(v, "\r\n")] = '\0';
		if (*v == '"' || *v == '\'') {
			v++;
			if ((end = strrchr(v, v[-1])) != NULL)
				*end = '\0';
		}
		res = json_string(v);
	}
	fclose(f);
	return res != NULL ? res : json_null();
}

static json_t *
inventory_now(void)
{
	char s[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

static json_t *
inventory_tools_all(const struct utsname *u, int timeout_ms)
{
	const struct inventory_tool *t;
	json_t *tools = json_object();

	for (t = inventory_tools; t->name != NULL; t++)
		json_object_set_new(tools, t->name, inventory_tool(t, u, timeout_ms));
	return tools;
}

json_t *
inventory_collect_opts(const struct inventory_opts *o)
{
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : INVENTORY_TIMEOUT_MS_DEFAULT;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct utsname u;
	json_t *tools;

	if (uname(&u) == -1)
		memset(&u, 0, sizeof u);
	tools = inventory_tools_all(&u, timeout);
	return json_pack(
	        "{s:i, s:s, s:o, s:s, s:o, s:{s:s, s:s}, s:s, s:I, s:I, s:o, s:o, s:o, s:o}",
	        "schema_version", INVENTORY_SCHEMA_VERSION, "colibri_version", COLIBRI_VERSION,
	        "generated_at", inventory_now(), "os", u.sysname, "os_release",
	        inventory_os_release(), "kernel", "release", u.release, "version", u.version,
	        "arch", u.machine, "cpus", (json_int_t)(cpus > 0 ? cpus : 1), "memory_bytes",
	        (json_int_t)(pages > 0 && psize > 0 ? (long long)pages * (long long)psize : 0),
	        "state_dir", inventory_state_dir(o->state_dir != NULL ? o->state_dir : "."),
	        "tools", tools, "confinement", inventory_confinement(tools, &u, timeout),
	        "privilege", inventory_privilege(tools));
}

json_t *
inventory_collect(const char *state_dir)
{
	struct inventory_opts o = {.state_dir = state_dir, .timeout_ms = 0};

	return inventory_collect_opts(&o);
}
