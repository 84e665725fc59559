/*
 * spawn-tenant.h -- a spawn's tenant secrets before start (tenant_env).
 *
 * Life cycle, as cmd-spawn.c uses it: after spawn_spec_parse, a spawn with
 * tenant_env asks spawn_tenant_of which tenant it belongs to (refused when
 * none), then spawn_tenant_env_load.  When that finds the tenant's .env,
 * the variables are in the spec and the spawn goes on at once; when there
 * is none yet, the caller holds its request and calls
 * spawn_tenant_provision, whose callback comes once, from the loop; it
 * then checks and loads again before it spawns.  See spawn-tenant.c.
 */
#ifndef COLIBRI_SPAWN_TENANT_H
#define COLIBRI_SPAWN_TENANT_H

#include "daemon/spawn-spec.h"
#include "daemon/vault-run.h"

/*
 * The tenant spec belongs to: its jail's name is a registered tenant and
 * its jail's root is that tenant's jail_root_path (trailing slashes aside).
 * 0 with *tenant (the caller frees), or -1 with *cause (the caller frees)
 * saying what is missing: the answer is invalid_argument.
 */
int spawn_tenant_of(const struct spawn_spec *spec, char **tenant, char **cause);
/*
 * Load the tenant's .env from the spec's jail root into spec->env: each
 * name the spawn's own env (or its profile's) does not set.  Names are
 * checked as a caller's are (shell identifiers, not reserved); the causes
 * name keys, never values.  1 when loaded (spec->tenant_env is set), 0 when
 * there is no .env yet, -1 with *cause.
 */
int spawn_tenant_env_load(struct spawn_spec *spec, char **cause);
/*
 * Provision tenant for a held spawn.  Spawns waiting on the same tenant
 * share one provisioning: each gets done(arg, ...) when it ends, in the
 * order they asked.  -1 (and no call) when the vault is shutting down.
 */
int spawn_tenant_provision(const char *tenant, vault_done_fn *done, void *arg);

#endif
