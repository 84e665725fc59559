/*
 * cmd-spawn.c -- spawn-agent, spawn-local, kill-agent, agent-prompt,
 * agent-abort, agent-explain, session-read and agent-forget: the socket
 * face of spawner.c (agent-forget's work is retention.c's).
 *
 * A spawn's arguments become a struct spawn_spec here (spawn-spec.c) and
 * the spawner gets only the spec.  spawn-agent's `profile` names an agent
 * profile (profiles.c): its settings are the defaults the request's own
 * arguments override, merged into one argument object before the spec is
 * parsed, so a profile's values pass every check a request's do.  The
 * profiles command lists them (names and settings, never a secret).
 *
 * tenant_env (a spawn argument or a profile key) puts the tenant's .env
 * into the agent's environment before it starts (spawn-tenant.c).  When
 * there is none yet, the request is held while the vault provisions the
 * tenant, and the spawn happens (or fails with the vault's reason) when it
 * ends: nothing starts before.
 *
 * Every spawn is for admins (the table says so); the agent records the
 * uid that spawned it (owner_uid).  Controlling or reading an agent is for
 * admins and members at the table, and here, for its owner or an admin
 * only (owner_check): anyone else is refused before anything happens.
 * agent-explain is open to an agent's channel too, for its own id only.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "store/store.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/profiles.h"
#include "daemon/retention.h"
#include "daemon/session.h"
#include "daemon/spawn-spec.h"
#include "daemon/spawn-tenant.h"
#include "daemon/spawner.h"

/* A page of session-read stops at this many bytes of lines, or half the reply cap (escaping). */
#define SESSION_READ_MAX_BYTES (8 * 1024 * 1024)
#define CAUSE_MAX              400 /* under cmd_fail's 512-byte message */

/*
 * Fail r with cause.  cmd_fail cuts its message at a byte count and the
 * reply must be valid UTF-8 (a cause may quote a client's path or name), so
 * the cause is cut here first, at a sequence boundary.
 */
static void
fail_cause(struct cmd_req *r, const char *code, const char *cause)
{
	cmd_fail(r, code, "%.*s", (int)utf8_cut_len(cause, strlen(cause), CAUSE_MAX), cause);
}

static int
owned_by(json_t *agent, uid_t uid)
{
	json_t *o = json_object_get(agent, "owner_uid");

	return json_is_integer(o) && json_integer_value(o) == (json_int_t)uid;
}

/*
 * May r's caller act on agent id?  An admin may act on any agent; anyone
 * else only on one it spawned.  With by_session (session-read), id may
 * name a session instead: then every spawned agent of that session must
 * be the caller's.  Returns 1, or 0 after replying (not_found,
 * permission_denied).
 */
static int
owner_check(struct cmd_req *r, const char *id, int by_session)
{
	struct store_err e;
	json_t *row, *list, *a;
	size_t i, mine = 0, theirs = 0;

	if (r->role == CMD_R_ADMIN)
		return 1;
	if ((row = store_agent_get(D.store, id, &e)) != NULL) {
		mine = owned_by(row, r->uid);
		json_decref(row);
	} else if (!by_session) {
		cmd_fail_error(r, &e);
		return 0;
	} else if ((list = store_agent_list(D.store, "spawned", NULL, &e)) != NULL) {
		json_array_foreach(json_object_get(list, "items"), i, a)
		{
			const char *sid = json_string_value(json_object_get(a, "session_id"));
			if (sid != NULL && strcmp(sid, id) == 0)
				*(owned_by(a, r->uid) ? &mine : &theirs) += 1;
		}
		json_decref(list);
	}
	if (mine > 0 && theirs == 0)
		return 1;
	cmd_fail(r, ERR_PERMISSION_DENIED,
	         "%s: %.128s is not an agent uid %ld spawned; it is for the agent's owner or an "
	         "admin",
	         r->entry->name, id, (long)r->uid);
	return 0;
}

