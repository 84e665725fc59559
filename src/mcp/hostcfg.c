/*
 * hostcfg.c -- parse and validate the external MCP host's configuration.
 *
 * Strict on purpose: the file decides which third-party code runs and which
 * of its tools agents may call, so every problem is reported with the
 * server's name and the key, and nothing half-parsed is returned.
 */
#include "mcp/hostcfg.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xmalloc.h"

static const char *const hostcfg_keys[] = {"name", "command",  "args",  "env", "cwd",
                                           "jail", "ro_paths", "allow", NULL};

static int
hostcfg_fail(char **cause, const char *server, const char *what)
{
	xasprintf(cause, "server %s: %s", server != NULL ? server : "#?", what);
	return -1;
}

static const char *
hostcfg_name_check(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > HOSTCFG_NAME_MAX)
		return "\"name\" must be 1 to 32 characters";
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-'))
			return "\"name\" may hold only letters, digits, '_' and '-'";
	if (strstr(name, "__") != NULL)
		return "\"name\" must not contain \"__\" (it separates server and tool)";
	return NULL;
}

/* A JSON array of strings as a NULL-terminated vector; -1 on a non-string. */
static int
hostcfg_strv(const json_t *a, char ***out, int absolute)
{
	size_t i, n = json_array_size(a);
	char **v = xcalloc(n + 1, sizeof *v);

	*out = v;
	for (i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));
		if (s == NULL || (absolute && s[0] != '/'))
			return -1;
		v[i] = xstrdup(s);
	}
	return 0;
}

static void
hostcfg_strv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static int
hostcfg_env(const json_t *env, struct hostcfg_server *s, char **cause)
{
	const char *k;
	json_t *v;

	s->env = json_object();
	if (env == NULL)
		return 0;
	if (!json_is_object(env))
		return hostcfg_fail(cause, s->name, "\"env\" must be an object");
	json_object_foreach((json_t *)env, k, v)
	{
		if (!is_shell_identifier(k) || !json_is_string(v))
			return hostcfg_fail(
			        cause, s->name,
			        "\"env\" names must be shell identifiers, values strings");
		json_object_set(s->env, k, v);
	}
	return 0;
}

static int
hostcfg_unknown_key(const json_t *o, const struct hostcfg_server *s, char **cause)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)o, k, v)
	{
		for (i = 0; hostcfg_keys[i] != NULL; i++)
			if (strcmp(k, hostcfg_keys[i]) == 0)
				break;
		if (hostcfg_keys[i] == NULL) {
			xasprintf(cause, "server %s: unknown key \"%s\"",
			          s->name != NULL ? s->name : "#?", k);
			return -1;
		}
	}
	return 0;
}

static int
hostcfg_lists(const json_t *o, struct hostcfg_server *s, char **cause)
{
	const json_t *args = json_object_get(o, "args"), *ro = json_object_get(o, "ro_paths");
	const json_t *allow = json_object_get(o, "allow");
	size_t i;

	if ((args != NULL && !json_is_array(args)) || hostcfg_strv(args, &s->args, 0) == -1)
		return hostcfg_fail(cause, s->name, "\"args\" must be an array of strings");
	if ((ro != NULL && !json_is_array(ro)) || hostcfg_strv(ro, &s->ro_paths, 1) == -1)
		return hostcfg_fail(cause, s->name, "\"ro_paths\" must be absolute paths");
	if (!json_is_array(allow) || hostcfg_strv(allow, &s->allow, 0) == -1)
		return hostcfg_fail(cause, s->name,
		                    "\"allow\" must list the tools to offer (\"*\" for all)");
	for (i = 0; s->allow[i] != NULL; i++)
		if (strcmp(s->allow[i], "*") == 0)
			s->allow_all = 1;
	return 0;
}

