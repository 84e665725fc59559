/*
 * spawn-spec.c -- a spawn request's arguments, parsed and checked into a
 * struct spawn_spec (spawn-spec.h).
 *
 * The checks run in a fixed order, and the first that fails is the one
 * the caller hears: args, env, mode, prompt, task, cwd, stall_ms, restart, jail,
 * an unconfined spawn on a daemon that refuses them, the cwd of an
 * unconfined agent, the binary, the id and the session id.  Every bound is
 * here (MAX_ARGS, MAX_ARG_BYTES, MAX_ENV_BYTES, the restart ranges), so a
 * request that passes holds only values the spawner can use as they are.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/session.h"
#include "daemon/spawn-spec.h"
#include "daemon/spawner-agent.h"
#include "daemon/task-prompt.h"

#define MAX_ARGS            256
#define MAX_ARG_BYTES       65536
#define MAX_ENV_BYTES       (1024 * 1024)
#define DEFAULT_BACKOFF     1000
#define DEFAULT_BACKOFF_MAX 30000

int
spawn_resolve_binary(const char *name, char **out, char **cause)
{
	if (strchr(name, '/') != NULL) {
		if (name[0] != '/') {
			xasprintf(cause, "binary must be an absolute path or a name on PATH");
			return -1;
		}
		if (access(name, X_OK) == -1) {
			xasprintf(cause, "binary %s: %s", name, strerror(errno));
			return -1;
		}
		*out = xstrdup(name);
		return 0;
	}
	if ((*out = path_search(name)) != NULL)
		return 0;
	xasprintf(cause, "%s not found on PATH", name);
	return -1;
}

static int
check_strings(json_t *arr, char **cause)
{
	size_t i;
	json_t *v;

	if (json_array_size(arr) > MAX_ARGS) {
		xasprintf(cause, "more than %d args", MAX_ARGS);
		return -1;
	}
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
		    json_string_length(v) > MAX_ARG_BYTES) {
			xasprintf(cause,
			          "args[%zu] must be a string without NUL bytes, at most %d bytes",
			          i, MAX_ARG_BYTES);
			return -1;
		}
	}
	return 0;
}

/*
 * Names a caller may not set in an agent's env: the daemon's own
 * (COLIBRI_*: the agent id, socket and session it sets itself), the
 * dynamic linker's (LD_*, DYLD_*: code injected into the agent and what it
 * runs) and the vault's (BW_*: Bitwarden credentials).
 */
static const char *const env_reserved[] = {"COLIBRI_", "LD_", "BW_", "DYLD_", NULL};

int
spawn_env_name_reserved(const char *name)
{
	size_t i;

	for (i = 0; env_reserved[i] != NULL; i++)
		if (strncmp(name, env_reserved[i], strlen(env_reserved[i])) == 0)
			return 1;
	return 0;
}

static int
check_env(json_t *env, char **cause)
{
	const char *k;
	json_t *v;
	size_t total = 0;

	json_object_foreach(env, k, v)
	{
		if (!is_shell_identifier(k) || strlen(k) > 256) {
			xasprintf(cause, "env name \"%.*s\" is not a valid variable name",
			          (int)utf8_cut_len(k, strlen(k), 64), k);
			return -1;
		}
		if (spawn_env_name_reserved(k)) {
			xasprintf(cause,
			          "env %s is reserved: COLIBRI_*, LD_*, BW_* and DYLD_* are not "
			          "for a caller to set",
			          k);
			return -1;
		}
		if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v))) {
			xasprintf(cause, "env %s must be a string without NUL bytes", k);
			return -1;
		}
		total += strlen(k) + json_string_length(v) + 2;
	}
	if (total > MAX_ENV_BYTES) {
		xasprintf(cause, "env is larger than %d bytes", MAX_ENV_BYTES);
		return -1;
	}
	return 0;
}

/* One integer member of restart: 0, or -1 when the name is unknown or the value out of range. */
static int
restart_member(struct spawn_restart *rs, const char *k, json_int_t v)
{
	if (strcmp(k, "max_restarts") == 0 && v >= 0 && v <= 1000)
		rs->max = (int)v;
	else if (strcmp(k, "backoff_ms") == 0 && v >= 1 && v <= 3600000)
		rs->backoff_ms = v;
	else if (strcmp(k, "backoff_max_ms") == 0 && v >= 1 && v <= 86400000)
		rs->backoff_max_ms = v;
	else
		return -1;
	return 0;
}

