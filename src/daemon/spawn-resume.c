/*
 * spawn-resume.c -- agent-resume: an interrupted run started again on the
 * same session.
 *
 * A daemon killed while agents ran leaves their rows `interrupted` (spawn-
 * recover.c) and their tasks back in the queue.  A provider that keeps its
 * conversation in a session can continue it: pi writes its session id in
 * its first event, and `pi --session ID` takes the conversation up again.
 * spawner_resume rebuilds the spawn from what the agent's row kept -- its
 * `spawn` detail (binary, args, mode, cwd, jail, read-only paths, restart
 * policy, stall time, tenant_env), its profile (whose env and env file give
 * the environment again: an explicit `env` of the first spawn is not kept,
 * since rows hold no values), its owner and its task -- adds `--session ID`
 * and a prompt saying the run was interrupted, and spawns it under the same
 * agent id and session.  A task-bound run claims its task again (a new
 * epoch); a task someone else holds now refuses the resume.
 *
 * Other providers (zot, a local program) and agents with no session id are
 * refused with the reason: nothing is guessed.
 */
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/profiles.h"
#include "daemon/spawn-spec.h"
#include "daemon/spawner.h"
#include "store/store.h"

#define RESUME_PROMPT                                                                              \
	"Your previous run was interrupted (the host restarted). Continue where you left off."

/* The spawn's arguments again, from the row's detail; NULL with *cause when they cannot be. */
static json_t *
resume_args(json_t *row, const char **code, char **cause)
{
	json_t *d = row, *sp, *args, *v; /* the row's detail is flattened into it */
	const char *sess = json_string_value(json_object_get(d, "agent_session"));
	const char *prov = json_string_value(json_object_get(row, "provider"));
	size_t i;

	*code = ERR_CONFLICT;
	if (prov == NULL || strcmp(prov, "pi") != 0) {
		xasprintf(cause, "provider %s cannot continue a session: only pi's runs resume",
		          prov != NULL ? prov : "?");
		return NULL;
	}
	if (sess == NULL || !json_is_object(sp = json_object_get(d, "spawn"))) {
		xasprintf(cause, "the interrupted run recorded no pi session to continue");
		return NULL;
	}
	if (json_is_true(json_object_get(sp, "tenant_env"))) {
		xasprintf(cause, "a tenant_env run does not resume: spawn it again");
		return NULL;
	}
	args = json_deep_copy(sp);
	json_object_set(args, "binary", json_object_get(d, "binary"));
	json_object_set_new(args, "args", v = json_array());
	/* The run's args without an earlier --session, then ours. */
	for (i = 0; i < json_array_size(json_object_get(d, "args")); i++) {
		json_t *a = json_array_get(json_object_get(d, "args"), i);
		if (json_is_string(a) && strcmp(json_string_value(a), "--session") == 0) {
			i++;
			continue;
		}
		json_array_append(v, a);
	}
	json_array_append_new(v, json_string("--session"));
	json_array_append_new(v, json_string(sess));
	if (json_is_object(json_object_get(d, "jail")))
		json_object_set(args, "jail", json_object_get(d, "jail"));
	json_object_set(args, "id", json_object_get(row, "id"));
	json_object_set(args, "session_id", json_object_get(row, "session_id"));
	json_object_set_new(args, "prompt", json_string(RESUME_PROMPT));
	if (json_is_integer(json_object_get(row, "task")))
		json_object_set(args, "task", json_object_get(row, "task"));
	return args;
}

/* The profile's env (and env file) for args, when the agent came from one. */
static int
resume_env(json_t *row, json_t **args, char **cause)
{
	const char *profile = json_string_value(json_object_get(row, "profile"));
	const char *prov = NULL;
	json_t *merged = NULL, *req;

	if (profile == NULL)
		return 0;
	/* Only the env comes from the profile: the row's values win everywhere else. */
	req = json_pack("{s:o}", "env", json_object());
	if (profiles_apply(profile, req, &merged, &prov, cause) == -1) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	json_object_set(*args, "env", json_object_get(merged, "env"));
	json_object_set_new(*args, "profile", json_string(profile));
	json_decref(merged);
	return 0;
}

json_t *
spawner_resume(const char *id, const char **code, char **cause)
{
	struct store_err e;
	struct spawn_spec spec;
	const char *st;
	json_t *row, *args, *a = NULL;

	if (spawner_agent_live(id)) {
		*code = ERR_CONFLICT;
		xasprintf(cause, "agent %s is running", id);
		return NULL;
	}
	if ((row = store_agent_get(D.store, id, &e)) == NULL) {
		*code = e.code;
		*cause = xstrdup(e.msg);
		return NULL;
	}
	st = json_string_value(json_object_get(row, "state"));
	if (st == NULL || strcmp(st, "interrupted") != 0) {
		*code = ERR_CONFLICT;
		xasprintf(cause, "agent %s is %s: only an interrupted run resumes", id,
		          st != NULL ? st : "?");
	} else if ((args = resume_args(row, code, cause)) != NULL) {
		*code = ERR_NOT_FOUND;
		if (resume_env(row, &args, cause) == 0 &&
		    spawn_spec_parse(args, "pi",
		                     (uid_t)json_integer_value(json_object_get(row, "owner_uid")),
		                     &spec, code, cause) == 0)
			a = spawner_spawn(&spec, code, cause);
		json_decref(args);
	}
	json_decref(row);
	return a;
}
