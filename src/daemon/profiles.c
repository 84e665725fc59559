/*
 * profiles.c -- agent profiles (profiles.h): CONFIG_DIR/profiles.json.
 *
 * The file is as strict as the MCP host's configuration (src/mcp/hostcfg.c)
 * and for the same reason: it decides what runs, with which secrets, in
 * which confinement.  It must be a regular file owned by the daemon's uid
 * and writable by no one else; every key is known; every problem is
 * reported with the profile's name and the key; nothing half-parsed is
 * kept.  A missing file is no profiles.  At start-up a bad file refuses
 * the start; on SIGHUP it keeps the old profiles and logs why.
 *
 *   {"profiles": [{"name": "deepseek", "provider": "pi", "binary": "pi",
 *                  "args": [...], "model": "deepseek-chat",
 *                  "env": {"PI_PROVIDER": "openai"},
 *                  "env_file": "/etc/colibri/deepseek.env",
 *                  "jail": {...}, "ro_paths": [...], "restart": {...},
 *                  "max_attempts": 3, "prompt_template": "...",
 *                  "tenant_env": true}]}
 *
 * env_file holds NAME=VALUE lines (blank lines and # comments skipped);
 * it must be owned by the daemon's uid with mode 0600 (no group or other
 * bits).  It is read when the profiles are loaded, and its values live
 * only in memory here and in the agent's environment: profiles_list shows
 * the file's path and the names it sets, causes name a line number, never
 * a value.  Reserved names (COLIBRI_*, LD_*, BW_*, DYLD_*) are refused in
 * env and env_file alike.
 *
 * model becomes `--model MODEL` in front of the args for pi and zot; a
 * local program takes no model (set what it needs in args or env).
 * prompt_template is the prompt when the spawn gives none; a task-bound
 * spawn renders it over the task's fields (task-prompt.h), and a template
 * naming a field the task has not is refused at load.  max_attempts, when
 * set, goes on the tasks its task-bound runs claim: how many failed runs a
 * task takes before it is failed (unset: the task's own, else 3).
 * tenant_env (a boolean) is the spawn argument of that name: the jail's
 * tenant's .env in the agent's environment before it starts.
 */
#include "daemon/profiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/paths.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/jail.h"
#include "daemon/config-file.h"
#include "daemon/daemon.h"
#include "daemon/spawn-spec.h"
#include "daemon/task-prompt.h"

#define PROFILE_NAME_MAX 64
#define ENV_FILE_MAX     (1024 * 1024)

struct profile {
	char *name;
	const char *provider;  /* static: pi, zot or local */
	char *binary;          /* or NULL */
	json_t *args;          /* array of strings */
	char *model;           /* or NULL */
	json_t *env;           /* object: the plain env */
	char *env_file;        /* or NULL */
	json_t *secrets;       /* object: the env file's NAME -> VALUE */
	json_t *jail;          /* object or NULL */
	json_t *ro_paths;      /* array or NULL */
	json_t *restart;       /* object or NULL */
	int max_attempts;      /* 1..1000, 0 when unset */
	char *prompt_template; /* or NULL */
	int tenant_env;        /* the spawn argument tenant_env */
	long long timeout_ms;  /* the spawn argument timeout_ms (0: unset) */
};

static struct profile *profiles;
static size_t nprofiles;
static char *profiles_path;

static const char *const profile_keys[] = {
        "name",         "provider",        "binary",     "args",       "model",
        "env",          "env_file",        "jail",       "ro_paths",   "restart",
        "max_attempts", "prompt_template", "tenant_env", "timeout_ms", NULL};

static int
pfail(char **cause, const char *name, const char *what)
{
	xasprintf(cause, "profile %s: %s", name != NULL ? name : "#?", what);
	return -1;
}

