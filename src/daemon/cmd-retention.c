/*
 * cmd-retention.c -- gc: run retention now and say what went.
 *
 * The run is retention.c's (a batch per loop iteration, each in that
 * iteration's group commit), so gc holds its request until the run is
 * over and answers with the run's report; a gc that arrives during a run
 * (periodic or another gc) joins it and gets the same report.  For admins
 * only: it deletes history every reader shares.  agent-forget, which acts
 * on one agent and needs cmd-spawn.c's owner check, lives there.
 */
#include "common/proto.h"
#include "daemon/cmd.h"
#include "daemon/retention.h"

static void
gc_done(void *arg, json_t *report)
{
	struct cmd_req *r = arg;

	if (report == NULL)
		cmd_fail(r, ERR_UNAVAILABLE, "the daemon is shutting down: gc cut short");
	else
		cmd_ok(r, json_incref(report));
}

/* Held until the run is over (see the top). */
static void
cmd_gc(struct cmd_req *r)
{
	cmd_req_hold(r);
	retention_run(gc_done, r);
}

static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_retention_entries[] = {
        {CMD_GC, CMD_ASYNC, CMD_R_ADMIN, no_args, cmd_gc},
        {NULL, 0, 0, NULL, NULL},
};
