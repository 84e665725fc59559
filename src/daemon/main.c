/*
 * main.c -- colibri-daemon: options, state directory, lock, signals, loop.
 *
 * Start-up is strict: any problem with the state directory, the lock, the
 * database or the socket is fatal with a message that names the path.  Once
 * running, signals only set state through libuv's signal handles:
 * SIGTERM/SIGINT begin an orderly shutdown (stop accepting, finish what
 * was read, stop agents, commit, close the database, exit 0), SIGHUP
 * reopens the log file and reloads the agent profiles of --config-dir
 * (daemon/profiles.c; a bad file keeps the old ones).
 *
 * Files: every directory of the daemon's is 0700, or 0750 when the socket
 * lies under it (the socket's group must traverse it to connect, as in the
 * --state-dir layout where the socket is STATE/colibri.sock); every file it
 * keeps there is 0600 (the database and its -wal and -shm: store-sqlite.c;
 * the lock; the log it creates), whatever the directory's group.
 *
 * --sync full makes a commit survive a crash of the OS or a power loss,
 * not only a crash of the daemon (store_set_sync); the default is normal.
 *
 * Descriptors: whatever the daemon inherited above 2 (a shell's, a service
 * manager's, a test's) is closed before anything is opened, so no child --
 * and no sandboxed agent -- can reach a host directory or socket through
 * /proc/self/fd.  Children get only 0-2 as well (proc.c closes the rest).
 *
 * --store URL puts the state in PostgreSQL instead of the SQLite file, so
 * several daemons (one per host, each with its own state directory and
 * socket) share one board; events committed through the others reach this
 * daemon's subscribers through the store's LISTEN connection, watched here
 * with a uv_poll handle (store_notify_fd/store_notify_read).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/paths.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/server.h"
#include "daemon/notify.h"
#include "daemon/dispatch.h"
#include "daemon/profiles.h"
#include "daemon/retention.h"
#include "daemon/spawner.h"
#include "daemon/subsys.h"
#include "daemon/sweep.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "daemon/vmsteps.h"
#include "store/store.h"

struct daemon D;

static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t shutdown_timer;
static int64_t shutdown_deadline;
static int lock_fd = -1;
static char *store_url; /* --store: a PostgreSQL URL, or NULL for the SQLite file */
static uv_poll_t notify_poll;
static uv_timer_t notify_retry;
static int notify_polling;
static int sync_full; /* --sync full */

static void __attribute__((noreturn)) usage(int code)
{
	fprintf(code ? stderr : stdout,
	        "usage: colibri-daemon [--state-dir DIR] [--socket PATH] [--db PATH]\n"
	        "                      [--group GROUP] [--admin-group GROUP] [--no-spawn]\n"
	        "                      [--allow-unconfined]\n"
	        "                      [--log-level error|warn|info|debug]\n"
	        "                      [--log FILE] [--foreground] [--max-line BYTES]\n"
	        "                      [--max-clients N] [--max-output BYTES] [--stall-ms MS]\n"
	        "                      [--max-output-total BYTES] [--max-reply BYTES]\n"
	        "                      [--max-clients-per-uid N] [--admin-slots N]\n"
	        "                      [--line-timeout-ms MS]\n"
	        "                      [--kill-grace-ms MS] [--store URL] [--host-id ID]\n"
	        "                      [--sync normal|full] [--agent-user USER]\n"
	        "                      [--config-dir DIR]\n"
	        "                      [--version]\n");
	exit(code);
}

static long long
parse_num(const char *opt, const char *s, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
		fprintf(stderr, "colibri-daemon: %s wants a number from %lld to %lld\n", opt, min,
		        max);
		exit(EXIT_USAGE);
	}
	return v;
}

static char *
absolute(const char *p)
{
	char cwd[4096];

	if (p[0] == '/')
		return xstrdup(p);
	if (getcwd(cwd, sizeof cwd) == NULL)
		fatal("getcwd");
	return path_join(cwd, p);
}

