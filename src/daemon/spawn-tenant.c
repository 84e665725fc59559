/*
 * spawn-tenant.c -- a tenant's secrets in its agent's environment before
 * the agent starts, when the spawn asks for it (tenant_env).
 *
 * The seeds' order stays the default: a jailed spawn whose jail names a
 * registered tenant starts, and the vault provisions the tenant's .env
 * afterwards (vault_jailed_spawned), for whatever the jail runs next.  A
 * spawn with tenant_env turns it around: the agent is the one that needs
 * the variables, so it must not start without them.
 *
 * Which tenant: the jail's name names a registered tenant, and the jail's
 * root is that tenant's jail_root_path -- the rule the vault already holds
 * a spawn to.  Anything else is refused before anything runs.
 *
 * Where the variables come from: <tenant root>/.env, as vault-run.c writes
 * it (0600, the daemon's).  The daemon reads it itself (vault_read_env:
 * never through a symlink, never a file an agent planted) and parses it
 * without evaluating anything; the values join the spec's env, which
 * confine/stage.c writes into the stage's env.sh, one single-quoted
 * `export NAME='value'` each, and launch.sh sources before it runs the
 * agent.  So a value reaches the agent's environment byte for byte -- a
 * $(...), a quote or a newline in it is data -- and never argv, the agent
 * row (which has no env), an event, a reply or a log: the causes here name
 * keys, never values.  A name the spawn sets itself (or its profile) keeps
 * the spawn's value.
 *
 * When there is no .env yet, the spawn waits for a provisioning: the vault
 * runs bw as child processes, so the daemon keeps answering meanwhile.
 * Spawns waiting on the same tenant share one provisioning (one bw chain),
 * listed here by tenant until the vault calls back.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/jail.h"
#include "daemon/daemon.h"
#include "daemon/spawn-tenant.h"
#include "store/store.h"
#include "vault/vault.h"

struct waiter {
	vault_done_fn *done;
	void *arg;
	struct waiter *next;
};

/* One provisioning for spawns: the tenant and who waits on it, in order. */
struct pending {
	char *tenant;
	struct waiter *waiters, **tail;
	struct pending *next;
};

static struct pending *pendings;

int
spawn_tenant_of(const struct spawn_spec *spec, char **tenant, char **cause)
{
	const char *name = spec->jail.name, *root = jail_config_root(&spec->jail);
	struct store_err e;
	char *a, *b;
	json_t *t;
	int same;

	*tenant = NULL;
	if (!jail_config_active(&spec->jail) || name == NULL || root == NULL) {
		xasprintf(cause, "tenant_env needs a tenant's jail: a jail whose name is a "
		                 "registered tenant and whose root (root_path or path) is its "
		                 "jail_root_path");
		return -1;
	}
	if ((t = store_tenant_get(D.store, name, &e)) == NULL) {
		xasprintf(cause, "tenant_env: the jail name %s is not a registered tenant", name);
		return -1;
	}
	a = path_normalize_trailing(json_string_value(json_object_get(t, "jail_root_path")));
	b = path_normalize_trailing(root);
	json_decref(t);
	if (!(same = strcmp(a, b) == 0))
		xasprintf(cause,
		          "tenant_env: the jail root %s is not tenant %s's jail_root_path %s", b,
		          name, a);
	else
		*tenant = xstrdup(name);
	free(a);
	free(b);
	return same ? 0 : -1;
}

/* Is the name one the agent may get?  The same rules as a caller's env, and stage.c's. */
static int
env_name_ok(const char *k, char **cause)
{
	if (!is_shell_identifier(k) || strlen(k) > 256) {
		xasprintf(cause, "tenant_env: a .env name is not a valid variable name");
		return 0;
	}
	if (spawn_env_name_reserved(k) || strncmp(k, "_colibri_", 9) == 0) {
		xasprintf(cause,
		          "tenant_env: the .env sets %s, a reserved name (COLIBRI_*, LD_*, BW_*, "
		          "DYLD_*, _colibri_*): refusing the spawn",
		          k);
		return 0;
	}
	return 1;
}

int
spawn_tenant_env_load(struct spawn_spec *spec, char **cause)
{
	json_t *vars, *v;
	const char *k;
	char *why = NULL;
	int rc;

	rc = vault_tenant_env(jail_config_root(&spec->jail), &vars, &why);
	if (rc == -1) {
		xasprintf(cause, "tenant_env: %s", why);
		free(why);
	}
	if (rc != 1)
		return rc;
	json_object_foreach(vars, k, v)
	{
		if (!env_name_ok(k, cause)) {
			vault_vars_free(vars);
			return -1;
		}
	}
	if (spec->env == NULL)
		spec->env = json_object();
	json_object_foreach(vars, k, v)
	{
		if (json_object_get(spec->env, k) == NULL)
			json_object_set_new(spec->env, k, json_string(json_string_value(v)));
	}
	vault_vars_free(vars);
	spec->tenant_env = 1;
	return 1;
}

/* The vault has provisioned (or not): tell each spawn that waited, in order. */
static void
provisioned(void *arg, json_t *tenant, const char *code, const char *msg)
{
	struct pending *p = arg, **pp;
	struct waiter *w, *next;

	/* Unlinked first: a spawn told now that asks again starts a provisioning anew. */
	for (pp = &pendings; *pp != NULL && *pp != p; pp = &(*pp)->next)
		;
	if (*pp == p)
		*pp = p->next;
	for (w = p->waiters; w != NULL; w = next) {
		next = w->next;
		w->done(w->arg, tenant, code, msg);
		free(w);
	}
	free(p->tenant);
	free(p);
}

int
spawn_tenant_provision(const char *tenant, vault_done_fn *done, void *arg)
{
	struct waiter *w = xcalloc(1, sizeof *w);
	struct pending *p;

	w->done = done;
	w->arg = arg;
	for (p = pendings; p != NULL && strcmp(p->tenant, tenant) != 0; p = p->next)
		;
	if (p != NULL) {
		*p->tail = w;
		p->tail = &w->next;
		return 0;
	}
	p = xcalloc(1, sizeof *p);
	p->tenant = xstrdup(tenant);
	p->waiters = w;
	p->tail = &w->next;
	if (vault_provision(tenant, provisioned, p) == -1) {
		free(p->tenant);
		free(p);
		free(w);
		return -1;
	}
	p->next = pendings;
	pendings = p;
	return 0;
}
