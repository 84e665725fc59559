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

#endif
