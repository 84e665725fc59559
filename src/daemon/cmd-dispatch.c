/*
 * cmd-dispatch.c -- the dispatch command: turn the dispatcher on or off,
 * read its status (dispatch.c).
 *
 * on and off are for admins: they start agents (or stop starting them) as
 * the daemon's own uid.  status is for admins and members: it shows caps,
 * slots, the queue and why its head waits, names of profiles and tenants,
 * never a secret.  An agent on its channel has neither.
 */
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "daemon/cmd.h"
#include "daemon/dispatch.h"

static void
cmd_dispatch(struct cmd_req *r)
{
	const char *action = cmd_arg_str(r, "action");
	char *cause = NULL;
	int on;

	if (strcmp(action, "status") == 0) {
		cmd_ok(r, dispatch_status());
		return;
	}
	if (strcmp(action, "on") != 0 && strcmp(action, "off") != 0) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "action must be on, off or status");
		return;
	}
	if (r->role != CMD_R_ADMIN) {
		cmd_fail(r, ERR_PERMISSION_DENIED,
		         "dispatch %s is for admins (it decides what the daemon starts); "
		         "members may read dispatch status",
		         action);
		return;
	}
	on = strcmp(action, "on") == 0;
	if (dispatch_switch(on, &cause) == -1) {
		cmd_fail(r, ERR_UNAVAILABLE, "%s", cause);
		free(cause);
		return;
	}
	cmd_ok(r, dispatch_status());
}

static const struct cmd_arg dispatch_args[] = {{"action", ARG_STR, 1, 1, 16}, {NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_dispatch_entries[] = {
        {CMD_DISPATCH, CMD_WRITE, CMD_R_ADMIN | CMD_R_MEMBER, dispatch_args, cmd_dispatch},
        {NULL, 0, 0, NULL, NULL},
};
