/*
 * vault-run.h -- the daemon's vault provisioning runner (see vault-run.c).
 */
#ifndef COLIBRI_VAULT_RUN_H
#define COLIBRI_VAULT_RUN_H

#include <jansson.h>

/*
 * How a provisioning job ended, for whoever waits on it: the tenant's row
 * (borrowed) when it succeeded, else NULL with an error code (proto.h) and
 * a message.  Called once, always from the loop, never inside
 * vault_provision.
 */
typedef void vault_done_fn(void *arg, json_t *tenant, const char *code, const char *msg);

int vault_init(char **cause);
void vault_shutdown(void);
int vault_busy(void);
void vault_close(void);
/* provision-tenant: queue a job; done(arg, ...) is called when it ends.  -1 (and
 * no call) when the vault is shutting down. */
int vault_provision(const char *tenant, vault_done_fn *done, void *arg);
/*
 * The tenant's .env as the vault wrote it under tenant_root (contained
 * under COLIBRI_JAIL_ROOT_BASE like a provisioning target; vault_read_env
 * says what is refused): 1 with *vars (free with vault_vars_free), 0 when
 * there is none yet, -1 with *cause.
 */
int vault_tenant_env(const char *tenant_root, json_t **vars, char **cause);
/*
 * The spawner calls this after a successful jailed spawn: when the jail
 * names a tenant, its env is provisioned into jail_root (queued; nothing
 * happens while the vault is stopping).
 */
void vault_jailed_spawned(const char *agent_id, const char *jail_name, const char *jail_root);

#endif