static void
profile_clear(struct profile *p)
{
	free(p->name);
	free(p->binary);
	json_decref(p->args);
	free(p->model);
	json_decref(p->env);
	free(p->env_file);
	if (p->secrets != NULL) {
		const char *k;
		json_t *v;
		/* Wipe the secret values before they go back to the allocator. */
		json_object_foreach(p->secrets, k, v)
		{
			size_t n = json_string_length(v);
			char *z = xcalloc(n + 1, 1);
			json_string_setn(v, z, n);
			free(z);
		}
		json_decref(p->secrets);
	}
	json_decref(p->jail);
	json_decref(p->ro_paths);
	json_decref(p->restart);
	free(p->prompt_template);
	memset(p, 0, sizeof *p);
}

static void
profiles_free(struct profile *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		profile_clear(&v[i]);
	free(v);
}

/* One env name of a profile: an identifier, not reserved. */
static int
env_name_check(const struct profile *p, const char *where, const char *k, char **cause)
{
	if (!is_shell_identifier(k) || strlen(k) > 256) {
		xasprintf(cause, "profile %s: %s: \"%.64s\" is not a variable name", p->name, where,
		          k);
		return -1;
	}
	if (spawn_env_name_reserved(k)) {
		xasprintf(cause,
		          "profile %s: %s: %s is reserved (COLIBRI_*, LD_*, BW_* and DYLD_* are "
		          "not for a profile to set)",
		          p->name, where, k);
		return -1;
	}
	return 0;
}

/* Read p->env_file into p->secrets.  Causes name lines, never values. */
static int
load_env_file(struct profile *p, char **cause)
{
	char *buf, *line, *next, *why = NULL;
	ssize_t n;
	size_t len = 0, lineno = 0;
	int fd, rc = -1;

	if (config_open_own(p->env_file, 1, &fd, &why) == -1) {
		xasprintf(cause, "profile %s: env_file %s", p->name, why);
		free(why);
		return -1;
	}
	buf = xmalloc(ENV_FILE_MAX + 1);
	while ((n = read(fd, buf + len, ENV_FILE_MAX + 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	p->secrets = json_object();
	if (n == -1 || len > ENV_FILE_MAX || memchr(buf, '\0', len) != NULL) {
		xasprintf(cause,
		          "profile %s: env_file %s: unreadable, larger than %d bytes or "
		          "holding NUL bytes",
		          p->name, p->env_file, ENV_FILE_MAX);
		goto out;
	}
	buf[len] = '\0';
	for (line = buf; line != NULL; line = next) {
		char *eq;
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		if ((eq = strchr(line, '=')) == NULL) {
			xasprintf(cause, "profile %s: env_file %s: line %zu is not NAME=VALUE",
			          p->name, p->env_file, lineno);
			goto out;
		}
		*eq = '\0';
		if (env_name_check(p, "env_file", line, cause) == -1)
			goto out;
		json_object_set_new(p->secrets, line, json_string(eq + 1));
		if (json_object_get(p->secrets, line) == NULL) {
			xasprintf(cause, "profile %s: env_file %s: line %zu is not UTF-8", p->name,
			          p->env_file, lineno);
			goto out;
		}
	}
	rc = 0;
out:
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

static int
check_keys(const json_t *o, const struct profile *p, char **cause)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)o, k, v)
	{
		for (i = 0; profile_keys[i] != NULL && strcmp(k, profile_keys[i]) != 0; i++)
			;
		if (profile_keys[i] == NULL) {
			xasprintf(cause, "profile %s: unknown key \"%.64s\"", p->name, k);
			return -1;
		}
	}
	return 0;
}

static int
parse_strings(const json_t *a, const struct profile *p, const char *key, int absolute, char **cause)
{
	size_t i;
	json_t *v;
	char *what;

	if (!json_is_array(a))
		goto bad;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || (absolute && json_string_value(v)[0] != '/'))
			goto bad;
	}
	return 0;
bad:
	xasprintf(&what, "\"%s\" must be an array of %s", key,
	          absolute ? "absolute paths" : "strings");
	pfail(cause, p->name, what);
	free(what);
	return -1;
}