/* Start the agent of spec (taken over) and answer r with its row. */
static void
spawn_now(struct cmd_req *r, struct spawn_spec *spec)
{
	const char *code = ERR_INTERNAL;
	char *cause = NULL;
	json_t *a;

	if ((a = spawner_spawn(spec, &code, &cause)) == NULL) {
		fail_cause(r, code, cause != NULL ? cause : "spawn failed");
		free(cause);
		return;
	}
	cmd_ok(r, a);
}

/* A spawn held while its tenant is provisioned. */
struct held_spawn {
	struct cmd_req *r;
	struct spawn_spec spec;
	char *tenant;
};

/* Fail r with code and cause (freed) and forget spec. */
static void
spawn_refuse(struct cmd_req *r, struct spawn_spec *spec, const char *code, char *cause)
{
	fail_cause(r, code, cause);
	free(cause);
	spawn_spec_clear(spec);
}

/*
 * The provisioning a held spawn waited on has ended.  Failed: the spawn
 * fails with the vault's reason, and nothing started.  Done: the tenant is
 * checked and its .env loaded again (it may have been deleted, registered
 * elsewhere or its file replaced meanwhile), then the agent starts.
 */
static void
held_provisioned(void *arg, json_t *tenant, const char *code, const char *msg)
{
	struct held_spawn *h = arg;
	char *cause = NULL, *again = NULL;
	int rc;

	if (tenant == NULL) {
		xasprintf(&cause, "tenant_env: %s", msg);
		spawn_refuse(h->r, &h->spec, code, cause);
	} else if (spawn_tenant_of(&h->spec, &again, &cause) == -1)
		spawn_refuse(h->r, &h->spec, ERR_INVALID_ARGUMENT, cause);
	else if ((rc = spawn_tenant_env_load(&h->spec, &cause)) != 1) {
		if (rc == 0)
			xasprintf(&cause, "tenant_env: provisioning %s left no .env", h->tenant);
		spawn_refuse(h->r, &h->spec, ERR_UNAVAILABLE, cause);
	} else
		spawn_now(h->r, &h->spec);
	free(again);
	free(h->tenant);
	free(h);
}

/*
 * tenant_env: load the tenant's .env into spec, or hold r until it is
 * provisioned.  1 when the spawn goes on now; 0 when r was answered or held
 * (spec taken over either way).
 */
static int
tenant_env_first(struct cmd_req *r, struct spawn_spec *spec)
{
	struct held_spawn *h;
	char *tenant = NULL, *cause = NULL;
	int rc;

	if (spawn_tenant_of(spec, &tenant, &cause) == -1) {
		spawn_refuse(r, spec, ERR_INVALID_ARGUMENT, cause);
		return 0;
	}
	if ((rc = spawn_tenant_env_load(spec, &cause)) != 0) {
		free(tenant);
		if (rc == -1)
			spawn_refuse(r, spec, ERR_UNAVAILABLE, cause);
		return rc == 1;
	}
	h = xcalloc(1, sizeof *h);
	h->r = r;
	h->spec = *spec;
	h->tenant = tenant;
	memset(spec, 0, sizeof *spec);
	if (spawn_tenant_provision(tenant, held_provisioned, h) == -1) {
		spawn_refuse(r, &h->spec, ERR_UNAVAILABLE, xstrdup("the daemon is shutting down"));
		free(h->tenant);
		free(h);
		return 0;
	}
	log_info("spawn: tenant %s has no .env yet: provisioning it before the agent starts",
	         tenant);
	cmd_req_hold(r);
	return 0;
}

static void
spawn_common(struct cmd_req *r, json_t *args, const char *provider)
{
	const char *code = ERR_INTERNAL;
	char *cause = NULL;
	struct spawn_spec spec;

	if (D.cfg.spawn_disabled) {
		cmd_fail(r, ERR_UNAVAILABLE,
		         "this daemon runs with --no-spawn: it starts no agents");
		return;
	}
	if (D.shutting_down) {
		cmd_fail(r, ERR_UNAVAILABLE, "the daemon is shutting down");
		return;
	}
	if (spawn_spec_parse(args, provider, r->uid, &spec, &code, &cause) == -1) {
		fail_cause(r, code, cause != NULL ? cause : "spawn failed");
		free(cause);
		return;
	}
	if (json_is_true(json_object_get(args, "tenant_env")) && !tenant_env_first(r, &spec))
		return;
	spawn_now(r, &spec);
}

