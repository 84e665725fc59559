/*
 * vault-run.h -- the daemon's vault provisioning runner (see vault-run.c).
 */
#ifndef COLIBRI_VAULT_RUN_H
#define COLIBRI_VAULT_RUN_H

struct cmd_req;

int vault_init(char **cause);
void vault_shutdown(void);
int vault_busy(void);
void vault_close(void);
/* provision-tenant: queue a job; r is held and answered when it ends. */
void vault_provision(struct cmd_req *r, const char *tenant);
/*
 * The spawner calls this after a successful jailed spawn: when the jail
 * names a tenant, its env is provisioned into jail_root (queued; nothing
 * happens while the vault is stopping).
 */
void vault_jailed_spawned(const char *agent_id, const char *jail_name, const char *jail_root);

#endif