static int
parse_provider(const json_t *o, struct profile *p, char **cause)
{
	static const char *const providers[] = {"pi", "zot", "local", NULL};
	const char *s = json_string_value(json_object_get(o, "provider"));
	size_t i;

	for (i = 0; s != NULL && providers[i] != NULL && strcmp(s, providers[i]) != 0; i++)
		;
	if (s == NULL || providers[i] == NULL)
		return pfail(cause, p->name, "\"provider\" must be pi, zot or local");
	p->provider = providers[i];
	return 0;
}

static int
parse_env(const json_t *o, struct profile *p, char **cause)
{
	const json_t *env = json_object_get(o, "env"), *f = json_object_get(o, "env_file");
	const char *k;
	json_t *v;

	p->env = json_object();
	if (env != NULL && !json_is_object(env))
		return pfail(cause, p->name, "\"env\" must be an object of strings");
	json_object_foreach((json_t *)env, k, v)
	{
		if (env_name_check(p, "env", k, cause) == -1)
			return -1;
		if (!json_is_string(v))
			return pfail(cause, p->name, "\"env\" values must be strings");
		json_object_set(p->env, k, v);
	}
	if (f == NULL)
		return 0;
	if (!json_is_string(f) || json_string_value(f)[0] != '/')
		return pfail(cause, p->name, "\"env_file\" must be an absolute path");
	p->env_file = xstrdup(json_string_value(f));
	return load_env_file(p, cause);
}

static int
parse_run(const json_t *o, struct profile *p, char **cause)
{
	const json_t *v;
	struct jail_config jc;
	char *why = NULL;

	if ((v = json_object_get(o, "jail")) != NULL) {
		if (jail_config_parse(v, &jc, &why) == -1) {
			xasprintf(cause, "profile %s: jail: %s", p->name, why);
			free(why);
			return -1;
		}
		jail_config_clear(&jc);
		p->jail = json_deep_copy(v);
	}
	if ((v = json_object_get(o, "ro_paths")) != NULL) {
		if (parse_strings(v, p, "ro_paths", 1, cause) == -1)
			return -1;
		p->ro_paths = json_deep_copy(v);
	}
	if ((v = json_object_get(o, "restart")) != NULL) {
		if (spawn_restart_check((json_t *)v, &why) == -1) {
			xasprintf(cause, "profile %s: %s", p->name, why);
			free(why);
			return -1;
		}
		p->restart = json_deep_copy(v);
	}
	p->max_attempts = 0; /* unset: the task's own, else STORE_MAX_ATTEMPTS_DEFAULT */
	if ((v = json_object_get(o, "max_attempts")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 1000)
			return pfail(cause, p->name, "\"max_attempts\" must be an integer 1..1000");
		p->max_attempts = (int)json_integer_value(v);
	}
	if ((v = json_object_get(o, "tenant_env")) != NULL) {
		if (!json_is_boolean(v))
			return pfail(cause, p->name, "\"tenant_env\" must be true or false");
		p->tenant_env = json_is_true(v);
	}
	if ((v = json_object_get(o, "timeout_ms")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 100 ||
		    json_integer_value(v) > 604800000)
			return pfail(cause, p->name,
			             "\"timeout_ms\" must be an integer 100..604800000 (a week)");
		p->timeout_ms = json_integer_value(v);
	}
	return 0;
}