/* The getopt codes of the long options that have no short letter. */
enum {
	OPT_MAX_LINE = 1,
	OPT_MAX_CLIENTS = 2,
	OPT_MAX_OUTPUT = 3,
	OPT_STALL_MS = 4,
	OPT_KILL_GRACE_MS = 5,
	OPT_ADMIN_GROUP = 6,
	OPT_NO_SPAWN = 7,
	OPT_STORE = 8,
	OPT_HOST_ID = 9,
	OPT_MAX_OUTPUT_TOTAL = 10,
	OPT_MAX_REPLY = 11,
	OPT_MAX_CLIENTS_PER_UID = 12,
	OPT_ADMIN_SLOTS = 13,
	OPT_LINE_TIMEOUT_MS = 14,
	OPT_SYNC = 20,
	OPT_ALLOW_UNCONFINED = 21,
	OPT_AGENT_USER = 22,
	OPT_CONFIG_DIR = 23,
};

static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"socket", required_argument, NULL, 'S'},
        {"db", required_argument, NULL, 'd'},
        {"group", required_argument, NULL, 'g'},
        {"admin-group", required_argument, NULL, OPT_ADMIN_GROUP},
        {"no-spawn", no_argument, NULL, OPT_NO_SPAWN},
        {"allow-unconfined", no_argument, NULL, OPT_ALLOW_UNCONFINED},
        {"log-level", required_argument, NULL, 'l'},
        {"log", required_argument, NULL, 'L'},
        {"foreground", no_argument, NULL, 'f'},
        {"max-line", required_argument, NULL, OPT_MAX_LINE},
        {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
        {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
        {"stall-ms", required_argument, NULL, OPT_STALL_MS},
        {"kill-grace-ms", required_argument, NULL, OPT_KILL_GRACE_MS},
        {"store", required_argument, NULL, OPT_STORE},
        {"host-id", required_argument, NULL, OPT_HOST_ID},
        {"sync", required_argument, NULL, OPT_SYNC},
        {"max-output-total", required_argument, NULL, OPT_MAX_OUTPUT_TOTAL},
        {"max-reply", required_argument, NULL, OPT_MAX_REPLY},
        {"max-clients-per-uid", required_argument, NULL, OPT_MAX_CLIENTS_PER_UID},
        {"admin-slots", required_argument, NULL, OPT_ADMIN_SLOTS},
        {"line-timeout-ms", required_argument, NULL, OPT_LINE_TIMEOUT_MS},
        {"agent-user", required_argument, NULL, OPT_AGENT_USER},
        {"config-dir", required_argument, NULL, OPT_CONFIG_DIR},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* The numeric options: their bounds, and the field each sets (of the type it has). */
enum num_type { NUM_SIZE, NUM_INT, NUM_INT64 };

static const struct num_opt {
	int code;
	const char *flag;
	long long min, max;
	enum num_type type;
	void *field;
} num_opts[] = {
        {OPT_MAX_LINE, "--max-line", 1024, 1LL << 30, NUM_SIZE, &D.cfg.max_line},
        {OPT_MAX_CLIENTS, "--max-clients", 1, 1000000, NUM_INT, &D.cfg.max_clients},
        {OPT_MAX_OUTPUT, "--max-output", 65536, 1LL << 32, NUM_SIZE, &D.cfg.max_output},
        {OPT_MAX_OUTPUT_TOTAL, "--max-output-total", 1 << 20, 1LL << 40, NUM_SIZE,
         &D.cfg.max_output_total},
        {OPT_MAX_REPLY, "--max-reply", 65536, 1LL << 32, NUM_SIZE, &D.cfg.max_reply},
        {OPT_MAX_CLIENTS_PER_UID, "--max-clients-per-uid", 1, 1000000, NUM_INT,
         &D.cfg.max_clients_per_uid},
        {OPT_ADMIN_SLOTS, "--admin-slots", 0, 1000000, NUM_INT, &D.cfg.admin_slots},
        {OPT_LINE_TIMEOUT_MS, "--line-timeout-ms", 100, 86400000, NUM_INT64,
         &D.cfg.line_timeout_ms},
        {OPT_STALL_MS, "--stall-ms", 100, 86400000, NUM_INT64, &D.cfg.stall_ms},
        {OPT_KILL_GRACE_MS, "--kill-grace-ms", 0, 600000, NUM_INT64, &D.cfg.kill_grace_ms},
};

/* A numeric option: checked against its bounds and stored; 0 if ch is not one. */
static int
set_num_opt(int ch, const char *arg)
{
	const struct num_opt *n = NULL;
	long long v;
	size_t i;

	for (i = 0; i < sizeof num_opts / sizeof num_opts[0] && n == NULL; i++)
		if (num_opts[i].code == ch)
			n = &num_opts[i];
	if (n == NULL)
		return 0;
	v = parse_num(n->flag, arg, n->min, n->max);
	switch (n->type) {
	case NUM_SIZE:
		*(size_t *)n->field = (size_t)v;
		break;
	case NUM_INT:
		*(int *)n->field = (int)v;
		break;
	case NUM_INT64:
		*(int64_t *)n->field = v;
		break;
	}
	if (ch == OPT_ADMIN_SLOTS)
		D.cfg.admin_slots_set = 1;
	return 1;
}

/* The options taken as given: paths, group names, switches; 0 if ch is not one. */
static int
set_plain_opt(int ch, const char *arg, int *foreground)
{
	struct daemon_config *c = &D.cfg;

	switch (ch) {
	case 's':
		c->state_dir = absolute(arg);
		break;
	case 'S':
		c->socket_path = absolute(arg);
		break;
	case OPT_CONFIG_DIR:
		free(c->config_dir);
		c->config_dir = absolute(arg);
		break;
	case 'd':
		c->db_path = absolute(arg);
		break;
	case 'L':
		c->log_path = absolute(arg);
		break;
	case 'g':
		free(c->group);
		c->group = xstrdup(arg);
		break;
	case OPT_ADMIN_GROUP:
		free(c->admin_group);
		c->admin_group = xstrdup(arg);
		break;
	case OPT_NO_SPAWN:
		c->spawn_disabled = 1;
		break;
	case OPT_ALLOW_UNCONFINED:
		c->allow_unconfined = 1;
		break;
	case 'f':
		*foreground = 1;
		break;
	default:
		return 0;
	}
	return 1;
}

/* --host-id: the name this daemon gives itself in the store; it must fit D.hostname. */
static void
set_host_id(const char *arg)
{
	if (*arg == '\0' || strlen(arg) >= sizeof D.hostname) {
		fprintf(stderr, "colibri-daemon: --host-id wants 1 to %zu bytes\n",
		        sizeof D.hostname - 1);
		exit(EXIT_USAGE);
	}
	snprintf(D.hostname, sizeof D.hostname, "%s", arg);
}

/* --agent-user: a user that exists. */
static void
set_agent_user(const char *arg)
{
	if (*arg == '\0' || getpwnam(arg) == NULL) {
		fprintf(stderr, "colibri-daemon: --agent-user %s: no such user\n", arg);
		exit(EXIT_USAGE);
	}
	free(D.cfg.agent_user);
	D.cfg.agent_user = xstrdup(arg);
}

/* The options whose value is checked here (a usage error names it); 0 if ch is not one. */
static int
set_checked_opt(int ch, const char *arg, enum log_level *level)
{
	switch (ch) {
	case 'l':
		if (log_parse_level(arg, level) == -1) {
			fprintf(stderr, "colibri-daemon: unknown log level %s\n", arg);
			exit(EXIT_USAGE);
		}
		break;
	case OPT_STORE:
		free(store_url);
		store_url = xstrdup(arg);
		break;
	case OPT_HOST_ID:
		set_host_id(arg);
		break;
	case OPT_SYNC:
		if (strcmp(arg, "normal") != 0 && strcmp(arg, "full") != 0) {
			fprintf(stderr, "colibri-daemon: --sync wants normal or full\n");
			exit(EXIT_USAGE);
		}
		sync_full = strcmp(arg, "full") == 0;
		break;
	case OPT_AGENT_USER:
		set_agent_user(arg);
		break;
	default:
		return 0;
	}
	return 1;
}

static void
parse_args(int argc, char **argv, int *foreground, enum log_level *level)
{
	int ch;

	while ((ch = getopt_long(argc, argv, "fhV", opts, NULL)) != -1) {
		if (set_num_opt(ch, optarg) || set_plain_opt(ch, optarg, foreground) ||
		    set_checked_opt(ch, optarg, level))
			continue;
		switch (ch) {
		case 'V':
			printf("colibri-daemon %s (protocol %d; stores: %s)\n", COLIBRI_VERSION,
			       COLIBRI_PROTOCOL_VERSION, store_backends_built());
			exit(0);
		case 'h':
			usage(0);
		default:
			usage(EXIT_USAGE);
		}
	}
	if (optind != argc)
		usage(EXIT_USAGE);
}

/* Fill unset paths from the state dir or the OS defaults. */
static void
resolve_paths(void)
{
	struct daemon_config *c = &D.cfg;
	const char *data = c->state_dir != NULL ? c->state_dir : PATH_DEFAULT_DATA;

	if (c->socket_path == NULL)
		c->socket_path = c->state_dir != NULL ? path_join(c->state_dir, "colibri.sock")
		                                      : xstrdup(PATH_DEFAULT_SOCKET);
	if (c->db_path == NULL)
		c->db_path = c->state_dir != NULL ? path_join(c->state_dir, "colibri.sqlite")
		                                  : xstrdup(PATH_DEFAULT_DB);
	c->sessions_dir = path_join(data, "sessions");
	if (c->config_dir == NULL)
		c->config_dir = xstrdup(PATH_DEFAULT_CONFIG_DIR);
	if (c->max_line == 0)
		c->max_line = COLIBRI_MAX_LINE_DEFAULT;
	if (c->max_clients == 0)
		c->max_clients = 1024;
	if (c->max_output == 0)
		c->max_output = 8 * 1024 * 1024;
	if (c->max_output_total == 0)
		c->max_output_total = 64 * 1024 * 1024;
	if (c->max_reply == 0 || c->max_reply > c->max_output)
		c->max_reply = c->max_output; /* one reply always fits a client's output */
	if (c->max_reply > c->max_output_total / 2)
		c->max_reply = c->max_output_total / 2; /* and leaves room for everyone else's */
	if (c->max_clients_per_uid == 0)
		c->max_clients_per_uid = 256;
	if (!c->admin_slots_set)
		c->admin_slots = c->max_clients >= 64 ? 16 : c->max_clients / 4;
	if (c->admin_slots >= c->max_clients) {
		fprintf(stderr,
		        "colibri-daemon: --admin-slots %d leaves no slot of --max-clients %d for "
		        "other users\n",
		        c->admin_slots, c->max_clients);
		exit(EXIT_USAGE);
	}
	if (c->line_timeout_ms == 0)
		c->line_timeout_ms = 30000;
	if (c->stall_ms == 0)
		c->stall_ms = 120000;
	if (c->kill_grace_ms == 0)
		c->kill_grace_ms = 3000;
}

/* Refuse dir unless it is a real directory (not a symlink) owned by the daemon's uid. */
static void
check_own_dir(const char *dir, const struct stat *sb)
{
	if (!S_ISDIR(sb->st_mode))
		fatalx("%s is not a directory (a symlink is refused)", dir);
	if (sb->st_uid != D.uid)
		fatalx("%s belongs to uid %ld, not to the daemon's uid %ld", dir, (long)sb->st_uid,
		       (long)D.uid);
}

/* Give dir at most mode max (0750, 0700), with a log line when it was wider. */
static void
narrow_dir_mode(const char *dir, const struct stat *sb, mode_t max)
{
	if ((sb->st_mode & 0777 & ~max) == 0)
		return;
	log_warnx("%s had mode %04o; setting %04o", dir, (unsigned)(sb->st_mode & 07777),
	          (unsigned)max);
	if (chmod(dir, max) == -1)
		fatal("chmod %s", dir);
}

/*
 * The most a directory of ours may allow: 0750 when the socket lies under
 * it (its group must traverse it to connect), else 0700.
 */
static mode_t
private_dir_max(const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(D.cfg.socket_path, dir, n) == 0 && D.cfg.socket_path[n] == '/' ? 0750 : 0700;
}

/* Create a directory of ours, private_dir_max at most; refuse a symlink or a stranger's. */
static void
ensure_private_dir(const char *dir)
{
	mode_t max = private_dir_max(dir);
	struct stat sb;

	if (mkdir_p(dir, max) == -1)
		fatal("cannot create %s", dir);
	if (lstat(dir, &sb) == -1)
		fatal("%s", dir);
	check_own_dir(dir, &sb);
	narrow_dir_mode(dir, &sb, max);
}

/* A directory made later (the vault's): if it is there already, ours and 0700 at most. */
static void
check_later_dir(const char *dir)
{
	struct stat sb;

	if (lstat(dir, &sb) == -1) {
		if (errno != ENOENT)
			fatal("%s", dir);
		return;
	}
	check_own_dir(dir, &sb);
	narrow_dir_mode(dir, &sb, 0700);
}

/*
 * Before the log is opened: the state directory, if there, must be ours (the
 * log file may live in it), and the log file must not be a symlink (it is
 * opened for appending, which would follow one).  Messages go to stderr.
 */
static void
check_before_log(void)
{
	const char *log = D.cfg.log_path;
	struct stat sb;

	if (D.cfg.state_dir != NULL && lstat(D.cfg.state_dir, &sb) == 0)
		check_own_dir(D.cfg.state_dir, &sb);
	if (log != NULL && lstat(log, &sb) == 0 && !S_ISREG(sb.st_mode))
		fatalx("log file %s is not a regular file (a symlink is refused)", log);
}

static char *
dir_of(const char *path)
{
	char *d = xstrdup(path), *s = strrchr(d, '/');

	if (s != NULL && s != d)
		*s = '\0';
	return d;
}

/*
 * One daemon per database: an flock'd lock file beside it holding our pid.
 * On PostgreSQL, where daemons share the database, one daemon per socket.
 */
static void
take_lock(void)
{
	char *path, pid[32], other[32] = "";
	ssize_t n;
	int lock_tries = 0;

	xasprintf(&path, "%s.lock", store_url != NULL ? D.cfg.socket_path : D.cfg.db_path);
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd == -1)
		fatal("lock file %s", path);
	if (fchmod(lock_fd, 0600) == -1) /* one an older daemon left wider */
		fatal("chmod %s", path);
	while (flock(lock_fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK)
			fatal("lock %s", path);
		n = pread(lock_fd, other, sizeof other - 1, 0);
		other[n > 0 ? n : 0] = '\0';
		other[strcspn(other, "\n")] = '\0';
		/*
		 * The daemon that wrote its pid is gone, yet the lock is held: a child it forked
		 * the moment it was killed, not yet at its exec (which closes the lock).  Wait a
		 * little for that, never for a live daemon.
		 */
		if (lock_tries++ < 50 && atol(other) > 0 && kill((pid_t)atol(other), 0) == -1 &&
		    errno == ESRCH) {
			usleep(100 * 1000);
			continue;
		}
		fatalx("another colibri-daemon (pid %s) is running on %s", *other ? other : "?",
		       store_url != NULL ? D.cfg.socket_path : D.cfg.db_path);
	}
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(lock_fd, 0) == -1 || pwrite(lock_fd, pid, strlen(pid), 0) == -1)
		log_warn("writing %s", path);
	free(path);
}