static void
cmd_spawn_agent(struct cmd_req *r)
{
	static const char *const providers[] = {"pi", "zot", "local", NULL};
	const char *p = cmd_arg_str(r, "provider"), *profile = cmd_arg_str(r, "profile");
	const char *prov = NULL;
	char *cause = NULL;
	json_t *merged = NULL;
	size_t i;

	if (p == NULL && profile == NULL) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "spawn-agent needs a provider or a profile");
		return;
	}
	if (p != NULL) {
		for (i = 0; providers[i] != NULL && strcmp(p, providers[i]) != 0; i++)
			;
		if (providers[i] == NULL) {
			cmd_fail(r, ERR_INVALID_ARGUMENT, "provider must be pi, zot or local");
			return;
		}
		prov = providers[i];
	}
	if (profile != NULL) {
		if (profiles_apply(profile, r->args, &merged, p == NULL ? &prov : &p, &cause) ==
		    -1) {
			fail_cause(r, ERR_NOT_FOUND, cause);
			free(cause);
			return;
		}
		spawn_common(r, merged, prov);
		json_decref(merged);
		return;
	}
	/* p points into args: prov is the static name, taken before the member goes. */
	json_object_del(r->args, "provider");
	spawn_common(r, r->args, prov);
}

static void
cmd_spawn_local(struct cmd_req *r)
{
	spawn_common(r, r->args, "local");
}

/* An interrupted agent started again on its session (spawn-resume.c); admins only, as spawns. */
static void
cmd_agent_resume(struct cmd_req *r)
{
	const char *code = ERR_INTERNAL;
	char *cause = NULL;
	json_t *a;

	if ((a = spawner_resume(cmd_arg_str(r, "id"), &code, &cause)) == NULL) {
		fail_cause(r, code, cause != NULL ? cause : "resume failed");
		free(cause);
		return;
	}
	cmd_ok(r, a);
}

static void
cmd_profiles(struct cmd_req *r)
{
	json_t *res = profiles_list(), *p;
	size_t i;
	int64_t until;

	/* Quota parking (spawn-park.c): whether the profile's credential waits for a reset. */
	json_array_foreach(json_object_get(res, "profiles"), i, p)
	{
		until = spawner_parked_until(json_string_value(json_object_get(p, "name")));
		json_object_set_new(p, "parked_until_ms",
		                    until != 0 ? json_integer(until) : json_null());
	}
	cmd_ok(r, res);
}

/* The agent kill-agent stopped has ended: answer with its final row. */
static void
kill_done(void *arg, const char *id)
{
	struct cmd_req *r = arg;
	struct store_err e;
	json_t *row;

	if ((row = store_agent_get(D.store, id, &e)) == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	spawner_detail(row); /* an ended agent's: its row as agent-status shows it */
	cmd_ok(r, row);
}

/*
 * Held until the agent has ended.  kill_done may answer before spawner_kill
 * returns (the agent had ended, or was in a backoff): the server keeps a
 * request answered inside its own exec until exec returns.  A client that
 * went away meanwhile gets nothing, and the request is freed all the same.
 */
static void
cmd_kill_agent(struct cmd_req *r)
{
	long long grace = cmd_arg_int_or(r, "grace_ms", 3000);

	if (!owner_check(r, cmd_arg_str(r, "id"), 0))
		return;
	cmd_req_hold(r);
	spawner_kill(cmd_arg_str(r, "id"), grace, kill_done, r);
}

static void
rpc_send(struct cmd_req *r, json_t *cmd)
{
	const char *code;
	char *cause = NULL;

	if (!owner_check(r, cmd_arg_str(r, "id"), 0)) {
		json_decref(cmd);
		return;
	}
	if (spawner_rpc_send(cmd_arg_str(r, "id"), cmd, &code, &cause) == -1) {
		fail_cause(r, code, cause);
		free(cause);
	} else
		cmd_ok(r, json_object());
	json_decref(cmd);
}

static void
cmd_agent_prompt(struct cmd_req *r)
{
	const char *m = cmd_arg_str(r, "message");

	if (strlen(m) != json_string_length(cmd_arg(r, "message"))) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "message must not contain NUL bytes");
		return;
	}
	rpc_send(r, json_pack("{s:s, s:s}", "type", "prompt", "message", m));
}