static int
opt_string(const json_t *o, const char *key, struct profile *p, char **out, char **cause)
{
	const json_t *v = json_object_get(o, key);
	char *what;

	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) != strlen(json_string_value(v))) {
		xasprintf(&what, "\"%s\" must be a non-empty string without NUL bytes", key);
		pfail(cause, p->name, what);
		free(what);
		return -1;
	}
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int
parse_profile(const json_t *o, struct profile *p, char **cause)
{
	const char *name = json_string_value(json_object_get(o, "name"));
	char *why = NULL;
	size_t i, n;

	if (!json_is_object(o))
		return pfail(cause, NULL, "each profile must be an object");
	if (name == NULL)
		return pfail(cause, NULL, "\"name\" is missing");
	p->name = xstrdup(name);
	n = strlen(name);
	if (n == 0 || n > PROFILE_NAME_MAX)
		return pfail(cause, name, "\"name\" must be 1 to 64 characters");
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-' ||
		      name[i] == '.'))
			return pfail(cause, name,
			             "\"name\" may hold only letters, digits, '_', '-' and '.'");
	if (check_keys(o, p, cause) == -1 || parse_provider(o, p, cause) == -1 ||
	    opt_string(o, "binary", p, &p->binary, cause) == -1 ||
	    opt_string(o, "model", p, &p->model, cause) == -1 ||
	    opt_string(o, "prompt_template", p, &p->prompt_template, cause) == -1)
		return -1;
	if (p->prompt_template != NULL && task_prompt_check(p->prompt_template, &why) == -1) {
		pfail(cause, name, why);
		free(why);
		return -1;
	}
	if (p->model != NULL && strcmp(p->provider, "local") == 0)
		return pfail(cause, name,
		             "\"model\" is for pi and zot; give a local program its model in "
		             "args or env");
	if (json_object_get(o, "args") != NULL &&
	    parse_strings(json_object_get(o, "args"), p, "args", 0, cause) == -1)
		return -1;
	p->args = json_object_get(o, "args") != NULL ? json_deep_copy(json_object_get(o, "args"))
	                                             : json_array();
	return parse_env(o, p, cause) == -1 ? -1 : parse_run(o, p, cause);
}

/* Parse path into *out and *n; a missing file is 0 profiles. */
static int
profiles_load(const char *path, struct profile **out, size_t *n, char **cause)
{
	json_t *root, *list;
	struct profile *v;
	size_t i, j;

	*out = NULL;
	*n = 0;
	if (config_load_json(path, &root, cause) == -1)
		return -1;
	if (root == NULL)
		return 0; /* no file: no profiles */
	list = json_object_get(root, "profiles");
	if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(list)) {
		json_decref(root);
		xasprintf(cause, "%s: the file must be {\"profiles\": [...]}", path);
		return -1;
	}
	v = xcalloc(json_array_size(list) + 1, sizeof *v);
	for (i = 0; i < json_array_size(list); i++) {
		char *why = NULL;
		int bad = parse_profile(json_array_get(list, i), &v[i], &why);
		for (j = 0; !bad && j < i; j++)
			if (strcmp(v[i].name, v[j].name) == 0)
				bad = pfail(&why, v[i].name, "the name is used twice");
		if (bad) {
			xasprintf(cause, "%s: %s", path, why);
			free(why);
			json_decref(root);
			profiles_free(v, i + 1);
			return -1;
		}
	}
	*n = json_array_size(list);
	*out = v;
	json_decref(root);
	return 0;
}

int
profiles_init(char **cause)
{
	profiles_path = config_path(PROFILES_FILE);
	if (profiles_load(profiles_path, &profiles, &nprofiles, cause) == -1)
		return -1;
	log_info("%zu agent profile(s) from %s", nprofiles, profiles_path);
	return 0;
}

void
profiles_reload(void)
{
	struct profile *v;
	size_t n;
	char *cause = NULL;

	if (profiles_load(profiles_path, &v, &n, &cause) == -1) {
		log_warnx("profiles not reloaded, the old ones stay: %s", cause);
		free(cause);
		return;
	}
	profiles_free(profiles, nprofiles);
	profiles = v;
	nprofiles = n;
	log_info("profiles reloaded: %zu from %s", nprofiles, profiles_path);
}

void
profiles_close(void)
{
	profiles_free(profiles, nprofiles);
	profiles = NULL;
	nprofiles = 0;
	free(profiles_path);
	profiles_path = NULL;
}