static gid_t
group_id(const char *opt, const char *name)
{
	struct group *gr;

	if ((gr = getgrnam(name)) == NULL)
		fatalx("%s: unknown group %s", opt, name);
	return gr->gr_gid;
}

/* --group: who may connect (the socket's group); --admin-group: who is privileged. */
static void
resolve_groups(void)
{
	struct daemon_config *c = &D.cfg;

	if (c->group != NULL) {
		c->group_gid = group_id("--group", c->group);
		c->have_group_gid = 1;
	}
	if (c->admin_group != NULL) {
		c->admin_gid = group_id("--admin-group", c->admin_group);
		c->have_admin_gid = 1;
	}
}

/*
 * Raise the soft descriptor limit to the hard one: each client and each
 * spawned agent costs descriptors, and the usual soft limit of 1024 would
 * run out before --max-clients (1024), so connections past it would be
 * dropped by accept(2) failing instead of answered with unavailable.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)D.cfg.max_clients + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == rl.rlim_max)
		goto check;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("raising RLIMIT_NOFILE to %llu", (unsigned long long)rl.rlim_cur);
check:
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
		log_warnx("only %llu descriptors for --max-clients %d; clients past the limit "
		          "will be dropped",
		          (unsigned long long)rl.rlim_cur, D.cfg.max_clients);
}

/* Events other daemons committed (PostgreSQL): publish them like our own. */
static void
store_event_sink(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	size_t len;
	char *line = events_line(seq, ts, topic, data, &len);

	(void)arg;
	server_publish(seq, topic, line, len);
	free(line);
}