static void
cmd_agent_abort(struct cmd_req *r)
{
	rpc_send(r, json_pack("{s:s}", "type", "abort"));
}

/* agent-forget: an ended agent's row and session logs go (retention.c); owner or admin. */
static void
cmd_agent_forget(struct cmd_req *r)
{
	const char *id = cmd_arg_str(r, "id"), *code;
	char *cause = NULL;
	int sessions = 0;

	if (!owner_check(r, id, 0))
		return;
	if (retention_forget(id, "agent-forget", &sessions, &code, &cause) == -1) {
		fail_cause(r, code, cause);
		free(cause);
		return;
	}
	cmd_ok(r, json_pack("{s:s, s:b}", "id", id, "sessions_removed", sessions));
}

static void
cmd_session_read(struct cmd_req *r)
{
	long long since = cmd_arg_int_or(r, "since", 0), limit = cmd_arg_int_or(r, "limit", 1000);
	const char *stream = cmd_arg_str(r, "stream");
	char *sid, *cause = NULL;
	json_t *res;

	if (stream != NULL && strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "stream must be stdout or stderr");
		return;
	}
	if (!owner_check(r, cmd_arg_str(r, "id"), 1))
		return;
	sid = spawner_session_of(cmd_arg_str(r, "id"));
	if ((res = session_read(
	             sid, stream != NULL && strcmp(stream, "stderr") == 0 ? ".stderr" : ".jsonl",
	             since, limit,
	             D.cfg.max_reply / 2 < SESSION_READ_MAX_BYTES ? D.cfg.max_reply / 2
	                                                          : SESSION_READ_MAX_BYTES,
	             &cause)) == NULL) {
		fail_cause(r, ERR_NOT_FOUND, cause);
		free(cause);
	} else {
		json_object_set_new(res, "session_id", json_string(sid));
		cmd_ok(r, res);
	}
	free(sid);
}

/* Why the agent is where it is: its transitions and their causes (spawn-explain.c). */
static void
cmd_agent_explain(struct cmd_req *r)
{
	const char *id = cmd_arg_str(r, "id"), *code = ERR_INTERNAL;
	char *cause = NULL;
	json_t *res;

	if (r->role == CMD_R_AGENT && (r->agent == NULL || strcmp(r->agent, id) != 0)) {
		cmd_fail(r, ERR_PERMISSION_DENIED,
		         "agent-explain: an agent may explain only itself, not %.128s", id);
		return;
	}
	if (r->role != CMD_R_AGENT && !owner_check(r, id, 0))
		return;
	if ((res = spawner_explain(id, &code, &cause)) == NULL) {
		fail_cause(r, code, cause != NULL ? cause : "cannot explain the agent");
		free(cause);
		return;
	}
	cmd_ok(r, res);
}

#define SPAWN_ARGS                                                                                 \
	{"binary", ARG_STR, 0, 0, 0}, {"args", ARG_ARR, 0, 0, 0}, {"prompt", ARG_STR, 0, 0, 0},    \
	        {"mode", ARG_STR, 0, 0, 0}, {"env", ARG_OBJ, 0, 0, 0}, {"cwd", ARG_STR, 0, 0, 0},  \
	        {"session_id", ARG_STR, 0, 0, 0}, {"restart", ARG_OBJ, 0, 0, 0},                   \
	        {"jail", ARG_OBJ, 0, 0, 0}, {"ro_paths", ARG_ARR, 0, 0, 0},                        \
	        {"stall_ms", ARG_INT, 0, 0, 0}, {"task", ARG_ANY, 0, 0, 0},                        \
	        {"max_attempts", ARG_INT, 0, 1, 1000}, {"tenant_env", ARG_BOOL, 0, 0, 0},          \
	        {"timeout_ms", ARG_INT, 0, 0, 0},                                                  \
	{                                                                                          \
		"id", ARG_STR, 0, 0, 0                                                             \
	}