static int
hostcfg_server(const json_t *o, struct hostcfg_server *s, char **cause)
{
	const char *name = json_string_value(json_object_get(o, "name")), *why;
	const char *cmd = json_string_value(json_object_get(o, "command"));
	const json_t *cwd = json_object_get(o, "cwd");
	char *jcause = NULL;

	if (!json_is_object(o))
		return hostcfg_fail(cause, NULL, "each server must be an object");
	if (name == NULL)
		return hostcfg_fail(cause, NULL, "\"name\" is missing");
	s->name = xstrdup(name);
	if ((why = hostcfg_name_check(name)) != NULL)
		return hostcfg_fail(cause, name, why);
	if (hostcfg_unknown_key(o, s, cause) == -1)
		return -1;
	if (cmd == NULL || *cmd == '\0')
		return hostcfg_fail(cause, name, "\"command\" must be a non-empty string");
	s->command = xstrdup(cmd);
	if (cwd != NULL && (!json_is_string(cwd) || json_string_value(cwd)[0] != '/'))
		return hostcfg_fail(cause, name, "\"cwd\" must be an absolute path");
	s->cwd = cwd != NULL ? xstrdup(json_string_value(cwd)) : NULL;
	if (hostcfg_env(json_object_get(o, "env"), s, cause) == -1)
		return -1;
	if (hostcfg_lists(o, s, cause) == -1)
		return -1;
	if (jail_config_parse(json_object_get(o, "jail"), &s->jail, &jcause) == -1) {
		xasprintf(cause, "server %s: jail: %s", name, jcause);
		free(jcause);
		return -1;
	}
	return 0;
}

static int
hostcfg_unique(const struct hostcfg *c, char **cause)
{
	size_t i, j;

	for (i = 0; i < c->n; i++)
		for (j = 0; j < i; j++)
			if (strcmp(c->servers[i].name, c->servers[j].name) == 0)
				return hostcfg_fail(cause, c->servers[i].name,
				                    "the name is used twice");
	return 0;
}

int
hostcfg_parse(const json_t *root, struct hostcfg *out, char **cause)
{
	const json_t *servers = json_object_get(root, "servers");
	size_t i;

	memset(out, 0, sizeof *out);
	*cause = NULL;
	if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(servers)) {
		xasprintf(cause, "the configuration must be {\"servers\": [...]}");
		return -1;
	}
	out->servers = xcalloc(json_array_size(servers) + 1, sizeof *out->servers);
	for (i = 0; i < json_array_size(servers); i++) {
		out->n++;
		if (hostcfg_server(json_array_get(servers, i), &out->servers[i], cause) == -1)
			goto fail;
	}
	if (hostcfg_unique(out, cause) == -1)
		goto fail;
	return 0;
fail:
	hostcfg_clear(out);
	return -1;
}

int
hostcfg_load(const char *path, struct hostcfg *out, char **cause)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(out, 0, sizeof *out);
	if ((root = json_load_file(path, 0, &jerr)) == NULL) {
		xasprintf(cause, "%s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	rc = hostcfg_parse(root, out, cause);
	json_decref(root);
	if (rc == -1) {
		char *c = *cause;
		xasprintf(cause, "%s: %s", path, c);
		free(c);
	}
	return rc;
}

void
hostcfg_clear(struct hostcfg *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		struct hostcfg_server *s = &c->servers[i];
		free(s->name);
		free(s->command);
		hostcfg_strv_free(s->args);
		json_decref(s->env);
		free(s->cwd);
		jail_config_clear(&s->jail);
		hostcfg_strv_free(s->ro_paths);
		hostcfg_strv_free(s->allow);
	}
	free(c->servers);
	memset(c, 0, sizeof *c);
}

int
hostcfg_allows(const struct hostcfg_server *s, const char *tool)
{
	size_t i;

	if (s->allow_all)
		return 1;
	for (i = 0; s->allow != NULL && s->allow[i] != NULL; i++)
		if (strcmp(s->allow[i], tool) == 0)
			return 1;
	return 0;
}