static void notify_start(void);

static void
notify_retry_cb(uv_timer_t *t)
{
	(void)t;
	if (store_notify_read(D.store) == -1) {
		uv_timer_start(&notify_retry, notify_retry_cb, 1000, 0);
		return;
	}
	log_info("LISTEN connection to the store is back");
	notify_start();
}

static void
notify_closed(uv_handle_t *h)
{
	(void)h;
	if (!D.shutting_down)
		uv_timer_start(&notify_retry, notify_retry_cb, 1000, 0);
}

static void
on_notify(uv_poll_t *h, int status, int events)
{
	(void)events;
	if (status == 0 && store_notify_read(D.store) != -1)
		return;
	log_warnx("lost the LISTEN connection to the store; other hosts' events wait until it is "
	          "back");
	uv_poll_stop(h);
	notify_polling = 0;
	uv_close((uv_handle_t *)h, notify_closed);
}

/* Watch the store's LISTEN connection, if it has one (PostgreSQL). */
static void
notify_start(void)
{
	int fd = store_notify_fd(D.store);

	if (fd < 0)
		return;
	uv_poll_init(D.loop, &notify_poll, fd);
	uv_poll_start(&notify_poll, UV_READABLE, on_notify);
	uv_unref((uv_handle_t *)&notify_poll);
	notify_polling = 1;
}

