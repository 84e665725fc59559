/*
 * daemon.h -- the daemon's process-wide state, shared by its subsystems.
 *
 * There is one daemon per process, so this is a single global (as tmux's
 * server globals), reached through `D`.  Subsystems keep their own state in
 * their own files; only what several of them need lives here.
 */
#ifndef COLIBRI_DAEMON_H
#define COLIBRI_DAEMON_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct store;

struct daemon_config {
	char *state_dir;
	char *config_dir; /* --config-dir: profiles.json (daemon/profiles.c) */
	char *socket_path;
	char *db_path;
	char *sessions_dir;
	char *log_path;
	char *group; /* --group: who may connect (socket's group), or NULL */
	gid_t group_gid;
	int have_group_gid;
	char *admin_group; /* --admin-group: who is privileged, or NULL */
	gid_t admin_gid;
	int have_admin_gid;
	int spawn_disabled;   /* --no-spawn: a board-only daemon */
	int allow_unconfined; /* --allow-unconfined: spawns without a jail are allowed */
	char *agent_user;     /* --agent-user: whom a root daemon runs bubblewrap as */
	size_t max_line;
	int max_clients;
	size_t max_output; /* unread output per client (a live subscriber past it is dropped) */
	size_t max_output_total; /* unread output of all clients together */
	size_t max_reply;        /* one reply line */
	int max_clients_per_uid; /* connections per uid (admins: no quota) */
	int admin_slots;         /* of max_clients, kept for admins */
	int admin_slots_set;
	int64_t line_timeout_ms; /* a partial line older than this closes its connection */
	int64_t stall_ms;
	int64_t kill_grace_ms;
};

struct daemon {
	uv_loop_t *loop;
	struct store *store;
	struct daemon_config cfg;
	int64_t started_ms;
	uid_t uid;
	int shutting_down;
	char hostname[256];
};

extern struct daemon D;

/* Begin an orderly shutdown (stop accepting, finish, close). */
void daemon_shutdown(void);

#endif