static int
parse_restart(struct spawn_restart *rs, json_t *r, char **cause)
{
	const char *k;
	json_t *v;

	rs->max = 0;
	rs->backoff_ms = DEFAULT_BACKOFF;
	rs->backoff_max_ms = DEFAULT_BACKOFF_MAX;
	rs->on_error = 0;
	if (r == NULL)
		return 0;
	if (!json_is_object(r)) {
		xasprintf(cause, "restart must be an object");
		return -1;
	}
	json_object_foreach(r, k, v)
	{
		if (strcmp(k, "on_error") == 0 && json_is_boolean(v)) {
			rs->on_error = json_is_true(v);
			continue;
		}
		if (!json_is_integer(v)) {
			xasprintf(cause, "restart.%.*s must be an integer",
			          (int)utf8_cut_len(k, strlen(k), 32), k);
			return -1;
		}
		if (restart_member(rs, k, json_integer_value(v)) == -1) {
			xasprintf(cause, "restart.%.*s is unknown or out of range",
			          (int)utf8_cut_len(k, strlen(k), 32), k);
			return -1;
		}
	}
	if (rs->backoff_max_ms < rs->backoff_ms)
		rs->backoff_max_ms = rs->backoff_ms;
	return 0;
}

int
spawn_restart_check(json_t *r, char **cause)
{
	struct spawn_restart rs;

	return parse_restart(&rs, r, cause);
}

/* args, env, mode and prompt: what the agent is told. */
static int
parse_command(json_t *args, struct spawn_spec *sp, char **cause)
{
	const char *s;
	json_t *v;

	v = json_object_get(args, "args");
	sp->args = v != NULL && !json_is_null(v) ? json_incref(v) : json_array();
	v = json_object_get(args, "env");
	sp->env = v != NULL && !json_is_null(v) ? json_incref(v) : NULL;
	if (!json_is_array(sp->args) || check_strings(sp->args, cause) == -1)
		return -1;
	if (sp->env != NULL && (!json_is_object(sp->env) || check_env(sp->env, cause) == -1))
		return -1;
	if ((s = json_string_value(json_object_get(args, "mode"))) == NULL)
		s = "json";
	if (glasspane_mode_parse(s, &sp->mode) == -1) {
		xasprintf(cause, "mode must be json or rpc");
		return -1;
	}
	glasspane_harness_parse(sp->provider, &sp->harness);
	if ((s = json_string_value(json_object_get(args, "prompt"))) != NULL) {
		if (strlen(s) != json_string_length(json_object_get(args, "prompt"))) {
			xasprintf(cause, "prompt must not contain NUL bytes");
			return -1;
		}
		sp->prompt = xstrdup(s);
	}
	if ((s = json_string_value(json_object_get(args, "prompt_template"))) != NULL)
		sp->prompt_template = xstrdup(s); /* a profile's, checked when it was loaded */
	if ((s = json_string_value(json_object_get(args, "profile"))) != NULL)
		sp->profile = xstrdup(s); /* set by profiles_apply: the profile's name */
	return 0;
}

/*
 * task and max_attempts: a task-bound run.  Its prompt is a template over the task: the
 * spawn's own prompt, else the profile's template; without a task the template is only the
 * prompt a spawn that gives none gets (as it is written).
 */
