/*
 * cmd-agent.c -- the agent registry: agents that run elsewhere register,
 * heartbeat, and are declared lost when their lease lapses (sweep.c).
 * list-agents and agent-status also show the agents this daemon spawned;
 * for those the spawner adds its live detail (spawner_detail).
 */
#include <stdio.h>
#include <string.h>

#include "common/proto.h"
#include "common/util.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/spawner.h"
#include "store/store.h"

#define DEFAULT_AGENT_LEASE_MS 30000

static int
agent_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 128)
		return 0;
	for (; *id != '\0'; id++)
		if ((unsigned char)*id < 0x20 || *id == 0x7f)
			return 0;
	return 1;
}

static void
cmd_agent_register(struct cmd_req *r)
{
	struct store_err e;
	const char *id = cmd_arg_str(r, "id");
	long long lease = cmd_arg_int_or(r, "lease_ms", DEFAULT_AGENT_LEASE_MS);
	char gen[64];
	json_t *f, *a;
	int64_t now = now_ms();

	if (id == NULL) {
		snprintf(gen, sizeof gen, "agent-%llx-%lld", (long long)now,
		         store_event_last(D.store) + 1);
		id = gen;
	}
	if (!agent_id_ok(id)) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "agent id must be 1-128 printable characters");
		return;
	}
	if ((a = store_agent_get(D.store, id, &e)) != NULL) {
		int spawned = strcmp(json_string_value(json_object_get(a, "kind")), "spawned") == 0;
		json_decref(a);
		if (spawned) {
			cmd_fail(r, ERR_CONFLICT, "%s is an agent this daemon spawned", id);
			return;
		}
	}
	f = json_pack("{s:s, s:s?, s:s?, s:s, s:I, s:I, s:i, s:s, s:n, s:I}", "kind", "registered",
	              "name", cmd_arg_str(r, "name"), "provider", cmd_arg_str(r, "provider"),
	              "host", D.hostname, "lease_ms", (json_int_t)lease, "heartbeat",
	              (json_int_t)now, "lost", 0, "state", "active", "reason", "since",
	              (json_int_t)now);
	a = store_agent_put(D.store, id, f, now, &e);
	json_decref(f);
	if (a == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	events_emit(EV_AGENT_REGISTERED, json_incref(a));
	cmd_ok(r, a);
}

static void
cmd_agent_heartbeat(struct cmd_req *r)
{
	struct store_err e;
	const char *id = cmd_arg_str(r, "id");
	json_t *a, *f;
	int64_t now = now_ms();
	int revived;

	if ((a = store_agent_get(D.store, id, &e)) == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	if (strcmp(json_string_value(json_object_get(a, "kind")), "registered") != 0 &&
	    r->agent != NULL) {
		/*
		 * A spawned agent on its own channel (the server has held id to
		 * it): its process is its liveness, so the beat only renews the
		 * leases of the tasks it holds.
		 */
		store_task_renew_agent(D.store, id, now);
		cmd_ok(r, a);
		return;
	}
	if (strcmp(json_string_value(json_object_get(a, "kind")), "registered") != 0) {
		json_decref(a);
		cmd_fail(r, ERR_CONFLICT, "%s is supervised by the daemon; it does not heartbeat",
		         id);
		return;
	}
	revived = json_is_true(json_object_get(a, "lost"));
	json_decref(a);
	f = json_pack("{s:I, s:i}", "heartbeat", (json_int_t)now, "lost", 0);
	if (revived) {
		json_object_set_new(f, "state", json_string("active"));
		json_object_set_new(f, "reason", json_string("heartbeat after loss"));
		json_object_set_new(f, "since", json_integer(now));
	}
	if (cmd_arg_str(r, "activity") != NULL)
		json_object_set_new(f, "detail",
		                    json_pack("{s:s}", "activity", cmd_arg_str(r, "activity")));
	a = store_agent_put(D.store, id, f, now, &e);
	json_decref(f);
	if (a == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	store_task_renew_agent(D.store, id, now);
	/* A revived agent is registered anew: the same full agent object as agent-register. */
	if (revived)
		events_emit(EV_AGENT_REGISTERED, json_incref(a));
	else
		events_emit(EV_AGENT_HEARTBEAT,
		            json_pack("{s:s, s:I}", "id", id, "heartbeat_ms", (json_int_t)now));
	cmd_ok(r, a);
}

static void
cmd_list_agents(struct cmd_req *r)
{
	struct store_err e;
	json_t *res, *a;
	size_t i;

	res = store_agent_list(D.store, cmd_arg_str(r, "kind"), cmd_arg_str(r, "state"), &e);
	if (res == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	json_array_foreach(json_object_get(res, "items"), i, a) spawner_detail(a);
	cmd_ok(r, res);
}

static void
cmd_agent_status(struct cmd_req *r)
{
	struct store_err e;
	json_t *a;

	if ((a = store_agent_get(D.store, cmd_arg_str(r, "id"), &e)) == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	spawner_detail(a);
	cmd_ok(r, a);
}

static const struct cmd_arg register_args[] = {{"id", ARG_STR, 0, 0, 0},
                                               {"name", ARG_STR, 0, 0, 0},
                                               {"provider", ARG_STR, 0, 0, 0},
                                               {"lease_ms", ARG_INT, 0, 100, LLONG_MAX},
                                               {NULL, 0, 0, 0, 0}};
static const struct cmd_arg heartbeat_args[] = {{"id", ARG_STR, 1, 0, 0},
                                                {"state", ARG_STR, 0, 0, 0},
                                                {"activity", ARG_STR, 0, 0, 0},
                                                {NULL, 0, 0, 0, 0}};
static const struct cmd_arg list_args[] = {
        {"kind", ARG_STR, 0, 0, 0}, {"state", ARG_STR, 0, 0, 0}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg status_args[] = {{"id", ARG_STR, 1, 0, 0}, {NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_agent_entries[] = {
        {CMD_AGENT_REGISTER, CMD_WRITE, CMD_R_ALL, register_args, cmd_agent_register},
        {CMD_AGENT_HEARTBEAT, CMD_WRITE, CMD_R_ALL, heartbeat_args, cmd_agent_heartbeat},
        {CMD_LIST_AGENTS, CMD_READ, CMD_R_ALL, list_args, cmd_list_agents},
        {CMD_AGENT_STATUS, CMD_READ, CMD_R_ALL, status_args, cmd_agent_status},
        {NULL, 0, 0, NULL, NULL},
};
