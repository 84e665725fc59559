/*
 * cmd-cache.c -- cache-first prompts, usage metering and host status:
 * prompt-assemble, usage, host-status.
 *
 * prompt-assemble builds the three regions with src/cache/prompt.c.  With a
 * session_id it also compares regions 1 and 2 with the session's previous
 * request (kept by cache.c for the most recent sessions) and reports the
 * first differing byte -- the answer to "why did my cache hits drop" -- and
 * records the three region hashes per request in the store's prompt log
 * (store_prompt_log_append) and as a prompt.assembled event.
 *
 * usage normalises every spawned agent's usage (pi's or zot's counters, as
 * the glasspane summed them) into one record per agent with
 * src/cache/usage.c, prices from COLIBRI_PRICES (a JSON price table) when
 * the agent reported no cost, and totals by tenant and overall.
 *
 * host-status returns the latest manifest of the host-status subsystem
 * (inventory.c).  The price table and the prompt memory belong to the
 * cache subsystem (cache.c); this file only answers requests.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/prompt.h"
#include "cache/usage.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cache.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/inventory.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "store/store.h"

/* ---- prompt-assemble ---- */

static void
prompt_log(const char *session, const struct prompt *p)
{
	struct store_err e;

	if (txn_write(&e) == -1 ||
	    store_prompt_log_append(D.store, session, now_ms(), p->region[PROMPT_STABLE].sha256,
	                            p->region[PROMPT_SEMI_STABLE].sha256,
	                            p->region[PROMPT_VOLATILE].sha256, (long long)p->len, &e) == -1)
		log_warnx("prompt_log: %s", e.msg);
}

static void
cmd_prompt_assemble(struct cmd_req *r)
{
	const char *session = cmd_arg_str(r, "session_id");
	struct prompt p;
	struct prompt *last;
	char *cause = NULL;
	json_t *input, *res, *drift = NULL;
	int flags = cmd_arg_bool_or(r, "strip_volatile", 0) ? PROMPT_STRIP_VOLATILE : 0;

	input = json_deep_copy(r->args);
	json_object_del(input, "session_id");
	json_object_del(input, "strip_volatile");
	if (prompt_assemble(input, flags, &p, &cause) == -1) {
		json_decref(input);
		cmd_fail(r, ERR_INVALID_ARGUMENT, "%s", cause);
		free(cause);
		return;
	}
	json_decref(input);
	res = prompt_to_json(&p);
	if (session != NULL) {
		last = cache_last_prompt(session);
		if (last->bytes != NULL) {
			drift = prompt_drift_regions(last, &p, PROMPT_DRIFT_CONTEXT);
			prompt_free(last);
		}
		*last = p;
		json_object_set_new(res, "drift", drift != NULL ? drift : json_null());
		json_object_set_new(res, "session_id", json_string(session));
		prompt_log(session, last);
		events_emit(EV_PROMPT_ASSEMBLED,
		            json_pack("{s:s, s:[s,s,s], s:O}", "session_id", session, "hashes",
		                      last->region[PROMPT_STABLE].sha256,
		                      last->region[PROMPT_SEMI_STABLE].sha256,
		                      last->region[PROMPT_VOLATILE].sha256, "drift",
		                      json_object_get(res, "drift")));
	} else
		prompt_free(&p);
	cmd_ok(r, res);
}

/* ---- usage ---- */

/* The glasspane's usage object, in pi's shape for the normaliser. */
static int
agent_usage(json_t *agent, struct usage *u, char **cause)
{
	json_t *g = json_object_get(agent, "usage"), *pi;
	int rc;

	if (!json_is_object(g))
		return -1;
	pi = json_pack("{s:O, s:O, s:O, s:O, s:{s:O}}", "input", json_object_get(g, "input"),
	               "output", json_object_get(g, "output"), "cacheRead",
	               json_object_get(g, "cache_read"), "cacheWrite",
	               json_object_get(g, "cache_write"), "cost", "total",
	               json_object_get(g, "cost"));
	if (pi == NULL)
		return -1;
	/* A zero cost from the agent means "not reported": price it from the table. */
	if (json_real_value(json_object_get(g, "cost")) == 0.0 &&
	    json_integer_value(json_object_get(g, "cost")) == 0)
		json_object_del(pi, "cost");
	rc = usage_normalize(pi, USAGE_PI, json_string_value(json_object_get(agent, "provider")),
	                     cache_prices(), u, cause);
	json_decref(pi);
	return rc;
}

