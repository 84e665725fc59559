/*
 * cmd-tenant.c -- tenants: register-tenant, list-tenants, delete-tenant,
 * provision-tenant.  All privileged: a tenant decides where secrets land.
 *
 * tenant_id = jail name = collection name (the runbook's 1:1:1 contract);
 * collection_id defaults to tenant_id.  A jail root must be its own
 * canonical path (realpath(root) == root) when it exists.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/paths.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/vault-run.h"
#include "store/store.h"
#include "vault/vault.h"

/* The same rule as a jail name: [A-Za-z0-9_.-], 1-64, no "..", not starting with '-' or '.'. */
static int
tenant_id_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.' || strstr(s, "..") != NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return 0;
	return 1;
}

static int
check_tenant_arg(struct cmd_req *r)
{
	if (!tenant_id_ok(cmd_arg_str(r, "tenant_id"))) {
		cmd_fail(r, ERR_INVALID_ARGUMENT,
		         "tenant_id must be 1-64 of [A-Za-z0-9_.-] (it is also the jail name)");
		return -1;
	}
	return 0;
}

static void
cmd_register_tenant(struct cmd_req *r)
{
	const char *root = cmd_arg_str(r, "jail_root_path"),
	           *coll = cmd_arg_str(r, "collection_id");
	struct store_err e;
	char *cause = NULL;
	json_t *t;

	if (check_tenant_arg(r) == -1)
		return;
	if (root[0] != '/' || strstr(root, "/../") != NULL ||
	    (strlen(root) >= 3 && strcmp(root + strlen(root) - 3, "/..") == 0)) {
		cmd_fail(r, ERR_INVALID_ARGUMENT,
		         "jail_root_path must be an absolute path without ..");
		return;
	}
	/* A root that is or passes through a symlink could land these secrets in
	 * another tenant's root; the vault checks again before it writes. */
	if (vault_root_canonical(root, &cause) == -1) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "%s", cause);
		free(cause);
		return;
	}
	t = store_tenant_put(D.store, cmd_arg_str(r, "tenant_id"), root,
	                     coll != NULL ? coll : cmd_arg_str(r, "tenant_id"), now_ms(), &e);
	if (t == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	events_emit(EV_TENANT_REGISTERED, json_incref(t));
	cmd_ok(r, t);
}

static void
cmd_list_tenants(struct cmd_req *r)
{
	struct store_err e;
	json_t *res = store_tenant_list(D.store, &e);

	if (res == NULL)
		cmd_fail_error(r, &e);
	else
		cmd_ok(r, res);
}

/* Remove STATE/vault/<tenant> (bw's data for the tenant), not following symlinks. */
static void
remove_vault_data(const char *tenant)
{
	char *base = path_join(D.cfg.state_dir != NULL ? D.cfg.state_dir : PATH_DEFAULT_DATA,
	                       "vault"),
	     *dir = path_join(base, tenant);

	if (vault_remove_dir(dir) == -1)
		log_warn("tenant %s: removing %s", tenant, dir);
	free(dir);
	free(base);
}

static void
cmd_delete_tenant(struct cmd_req *r)
{
	struct store_err e;

	if (check_tenant_arg(r) == -1)
		return;
	if (store_tenant_delete(D.store, cmd_arg_str(r, "tenant_id"), &e) == -1) {
		cmd_fail_error(r, &e);
		return;
	}
	remove_vault_data(cmd_arg_str(r, "tenant_id"));
	events_emit(EV_TENANT_DELETED,
	            json_pack("{s:s}", "tenant_id", cmd_arg_str(r, "tenant_id")));
	cmd_ok(r, json_object());
}

/* The job provision-tenant queued has ended. */
static void
provision_done(void *arg, json_t *tenant, const char *code, const char *msg)
{
	struct cmd_req *r = arg;

	if (tenant != NULL)
		cmd_ok(r, json_incref(tenant));
	else
		cmd_fail(r, code, "%s", msg);
}

/* Held until the job ends (a client gone meanwhile gets nothing; the request is freed). */
static void
cmd_provision_tenant(struct cmd_req *r)
{
	struct store_err e;
	json_t *t;

	if (check_tenant_arg(r) == -1)
		return;
	if ((t = store_tenant_get(D.store, cmd_arg_str(r, "tenant_id"), &e)) == NULL) {
		cmd_fail_error(r, &e);
		return;
	}
	json_decref(t);
	if (vault_provision(cmd_arg_str(r, "tenant_id"), provision_done, r) == -1) {
		cmd_fail(r, ERR_UNAVAILABLE, "the daemon is shutting down");
		return;
	}
	cmd_req_hold(r);
}

static const struct cmd_arg register_args[] = {{"tenant_id", ARG_STR, 1, 0, 0},
                                               {"jail_root_path", ARG_STR, 1, 0, 1024},
                                               {"collection_id", ARG_STR, 0, 1, 256},
                                               {NULL, 0, 0, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};
static const struct cmd_arg tenant_args[] = {{"tenant_id", ARG_STR, 1, 0, 0}, {NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_tenant_entries[] = {
        {CMD_REGISTER_TENANT, CMD_WRITE, CMD_R_ADMIN, register_args, cmd_register_tenant},
        {CMD_LIST_TENANTS, CMD_READ, CMD_R_ADMIN, no_args, cmd_list_tenants},
        {CMD_DELETE_TENANT, CMD_WRITE, CMD_R_ADMIN, tenant_args, cmd_delete_tenant},
        {CMD_PROVISION_TENANT, CMD_ASYNC, CMD_R_ADMIN, tenant_args, cmd_provision_tenant},
        {NULL, 0, 0, NULL, NULL},
};
