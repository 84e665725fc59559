/*
 * cmd-status.c -- status: what the daemon is and holds, and the caller's
 * role on this connection (admin, member or agent; cmd.h).
 */
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/inventory.h"
#include "store/store.h"

static void
cmd_status_exec(struct cmd_req *r)
{
	json_t *res = json_object();

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
	json_object_set_new(res, "counts", store_counts(D.store));
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