static void
notify_close(void)
{
	uv_timer_stop(&notify_retry);
	uv_close((uv_handle_t *)&notify_retry, NULL);
	if (notify_polling) {
		uv_poll_stop(&notify_poll);
		uv_close((uv_handle_t *)&notify_poll, NULL);
		notify_polling = 0;
	}
}

static void
finish(void)
{
	log_info("shut down");
	uv_timer_stop(&shutdown_timer);
	uv_close((uv_handle_t *)&shutdown_timer, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	subsys_close();
	notify_close();
	sweep_close();
	txn_close();
	server_close();
	events_close();
}

static void
shutdown_tick(uv_timer_t *t)
{
	(void)t;
	server_commit();
	server_flush_all();
	if ((subsys_busy() || server_output_pending()) && now_ms() < shutdown_deadline)
		return;
	finish();
}

void
daemon_shutdown(void)
{
	if (D.shutting_down)
		return;
	D.shutting_down = 1;
	log_info("shutting down");
	server_stop_accepting();
	subsys_shutdown();
	shutdown_deadline = now_ms() + D.cfg.kill_grace_ms + 5000;
	uv_timer_start(&shutdown_timer, shutdown_tick, 0, 20);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	if (signum == SIGHUP) {
		if (log_reopen() == -1)
			log_warn("reopening the log");
		else
			log_info("log reopened");
		profiles_reload();
		notify_reload();
		dispatch_reload();
		retention_reload();
		return;
	}
	daemon_shutdown();
}

static void
start_signals(void)
{
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(D.loop, &sig_term);
	uv_signal_init(D.loop, &sig_int);
	uv_signal_init(D.loop, &sig_hup);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	uv_timer_init(D.loop, &shutdown_timer);
}

static void
open_store(void)
{
	struct store_err e;

	if ((D.store = store_open(store_url != NULL ? store_url : D.cfg.db_path, &e)) == NULL)
		fatalx("database %s: %s", store_url != NULL ? "(--store)" : D.cfg.db_path, e.msg);
	store_set_host(D.store, D.hostname);
	if (store_set_sync(D.store, sync_full, &e) == -1)
		fatalx("database %s: %s", store_url != NULL ? "(--store)" : D.cfg.db_path, e.msg);
	if (store_url != NULL) {
		/* status and the logs show the URL without its password */
		free(D.cfg.db_path);
		D.cfg.db_path = xstrdup(store_path(D.store));
	}
	store_set_event_sink(D.store, store_event_sink, NULL);
	uv_timer_init(D.loop, &notify_retry);
	notify_start();
}

/*
 * The directories and the lock, in this order: the state directory, the
 * database's (SQLite), the lock beside the database, the sessions, and the
 * vault's if it is there already.
 */
static void
prepare_dirs(void)
{
	char *dir, *vault;

	if (D.cfg.state_dir != NULL)
		ensure_private_dir(D.cfg.state_dir);
	if (store_url == NULL) {
		dir = dir_of(D.cfg.db_path);
		ensure_private_dir(dir);
		free(dir);
	}
	take_lock();
	ensure_private_dir(D.cfg.sessions_dir);
	vault = path_join(D.cfg.state_dir != NULL ? D.cfg.state_dir : PATH_DEFAULT_DATA, "vault");
	check_later_dir(vault);
	free(vault);
}

/* Without --foreground: fork into the background, then rewrite the pid in the lock file. */
static void
detach(void)
{
	char pid[32];

	if (daemon(1, 0) == -1)
		fatal("daemon");
	if (lock_fd == -1)
		return;
	/* The pid in the lock file changed with the fork. */
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(lock_fd, 0) == -1 || pwrite(lock_fd, pid, strlen(pid), 0) == -1)
		log_warn("lock file");
}

