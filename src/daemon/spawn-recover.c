/*
 * spawn-recover.c -- what a previous daemon left behind, and what no
 * sandbox may show.
 *
 * An agent that a previous daemon left "running" is resolved at start: its
 * process tree (cgroup) is killed, and if its pid still names the same
 * process (start time recorded at spawn) that too, with what the reaper
 * finds by the COLIBRI_AGENT_ID marker.  The row is marked `interrupted`
 * ("daemon restarted while STATE"; not error: the run was not at fault),
 * and the task it was bound to goes back to the queue, its attempt not
 * counted (spawn-task.c); agent-resume may continue the run.  A stage a
 * previous daemon left in a jail root is removed.  The daemon's own files
 * are made private to every sandbox,
 * and under a root daemon bubblewrap runs as the agent user.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/paths.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/spawner-agent.h"
#include "daemon/txn.h"
#include "job/reaper.h"
#include "store/store.h"

void
recover_confine_privates(void)
{
	struct confine_opts *o = &spawner_confine;
	const char *v = getenv("COLIBRI_PROVIDER_ENV");
	char *dir;

	confine_opts_add_private(o, D.cfg.state_dir, "state directory");
	confine_opts_add_private(o, D.cfg.sessions_dir, "sessions directory");
	confine_opts_add_private(o, D.cfg.db_path, "database");
	confine_opts_add_private(o, D.cfg.socket_path, "socket");
	confine_opts_add_private(o, D.cfg.log_path, "log");
	confine_opts_add_private(o, v != NULL && *v != '\0' ? v : PATH_DEFAULT_PROVIDER_ENV,
	                         "provider.env");
	/* --config-dir holds profiles.json and, usually, the profiles' env files (secrets). */
	confine_opts_add_private(o, D.cfg.config_dir, "configuration directory");
	confine_opts_add_private(o, PATH_DEFAULT_CONFIG_DIR, "configuration directory");
	confine_opts_add_private(o, "/etc/colibri", "configuration directory");
	if (D.cfg.state_dir == NULL) {
		dir = xstrdup(PATH_DEFAULT_DATA);
		confine_opts_add_private(o, dir, "state directory");
		free(dir);
	}
	o->drop_root = geteuid() == 0;
	o->agent_user = xstrdup(D.cfg.agent_user != NULL ? D.cfg.agent_user : "nobody");
}

/* A stage a previous daemon left in the jail root of agent row a: remove it. */
static void
recover_stage(const char *id, json_t *a)
{
	json_t *jail = json_object_get(json_object_get(a, "detail"), "jail");
	struct jail_config cfg;
	char *cause = NULL;
	int rc;

	if (jail == NULL)
		jail = json_object_get(a, "jail");
	if (!json_is_object(jail) || jail_config_parse(jail, &cfg, &cause) == -1) {
		free(cause);
		return;
	}
	if (jail_config_active(&cfg) && jail_config_root(&cfg) != NULL) {
		rc = stage_remove_leftover(jail_config_root(&cfg), id, spawner_confine.stage_base,
		                           spawner_confine.root_base, &cause);
		if (rc == 1)
			log_info("agent %s: removed the stage a previous daemon left", id);
		else if (rc == -1) {
			log_warnx("agent %s: leftover stage: %s", id, cause);
			free(cause);
		}
	}
	jail_config_clear(&cfg);
}

/* Kill what agent row a's run left: its tree, its pid if still the same process, its marked
 * descendants. */
static void
recover_kill(const char *id, json_t *a)
{
	json_t *pid = json_object_get(a, "pid");
	char tree[TREE_NAME_MAX];
	pid_t *pids = NULL, p;
	int n, k;

	/* Its whole tree first (job_init already emptied every group we own). */
	snprintf(tree, sizeof tree, "agent.%s", id);
	if (job_recover_tree(tree))
		log_info("agent %s: killed the process tree a previous daemon left", id);
	if (json_is_integer(pid) && json_integer_value(pid) > 1 &&
	    reaper_start_time((pid_t)json_integer_value(pid)) ==
	            json_integer_value(json_object_get(a, "pid_start"))) {
		p = (pid_t)json_integer_value(pid);
		log_info("agent %s: killing pid %ld left by a previous daemon", id, (long)p);
		kill(-p, SIGKILL);
		kill(p, SIGKILL);
	}
	n = reaper_descendants(-1, id, &pids);
	for (k = 0; k < n; k++)
		kill(pids[k], SIGKILL);
	free(pids);
}

/* A row whose run is over: done, error, or interrupted by an earlier restart. */
static int
recover_ended(const char *state)
{
	return strcmp(state, "done") == 0 || strcmp(state, "error") == 0 ||
	       strcmp(state, "interrupted") == 0;
}

/*
 * Mark agent row a: an ended one loses its pid; a live one is interrupted, its reason the
 * state it was in ("daemon restarted while working").
 */
static void
recover_mark(const char *id, const char *state)
{
	int ended = recover_ended(state);
	struct store_err e;
	json_t *f, *row;
	char why[96];

	snprintf(why, sizeof why, "daemon restarted while %s", state);
	if (ended)
		f = json_pack("{s:n}", "pid");
	else
		f = json_pack("{s:s, s:s, s:I, s:n}", "state", "interrupted", "reason", why,
		              "since", (json_int_t)now_ms(), "pid");
	txn_write(&e);
	row = store_agent_put(D.store, id, f, now_ms(), &e);
	json_decref(f);
	if (row != NULL && !ended)
		events_emit(EV_AGENT_STATE,
		            json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:I}", "id", id, "from",
		                      state, "to", "interrupted", "reason", why, "cause", "daemon",
		                      "line", "at_ms", (json_int_t)now_ms()));
	json_decref(row);
}

void
recover_agents(void)
{
	struct store_err e;
	json_t *list, *a;
	size_t i;

	if ((list = store_agent_list(D.store, "spawned", NULL, &e)) == NULL)
		return;
	json_array_foreach(json_object_get(list, "items"), i, a)
	{
		const char *id = json_string_value(json_object_get(a, "id"));
		const char *state = json_string_value(json_object_get(a, "state"));

		if (recover_ended(state) && !json_is_integer(json_object_get(a, "pid")))
			continue;
		recover_kill(id, a);
		recover_stage(id, a);
		recover_mark(id, state);
		if (!recover_ended(state))
			task_recover(id, a);
	}
	json_decref(list);
}