static int
parse_task(json_t *args, struct spawn_spec *sp, char **cause)
{
	json_t *t = json_object_get(args, "task"), *m = json_object_get(args, "max_attempts");

	if (m != NULL && !json_is_null(m)) {
		if (!json_is_integer(m) || json_integer_value(m) < 1 ||
		    json_integer_value(m) > 1000) {
			xasprintf(cause, "max_attempts must be an integer 1..1000");
			return -1;
		}
		sp->max_attempts = (int)json_integer_value(m);
	}
	if (t == NULL || json_is_null(t)) {
		if (sp->prompt == NULL && sp->prompt_template != NULL) {
			sp->prompt = sp->prompt_template;
			sp->prompt_template = NULL;
		}
		return 0;
	}
	if (json_is_integer(t) && json_integer_value(t) > 0)
		sp->task = json_integer_value(t);
	else if (json_is_string(t) && strcmp(json_string_value(t), "next") == 0)
		sp->task = SPAWN_TASK_NEXT;
	else {
		xasprintf(cause, "task must be a task id or \"next\"");
		return -1;
	}
	if (sp->mode != GLASSPANE_MODE_JSON) {
		xasprintf(cause, "a task-bound run is one run: mode must be json");
		return -1;
	}
	if (sp->prompt != NULL) {
		if (task_prompt_check(sp->prompt, cause) == -1)
			return -1;
		free(sp->prompt_template);
		sp->prompt_template = sp->prompt;
		sp->prompt = NULL;
	}
	return 0;
}

/* cwd, stall_ms, restart and jail: where and how it runs. */
static int
parse_run(json_t *args, struct spawn_spec *sp, char **cause)
{
	const char *s;
	json_t *v;

	if ((s = json_string_value(json_object_get(args, "cwd"))) != NULL) {
		if (s[0] != '/' || strlen(s) > 4096) {
			xasprintf(cause, "cwd must be an absolute path");
			return -1;
		}
		sp->cwd = xstrdup(s);
	}
	if ((v = json_object_get(args, "timeout_ms")) != NULL && !json_is_null(v)) {
		sp->timeout_ms = json_integer_value(v);
		if (sp->timeout_ms != 0 && (sp->timeout_ms < 100 || sp->timeout_ms > 604800000)) {
			xasprintf(cause, "timeout_ms must be 0 (none) or 100..604800000 (a week)");
			return -1;
		}
	}
	sp->stall_ms = D.cfg.stall_ms;
	if ((v = json_object_get(args, "stall_ms")) != NULL && !json_is_null(v)) {
		sp->stall_ms = json_integer_value(v);
		if (sp->stall_ms != 0 && (sp->stall_ms < 100 || sp->stall_ms > 86400000)) {
			xasprintf(cause, "stall_ms must be 0 (off) or 100..86400000");
			return -1;
		}
	}
	if (parse_restart(&sp->restart, json_object_get(args, "restart"), cause) == -1)
		return -1;
	return jail_config_parse(json_object_get(args, "jail"), &sp->jail, cause);
}

#define MAX_RO_PATHS 64

/* One ro_paths entry: a string, canonical as written and as resolved. */
static int
check_ro_path(const json_t *v, char **cause)
{
	const char *s = json_string_value(v), *err;
	char *canon;
	int same;

	if (s == NULL || strlen(s) != json_string_length(v) || strlen(s) > 4096) {
		xasprintf(cause, "ro_paths must be absolute paths (strings without NUL bytes)");
		return -1;
	}
	if ((err = bwrap_ro_path_check(s)) != NULL) {
		xasprintf(cause, "ro_paths: %s %s", s, err);
		return -1;
	}
	if ((canon = realpath(s, NULL)) == NULL) {
		xasprintf(cause, "ro_paths: %s: %s", s, strerror(errno));
		return -1;
	}
	same = strcmp(canon, s) == 0;
	if (!same)
		xasprintf(cause, "ro_paths: %s is not canonical: it resolves to %s", s, canon);
	free(canon);
	return same ? 0 : -1;
}

/*
 * ro_paths: read-only binds for a bubblewrap sandbox, as an MCP server's.  A
 * FreeBSD jail cannot be given host paths: its filesystem is provisioned
 * (docs/confinement.md), so there they are refused, not ignored.
 */