/* Each agent's run inherits a connection of the server's (the spawner cannot reach it). */
static const struct spawner_channel agent_channel = {server_channel_open, server_channel_close};

/*
 * Tests only (man colibri-daemon, TEST FACILITIES): a clock that can jump ahead, and each
 * request's SQLite steps.  0 (each flag set when on), or -1 after saying why on stderr.
 */
static int
test_facilities(int *test_clock, int *vm_steps)
{
	if ((*test_clock = now_ms_test_init(getenv("COLIBRI_TEST_CLOCK_OFFSET_FILE"))) == -1) {
		fprintf(stderr, "colibri-daemon: COLIBRI_TEST_CLOCK_OFFSET_FILE: %s\n",
		        strerror(errno));
		return -1;
	}
	if ((*vm_steps = vmsteps_init(getenv("COLIBRI_TEST_VM_STEPS_FILE"))) == -1) {
		fprintf(stderr, "colibri-daemon: COLIBRI_TEST_VM_STEPS_FILE: %s\n",
		        strerror(errno));
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	enum log_level level = LOG_LEVEL_INFO;
	int foreground = 0, test_clock, vm_steps;
	char *cause = NULL;

	/* Before anything is opened: nothing inherited reaches a child. */
	closefrom(3);
	umask(0027);
	D.uid = geteuid();
	if (test_facilities(&test_clock, &vm_steps) == -1)
		return 1;
	D.started_ms = now_ms();
	if (gethostname(D.hostname, sizeof D.hostname - 1) == -1)
		strcpy(D.hostname, "localhost");
	parse_args(argc, argv, &foreground, &level);
	resolve_paths();
	resolve_groups();
	if (!foreground && D.cfg.log_path == NULL)
		D.cfg.log_path = D.cfg.state_dir != NULL ? path_join(D.cfg.state_dir, "colibri.log")
		                                         : xstrdup(PATH_DEFAULT_LOG);
	check_before_log();
	if (log_init("colibri-daemon", level, D.cfg.log_path) == -1)
		fatal("log file %s", D.cfg.log_path);
	if (test_clock)
		log_warnx(
		        "test clock on: now_ms adds the offset in COLIBRI_TEST_CLOCK_OFFSET_FILE");
	if (vm_steps)
		log_warnx("test facility on: each request's SQLite steps go to "
		          "COLIBRI_TEST_VM_STEPS_FILE");
	raise_nofile();
	prepare_dirs();
	if (!foreground)
		detach();
	D.loop = uv_default_loop();
	open_store();
	txn_init();
	spawner_set_channel(&agent_channel);
	if (subsys_init(&cause) == -1)
		fatalx("%s", cause);
	if (server_start(&cause) == -1)
		fatalx("%s", cause);
	sweep_init();
	start_signals();
	log_info("colibri-daemon %s listening on %s (database %s, sync %s, pid %ld)",
	         COLIBRI_VERSION, D.cfg.socket_path, D.cfg.db_path, store_sync(D.store),
	         (long)getpid());
	uv_run(D.loop, UV_RUN_DEFAULT);
	uv_loop_close(D.loop);
	store_close(D.store);
	log_close();
	return 0;
}
