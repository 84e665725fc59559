/*
 * cmd-status.c -- status: what the daemon is and holds, and the caller's
 * role on this connection (admin, member or agent; cmd.h), with the count
 * of stale claims (claims whose owner is neither running nor heartbeating).
 */
#include <string.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/inventory.h"
#include "daemon/spawner.h"
#include "store/store.h"

/*
 * Is owner a live holder of a claim without a lease: an agent of this daemon that has not
 * ended, or a spawned agent of another host (a shared store) whose row is not final?
 */
static int
claim_owner_live(const char *owner)
{
	struct store_err e;
	json_t *row;
	const char *st, *host;
	int live;

	if (spawner_agent_live(owner))
		return 1;
	if ((row = store_agent_get(D.store, owner, &e)) == NULL)
		return 0;
	st = json_string_value(json_object_get(row, "state"));
	host = json_string_value(json_object_get(row, "host"));
	live = host != NULL && strcmp(host, D.hostname) != 0 && st != NULL &&
	       strcmp(st, "done") != 0 && strcmp(st, "error") != 0 &&
	       strcmp(st, "interrupted") != 0;
	json_decref(row);
	return live;
}

/*
 * counts.tasks.stale_claims: claims whose owner is neither running nor heartbeating.  A
 * leased claim (a registered agent's) is the sweep's: it lapses with its lease.  A claim
 * without a lease (a task-bound run's) ends with its run; one whose owner is no live agent
 * is stale -- and is expected to stay 0.
 */
static void
count_stale_claims(json_t *counts)
{
	json_t *tasks = json_object_get(counts, "tasks"), *n;
	json_int_t stale = 0;
	const char *owner;

	json_object_foreach(json_object_get(tasks, "unleased_owners"), owner, n)
	{
		if (!claim_owner_live(owner))
			stale += json_integer_value(n);
	}
	json_object_del(tasks, "unleased_owners");
	json_object_set_new(tasks, "stale_claims", json_integer(stale));
}

static void
cmd_status_exec(struct cmd_req *r)
{
	json_t *res = json_object(), *counts;

	json_object_set_new(res, "version", json_string(COLIBRI_VERSION));
	json_object_set_new(res, "protocol", json_integer(COLIBRI_PROTOCOL_VERSION));
	json_object_set_new(res, "pid", json_integer(getpid()));
	json_object_set_new(res, "host", json_string(D.hostname));
	json_object_set_new(res, "uptime_ms", json_integer(now_ms() - D.started_ms));
	json_object_set_new(res, "state_dir",
	                    D.cfg.state_dir ? json_string(D.cfg.state_dir) : json_null());
	json_object_set_new(res, "db_path", json_string(D.cfg.db_path));
	/* read back from the database, not from the flag */
	json_object_set_new(res, "sync", json_string(store_sync(D.store)));
	json_object_set_new(res, "socket", json_string(D.cfg.socket_path));
	json_object_set_new(res, "schema_version", json_integer(store_schema_version(D.store)));
	json_object_set_new(res, "clients", json_integer(cmd_client_count()));
	json_object_set_new(res, "counts", counts = store_counts(D.store));
	count_stale_claims(counts);
	json_object_set_new(res, "last_seq", json_integer(store_event_last(D.store)));
	json_object_set_new(res, "role", json_string(cmd_role_name(r->role)));
	json_object_set_new(res, "host_status",
	                    inventory_host_status() != NULL ? json_incref(inventory_host_status())
	                                                    : json_null());
	cmd_ok(r, res);
}

static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_status_entries[] = {
        {.name = CMD_STATUS,
         .flags = CMD_READ,
         .roles = CMD_R_ALL,
         .args = no_args,
         .exec = cmd_status_exec},
        {NULL, 0, 0, NULL, NULL},
};