static int
matches(json_t *a, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(a, key));

	return want == NULL || (v != NULL && strcmp(v, want) == 0);
}

struct tenant_sum {
	const char *tenant; /* borrowed from the agent list */
	struct usage u;
};

static json_t *
usage_record(const struct usage *u)
{
	json_t *rec = usage_to_json(u);

	json_object_set_new(rec, "hit_share", json_real(usage_hit_share(u)));
	return rec;
}

static void
cmd_usage(struct cmd_req *r)
{
	struct store_err e;
	struct usage total, u;
	struct tenant_sum *sums = NULL;
	json_t *list, *a, *items = json_array(), *tenants = json_object(), *rec;
	char *cause = NULL;
	size_t i, k, nsums = 0;

	memset(&total, 0, sizeof total);
	if ((list = store_agent_list(D.store, "spawned", NULL, &e)) == NULL) {
		json_decref(items);
		json_decref(tenants);
		cmd_fail_error(r, &e);
		return;
	}
	json_array_foreach(json_object_get(list, "items"), i, a)
	{
		const char *tenant = json_string_value(json_object_get(a, "tenant"));

		if (!matches(a, "id", cmd_arg_str(r, "agent")) ||
		    !matches(a, "session_id", cmd_arg_str(r, "session_id")) ||
		    !matches(a, "tenant", cmd_arg_str(r, "tenant")))
			continue;
		memset(&u, 0, sizeof u);
		if (agent_usage(a, &u, &cause) == -1) {
			free(cause);
			cause = NULL;
			continue;
		}
		usage_add(&total, &u);
		rec = usage_record(&u);
		json_object_set(rec, "agent", json_object_get(a, "id"));
		json_object_set(rec, "session_id", json_object_get(a, "session_id"));
		json_object_set(rec, "tenant", json_object_get(a, "tenant"));
		json_object_set(rec, "provider", json_object_get(a, "provider"));
		json_array_append_new(items, rec);
		if (tenant == NULL)
			continue;
		for (k = 0; k < nsums && strcmp(sums[k].tenant, tenant) != 0; k++)
			;
		if (k == nsums) {
			sums = xreallocarray(sums, ++nsums, sizeof *sums);
			memset(&sums[k], 0, sizeof sums[k]);
			sums[k].tenant = tenant;
		}
		usage_add(&sums[k].u, &u);
	}
	for (k = 0; k < nsums; k++)
		json_object_set_new(tenants, sums[k].tenant, usage_record(&sums[k].u));
	free(sums);
	json_decref(list);
	cmd_ok(r, json_pack("{s:o, s:o, s:o}", "items", items, "by_tenant", tenants, "total",
	                    usage_record(&total)));
}

/* ---- host-status ---- */

static void
cmd_host_status(struct cmd_req *r)
{
	json_t *hs = inventory_host_status();

	if (hs == NULL) {
		cmd_fail(r, ERR_UNAVAILABLE, "no host inventory yet%s",
		         !inventory_found() ? " (colibri-runtime-inventory not found)" : "");
		return;
	}
	cmd_ok(r, json_incref(hs));
}

static const struct cmd_arg prompt_args[] = {
        {"session_id", ARG_STR, 0, 0, 0},      {"system", ARG_ANY, 0, 0, 0},
        {"tools", ARG_ANY, 0, 0, 0},           {"skills", ARG_ANY, 0, 0, 0},
        {"context", ARG_ANY, 0, 0, 0},         {"turn", ARG_ANY, 0, 0, 0},
        {"strip_volatile", ARG_BOOL, 0, 0, 0}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg usage_args[] = {{"agent", ARG_STR, 0, 0, 0},
                                            {"session_id", ARG_STR, 0, 0, 0},
                                            {"tenant", ARG_STR, 0, 0, 0},
                                            {NULL, 0, 0, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_cache_entries[] = {
        {CMD_PROMPT_ASSEMBLE, CMD_WRITE, CMD_R_ALL, prompt_args, cmd_prompt_assemble},
        {CMD_USAGE, CMD_READ, CMD_R_ALL, usage_args, cmd_usage},
        {CMD_HOST_STATUS, CMD_READ, CMD_R_ALL, no_args, cmd_host_status},
        {NULL, 0, 0, NULL, NULL},
};