static int
parse_ro_paths(json_t *args, struct spawn_spec *sp, char **cause)
{
	json_t *ro = json_object_get(args, "ro_paths"), *v;
	size_t i, n;

	if (ro == NULL || json_is_null(ro))
		return 0;
	if (!json_is_array(ro) || (n = json_array_size(ro)) > MAX_RO_PATHS) {
		xasprintf(cause, "ro_paths must be an array of at most %d absolute paths",
		          MAX_RO_PATHS);
		return -1;
	}
	if (n > 0 && !jail_config_active(&sp->jail)) {
		xasprintf(cause, "ro_paths needs a jail: an unconfined agent sees the host anyway");
		return -1;
	}
	if (n > 0 && spawner_confine.backend != CONFINE_BACKEND_BWRAP) {
		xasprintf(cause, "ro_paths needs the bubblewrap backend: a FreeBSD jail's "
		                 "files are provisioned in the jail (docs/confinement.md)");
		return -1;
	}
	sp->ro_paths = xcalloc(n + 1, sizeof *sp->ro_paths);
	json_array_foreach(ro, i, v)
	{
		if (check_ro_path(v, cause) == -1)
			return -1;
		sp->ro_paths[i] = xstrdup(json_string_value(v));
	}
	return 0;
}

/* An unconfined agent only on a daemon that allows them, in a directory that exists. */
static int
check_unconfined(const struct spawn_spec *sp, const char **code, char **cause)
{
	struct stat sb;

	if (jail_config_active(&sp->jail))
		return 0;
	if (!D.cfg.allow_unconfined) {
		*code = ERR_UNAVAILABLE;
		xasprintf(cause,
		          "an unconfined agent runs as the daemon's uid with its power; this "
		          "daemon spawns only jailed agents (start it with --allow-unconfined "
		          "to allow unconfined spawns)");
		return -1;
	}
	if (sp->cwd != NULL && (stat(sp->cwd, &sb) == -1 || !S_ISDIR(sb.st_mode))) {
		xasprintf(cause, "cwd %s is not a directory", sp->cwd);
		return -1;
	}
	return 0;
}

/* binary, id and session_id: what runs and under which names. */
static int
parse_names(json_t *args, struct spawn_spec *sp, char **cause)
{
	const char *s, *bin;

	if ((bin = json_string_value(json_object_get(args, "binary"))) == NULL &&
	    (bin = getenv("COLIBRI_AGENT_BINARY")) == NULL)
		bin = strcmp(sp->provider, "local") == 0 ? "colibri-test-agent" : sp->provider;
	if (spawn_resolve_binary(bin, &sp->binary, cause) == -1)
		return -1;
	if ((s = json_string_value(json_object_get(args, "id"))) != NULL) {
		if (!session_id_valid(s)) {
			xasprintf(cause, "id must be 1-128 of [A-Za-z0-9_.-]");
			return -1;
		}
		sp->id = xstrdup(s);
	}
	if ((s = json_string_value(json_object_get(args, "session_id"))) != NULL) {
		if (!session_id_valid(s)) {
			xasprintf(
			        cause,
			        "session_id must be 1-128 of [A-Za-z0-9_.-], not starting with .");
			return -1;
		}
		sp->session_id = xstrdup(s);
	}
	return 0;
}

int
spawn_spec_parse(json_t *args, const char *provider, uid_t owner, struct spawn_spec *sp,
                 const char **code, char **cause)
{
	memset(sp, 0, sizeof *sp);
	*code = ERR_INVALID_ARGUMENT;
	sp->provider = provider;
	sp->owner = owner;
	if (parse_command(args, sp, cause) == -1 || parse_task(args, sp, cause) == -1 ||
	    parse_run(args, sp, cause) == -1 || parse_ro_paths(args, sp, cause) == -1 ||
	    check_unconfined(sp, code, cause) == -1 || parse_names(args, sp, cause) == -1) {
		spawn_spec_clear(sp);
		return -1;
	}
	return 0;
}

void
spawn_spec_clear(struct spawn_spec *sp)
{
	size_t i;

	jail_config_clear(&sp->jail);
	for (i = 0; sp->ro_paths != NULL && sp->ro_paths[i] != NULL; i++)
		free(sp->ro_paths[i]);
	free(sp->ro_paths);
	json_decref(sp->args);
	json_decref(sp->env);
	free(sp->binary);
	free(sp->prompt);
	free(sp->prompt_template);
	free(sp->profile);
	free(sp->cwd);
	free(sp->id);
	free(sp->session_id);
	memset(sp, 0, sizeof *sp);
}