static const struct cmd_arg spawn_agent_args[] = {{"provider", ARG_STR, 0, 0, 0},
                                                  SPAWN_ARGS,
                                                  {"profile", ARG_STR, 0, 0, 0},
                                                  {NULL, 0, 0, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};
static const struct cmd_arg spawn_local_args[] = {{"binary", ARG_STR, 1, 0, 0},
                                                  {"args", ARG_ARR, 0, 0, 0},
                                                  {"prompt", ARG_STR, 0, 0, 0},
                                                  {"mode", ARG_STR, 0, 0, 0},
                                                  {"env", ARG_OBJ, 0, 0, 0},
                                                  {"cwd", ARG_STR, 0, 0, 0},
                                                  {"session_id", ARG_STR, 0, 0, 0},
                                                  {"restart", ARG_OBJ, 0, 0, 0},
                                                  {"jail", ARG_OBJ, 0, 0, 0},
                                                  {"ro_paths", ARG_ARR, 0, 0, 0},
                                                  {"stall_ms", ARG_INT, 0, 0, 0},
                                                  {"tenant_env", ARG_BOOL, 0, 0, 0},
                                                  {"task", ARG_ANY, 0, 0, 0},
                                                  {"max_attempts", ARG_INT, 0, 1, 1000},
                                                  {"timeout_ms", ARG_INT, 0, 0, 0},
                                                  {"id", ARG_STR, 0, 0, 0},
                                                  {NULL, 0, 0, 0, 0}};
static const struct cmd_arg kill_args[] = {
        {"id", ARG_STR, 1, 0, 0}, {"grace_ms", ARG_INT, 0, 0, 600000}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg prompt_args[] = {
        {"id", ARG_STR, 1, 0, 0}, {"message", ARG_STR, 1, 0, 0}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg id_args[] = {{"id", ARG_STR, 1, 0, 0}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg read_args[] = {{"id", ARG_STR, 1, 0, 0},
                                           {"since", ARG_INT, 0, 0, LLONG_MAX},
                                           {"limit", ARG_INT, 0, 1, 100000},
                                           {"stream", ARG_STR, 0, 0, 0},
                                           {NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_spawn_entries[] = {
        {CMD_SPAWN_AGENT, CMD_WRITE | CMD_ASYNC, CMD_R_ADMIN, spawn_agent_args, cmd_spawn_agent},
        {CMD_SPAWN_LOCAL, CMD_WRITE | CMD_ASYNC, CMD_R_ADMIN, spawn_local_args, cmd_spawn_local},
        {CMD_KILL_AGENT, CMD_ASYNC, CMD_R_ADMIN | CMD_R_MEMBER, kill_args, cmd_kill_agent},
        {CMD_AGENT_PROMPT, CMD_READ, CMD_R_ADMIN | CMD_R_MEMBER, prompt_args, cmd_agent_prompt},
        {CMD_AGENT_ABORT, CMD_READ, CMD_R_ADMIN | CMD_R_MEMBER, id_args, cmd_agent_abort},
        {CMD_AGENT_FORGET, CMD_WRITE, CMD_R_ADMIN | CMD_R_MEMBER, id_args, cmd_agent_forget},
        {CMD_SESSION_READ, CMD_READ, CMD_R_ADMIN | CMD_R_MEMBER, read_args, cmd_session_read},
        {CMD_AGENT_EXPLAIN, CMD_READ, CMD_R_ALL, id_args, cmd_agent_explain},
        {CMD_PROFILES, CMD_READ, CMD_R_ADMIN | CMD_R_MEMBER, no_args, cmd_profiles},
        {CMD_AGENT_RESUME, CMD_WRITE, CMD_R_ADMIN, id_args, cmd_agent_resume},
        {NULL, 0, 0, NULL, NULL},
};