static const struct profile *
profile_find(const char *name)
{
	size_t i;

	for (i = 0; i < nprofiles; i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

static json_t *
names_of(const json_t *obj)
{
	json_t *a = json_array();
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) json_array_append_new(a, json_string(k));
	return a;
}

json_t *
profiles_list(void)
{
	json_t *res = json_object(), *a = json_array(), *o;
	size_t i;

	for (i = 0; i < nprofiles; i++) {
		const struct profile *p = &profiles[i];
		o = json_pack("{s:s, s:s, s:O, s:o, s:o}", "name", p->name, "provider", p->provider,
		              "args", p->args, "env_names", names_of(p->env), "max_attempts",
		              p->max_attempts > 0 ? json_integer(p->max_attempts) : json_null());
		if (p->binary != NULL)
			json_object_set_new(o, "binary", json_string(p->binary));
		if (p->model != NULL)
			json_object_set_new(o, "model", json_string(p->model));
		if (p->env_file != NULL) {
			json_object_set_new(o, "env_file", json_string(p->env_file));
			json_object_set_new(o, "env_file_names", names_of(p->secrets));
		}
		if (p->jail != NULL)
			json_object_set(o, "jail", p->jail);
		if (p->ro_paths != NULL)
			json_object_set(o, "ro_paths", p->ro_paths);
		if (p->restart != NULL)
			json_object_set(o, "restart", p->restart);
		json_object_set_new(o, "has_prompt_template",
		                    json_boolean(p->prompt_template != NULL));
		json_object_set_new(o, "tenant_env", json_boolean(p->tenant_env));
		if (p->timeout_ms > 0)
			json_object_set_new(o, "timeout_ms", json_integer(p->timeout_ms));
		json_array_append_new(a, o);
	}
	json_object_set_new(res, "config_dir", json_string(D.cfg.config_dir));
	json_object_set_new(res, "profiles", a);
	return res;
}

int
profiles_apply(const char *name, json_t *req, json_t **out, const char **provider, char **cause)
{
	const struct profile *p = profile_find(name);
	json_t *m, *env, *v, *args;
	const char *k;

	if (p == NULL) {
		xasprintf(cause, "no profile %.64s in %s", name, profiles_path);
		return -1;
	}
	m = json_object();
	env = json_deep_copy(p->env);
	json_object_update(env, p->secrets);
	if (p->binary != NULL)
		json_object_set_new(m, "binary", json_string(p->binary));
	json_object_set(m, "args", p->args);
	if (p->jail != NULL)
		json_object_set(m, "jail", p->jail);
	if (p->ro_paths != NULL)
		json_object_set(m, "ro_paths", p->ro_paths);
	if (p->restart != NULL)
		json_object_set(m, "restart", p->restart);
	if (p->prompt_template != NULL)
		json_object_set_new(m, "prompt_template", json_string(p->prompt_template));
	if (p->max_attempts > 0)
		json_object_set_new(m, "max_attempts", json_integer(p->max_attempts));
	if (p->tenant_env)
		json_object_set_new(m, "tenant_env", json_true());
	if (p->timeout_ms > 0)
		json_object_set_new(m, "timeout_ms", json_integer(p->timeout_ms));
	/* The request's own arguments win; its env is merged name by name. */
	json_object_foreach(req, k, v)
	{
		if (strcmp(k, "profile") == 0 || strcmp(k, "provider") == 0)
			continue;
		if (strcmp(k, "env") == 0 && json_is_object(v))
			json_object_update(env, v);
		else
			json_object_set(m, k, v);
	}
	json_object_set_new(m, "env", env);
	json_object_set_new(m, "profile", json_string(p->name)); /* the agent remembers it */
	*provider = p->provider;
	if (p->model != NULL) {
		args = json_pack("[s,s]", "--model", p->model);
		if (json_is_array(json_object_get(m, "args")))
			json_array_extend(args, json_object_get(m, "args"));
		else
			json_array_append(args, json_object_get(m, "args"));
		json_object_set_new(m, "args", args);
	}
	*out = m;
	return 0;
}
