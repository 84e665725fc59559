/*
 * spawn-spec.h -- what a spawn asks for, parsed and checked in one place.
 *
 * spawn-agent and spawn-local carry a JSON argument object; cmd-spawn.c
 * turns it into a struct spawn_spec with spawn_spec_parse, and the spawner
 * starts agents from specs only: it never reads request JSON.  Every check
 * that needs only the request, the daemon's flags and the file system is
 * made here (bad args, env names, modes, paths, restart policy, jail,
 * unconfined spawns refused without --allow-unconfined, the binary found);
 * the checks that need the running agents (an id or session in use) are
 * the spawner's.
 *
 * Life cycle: spawn_spec_parse fills a zeroed spec (or fails with nothing
 * to free); spawner_spawn takes its contents over; spawn_spec_clear frees a
 * spec that was not handed over (safe on a zeroed or cleared spec).
 */
#ifndef COLIBRI_SPAWN_SPEC_H
#define COLIBRI_SPAWN_SPEC_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "confine/jail.h"
#include "glasspane/glasspane.h"

struct spawn_restart {
	int max;                            /* restarts allowed, 0..1000 */
	int64_t backoff_ms, backoff_max_ms; /* the first delay and the cap */
	int on_error;                       /* restart after a model error too */
};

struct spawn_spec {
	const char *provider; /* a static name: pi, zot or local */
	char *binary;         /* resolved absolute path */
	json_t *args;         /* array of checked strings */
	json_t *env;          /* object of checked names and strings, or NULL */
	char *prompt;         /* or NULL */
	char *cwd;            /* absolute, or NULL */
	enum glasspane_mode mode;
	enum glasspane_harness harness;
	int64_t stall_ms;
	int64_t timeout_ms; /* a run's deadline: its tree is killed and it ends in error (0: none)
	                     */
	struct spawn_restart restart;
	struct jail_config jail;
	char **ro_paths;  /* canonical read-only binds for bubblewrap (NULL-terminated) or NULL */
	char *id;         /* the requested agent id, or NULL: the spawner makes one */
	char *session_id; /* the requested session, or NULL: the agent id */
	uid_t owner;      /* the uid that asked (recorded as owner_uid) */
	/*
	 * A task-bound run (spawn-task.c): task > 0 claims that task, SPAWN_TASK_NEXT the head
	 * of the ready queue, 0 none.  prompt_template renders the task into the prompt
	 * (NULL: the explicit prompt, else the title and body); max_attempts (> 0: given by the
	 * spawn or its profile) goes on the task, else the task keeps its own (unset: 3).
	 */
	long long task;
	char *prompt_template;
	int max_attempts;
	char *profile;  /* the profile the spawn started from, or NULL */
	int tenant_env; /* the tenant's .env is in env (spawn-tenant.c): no provisioning after */
};

#define SPAWN_TASK_NEXT (-1LL)

/*
 * Parse a spawn-agent/spawn-local argument object for provider into *spec.
 * Returns 0, or -1 with *code (ERR_*) and *cause (the caller frees).
 */
int spawn_spec_parse(json_t *args, const char *provider, uid_t owner, struct spawn_spec *spec,
                     const char **code, char **cause);
void spawn_spec_clear(struct spawn_spec *spec);
/* Is name reserved for the daemon (COLIBRI_*, LD_*, BW_*, DYLD_*): no caller or profile sets it. */
int spawn_env_name_reserved(const char *name);
/* Is r a valid restart object (names and ranges)?  0, or -1 with *cause. */
int spawn_restart_check(json_t *r, char **cause);
/* An absolute path that is executable, or a name found on PATH: *out (the caller frees). */
int spawn_resolve_binary(const char *name, char **out, char **cause);

#endif
