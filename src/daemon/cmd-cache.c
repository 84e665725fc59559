/*
 * cmd-cache.c -- cache-first prompts, usage metering and host status:
 * prompt-assemble, usage, host-status.
 *
 * prompt-assemble builds the three regions with src/cache/prompt.c.  With a
 * session_id it also compares regions 1 and 2 with the session's previous
 * request (kept in memory for the most recent sessions) and reports the
 * first differing byte -- the answer to "why did my cache hits drop" -- and
 * records the three region hashes per request in the store's prompt log
 * (store_prompt_log_append) and as a prompt.assembled event.
 *
 * usage normalises every spawned agent's usage (pi's or zot's counters, as
 * the glasspane summed them) into one record per agent with
 * src/cache/usage.c, prices from COLIBRI_PRICES (a JSON price table) when
 * the agent reported no cost, and totals by tenant and overall.
 *
 * Host status is the JSON manifest of colibri-runtime-inventory, run as a
 * child process (so its `--version` probes never block the loop) at start
 * and every COLIBRI_INVENTORY_INTERVAL_MS (10 minutes by default); status
 * shows the latest one, host-status returns it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/prompt.h"
#include "cache/usage.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cache.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "job/job.h"
#include "daemon/skills-index.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "store/store.h"

#define PROMPT_SESSIONS 256

struct last_prompt {
	char *session;
	struct prompt p;
	int64_t used;
};

static struct last_prompt last[PROMPT_SESSIONS];
static struct usage_prices *prices;
static json_t *host_status;
static uv_timer_t inv_timer;
static struct job inv_job;
static struct buf inv_buf;
static int inv_running; /* started, handles not yet closed */
static char *inv_binary;

/* ---- prompt-assemble ---- */

static struct last_prompt *
last_slot(const char *session)
{
	struct last_prompt *oldest = &last[0];
	size_t i;

	for (i = 0; i < PROMPT_SESSIONS; i++) {
		if (last[i].session != NULL && strcmp(last[i].session, session) == 0)
			return &last[i];
		if (last[i].used < oldest->used)
			oldest = &last[i];
	}
	if (oldest->session != NULL) {
		free(oldest->session);
		prompt_free(&oldest->p);
	}
	memset(oldest, 0, sizeof *oldest);
	oldest->session = xstrdup(session);
	return oldest;
}

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
	struct last_prompt *lp;
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
		lp = last_slot(session);
		if (lp->p.bytes != NULL) {
			drift = prompt_drift_regions(&lp->p, &p, PROMPT_DRIFT_CONTEXT);
			prompt_free(&lp->p);
		}
		lp->p = p;
		lp->used = now_ms();
		json_object_set_new(res, "drift", drift != NULL ? drift : json_null());
		json_object_set_new(res, "session_id", json_string(session));
		prompt_log(session, &lp->p);
		events_emit(EV_PROMPT_ASSEMBLED,
		            json_pack("{s:s, s:[s,s,s], s:O}", "session_id", session, "hashes",
		                      lp->p.region[PROMPT_STABLE].sha256,
		                      lp->p.region[PROMPT_SEMI_STABLE].sha256,
		                      lp->p.region[PROMPT_VOLATILE].sha256, "drift",
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
	                     prices, u, cause);
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

/* ---- host status ---- */

#define INV_OUT_MAX     (4 * 1024 * 1024)
#define INV_DEADLINE_MS 60000

static void
inv_read(struct job *j, int which, const char *p, size_t n)
{
	(void)which;
	if (buf_used(&inv_buf) + n > INV_OUT_MAX) {
		job_signal(j, SIGKILL);
		buf_reset(&inv_buf);
		return;
	}
	buf_add(&inv_buf, p, n);
}

static void
inv_done(struct job *jb)
{
	struct store_err e;
	json_t *j;
	char *s;

	if (jb->timed_out || jb->forced || jb->exit_code != 0 || jb->term_signal != 0)
		log_warnx("runtime inventory exited with %d (signal %d%s)", jb->exit_code,
		          jb->term_signal, jb->timed_out ? ", deadline passed" : "");
	job_close(jb);
	j = json_loadb(buf_head(&inv_buf), buf_used(&inv_buf), 0, NULL);
	buf_reset(&inv_buf);
	if (!json_is_object(j)) {
		json_decref(j);
		log_warnx("runtime inventory: no JSON manifest");
		return;
	}
	json_decref(host_status);
	host_status = j;
	s = json_dumps(j, JSON_COMPACT);
	if (txn_write(&e) == 0)
		store_kv_set(D.store, "host_status", s, &e);
	free(s);
	events_emit(EV_HOST_STATUS, json_incref(j));
}

static void
inv_closed(struct job *j)
{
	(void)j;
	inv_running = 0;
}

static void
inv_run(uv_timer_t *t)
{
	char *argv[4], *cause = NULL;
	struct job_spec js;
	extern char **environ;

	(void)t;
	if (inv_running || inv_binary == NULL || D.shutting_down)
		return;
	argv[0] = inv_binary;
	argv[1] = "--state-dir";
	argv[2] = D.cfg.state_dir != NULL ? D.cfg.state_dir : (char *)"/";
	argv[3] = NULL;
	memset(&js, 0, sizeof js);
	js.path = inv_binary;
	js.argv = argv;
	js.envp = environ;
	js.in = PROC_NULL;
	js.out = PROC_PIPE;
	js.err = PROC_NULL;
	js.tree = "job.inventory";
	js.deadline_ms = INV_DEADLINE_MS;
	memset(&inv_job, 0, sizeof inv_job);
	inv_job.on_read = inv_read;
	inv_job.on_done = inv_done;
	inv_job.on_closed = inv_closed;
	if (job_start(&inv_job, &js, &cause) == -1) {
		log_warnx("runtime inventory: %s", cause);
		free(cause);
		return;
	}
	inv_running = 1;
}

json_t *
cache_host_status(void)
{
	return host_status;
}

static void
cmd_host_status(struct cmd_req *r)
{
	if (host_status == NULL) {
		cmd_fail(r, ERR_UNAVAILABLE, "no host inventory yet%s",
		         inv_binary == NULL ? " (colibri-runtime-inventory not found)" : "");
		return;
	}
	cmd_ok(r, json_incref(host_status));
}

int
cache_init(char **cause)
{
	const char *v = getenv("COLIBRI_PRICES");
	json_error_t jerr;
	json_t *cfg;
	char *saved;
	int64_t interval = 600000;

	if (v != NULL && *v != '\0') {
		if ((cfg = json_load_file(v, 0, &jerr)) == NULL) {
			xasprintf(cause, "COLIBRI_PRICES %s: %s", v, jerr.text);
			return -1;
		}
		prices = usage_prices_load(cfg, cause);
		json_decref(cfg);
		if (prices == NULL)
			return -1;
	}
	if ((saved = store_kv_get(D.store, "host_status")) != NULL) {
		host_status = json_loads(saved, 0, NULL);
		free(saved);
	}
	if ((v = getenv("COLIBRI_INVENTORY_INTERVAL_MS")) != NULL && atoll(v) >= 1000)
		interval = atoll(v);
	buf_init(&inv_buf);
	inv_binary = path_search("colibri-runtime-inventory");
	uv_timer_init(D.loop, &inv_timer);
	uv_timer_start(&inv_timer, inv_run, 0, (uint64_t)interval);
	uv_unref((uv_handle_t *)&inv_timer);
	return skills_index_init(cause);
}

int
cache_busy(void)
{
	return inv_running;
}

void
cache_close(void)
{
	size_t i;

	uv_timer_stop(&inv_timer);
	uv_close((uv_handle_t *)&inv_timer, NULL);
	for (i = 0; i < PROMPT_SESSIONS; i++) {
		if (last[i].session != NULL) {
			free(last[i].session);
			prompt_free(&last[i].p);
		}
	}
	usage_prices_free(prices);
	json_decref(host_status);
	buf_free(&inv_buf);
	free(inv_binary);
	skills_index_close();
}

static const struct cmd_arg prompt_args[] = {
        {"session_id", ARG_STR, 0, 0, 0},      {"system", ARG_ANY, 0, 0, 0},
        {"tools", ARG_ANY, 0, 0, 0},           {"skills", ARG_ANY, 0, 0, 0},
        {"context", ARG_ANY, 0, 0, 0},         {"turn", ARG_ANY, 0, 0, 0},
        {"strip_volatile", ARG_BOOL, 0, 0, 0}, {NULL}};
static const struct cmd_arg usage_args[] = {{"agent", ARG_STR, 0, 0, 0},
                                            {"session_id", ARG_STR, 0, 0, 0},
                                            {"tenant", ARG_STR, 0, 0, 0},
                                            {NULL}};
static const struct cmd_arg no_args[] = {{NULL}};

const struct cmd_entry cmd_cache_entries[] = {
        {CMD_PROMPT_ASSEMBLE, CMD_WRITE, CMD_R_ALL, prompt_args, cmd_prompt_assemble},
        {CMD_USAGE, CMD_READ, CMD_R_ALL, usage_args, cmd_usage},
        {CMD_HOST_STATUS, CMD_READ, CMD_R_ALL, no_args, cmd_host_status},
        {NULL, 0, 0, NULL, NULL},
};
