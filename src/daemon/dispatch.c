/*
 * dispatch.c -- the dispatcher: while it is on, every ready task whose
 * profile has a free slot gets a task-bound run.
 *
 * A walk reads the claims held now (claimed tasks whose owner is an agent
 * this host spawned, counted in all, by the agent's profile and by its
 * tenant), then the ready queue in its order, and for each task asks
 * dispatch_policy_why whether it may start: a task routed to no profile, a
 * parked profile, a profile backing off after a failed spawn or a full cap
 * is skipped (the next task may still start: another profile, another
 * tenant).  A start is spawn-agent {profile, task: ID} by the daemon's own
 * uid: profiles_apply, spawn_spec_parse, spawner_spawn, which claims the
 * task in the transaction that records the agent; the counts grow with it,
 * so within a walk and across walks the claims never pass a cap -- an
 * agent waiting out a restart's backoff still holds its claim and still
 * counts, so a restart storm cannot start more.
 *
 * Walks happen when a slot may have opened (dispatch_kick: the server
 * calls it after publishing task.* and agent.exited events; coalesced into
 * one walk on the next turn of the loop) and on a timer, the safety net.
 * A spawn that fails (a profile missing from profiles.json, a binary that
 * is not there, a jail refused) backs its profile off, 1 s doubling to
 * 60 s, so a broken profile costs at most one attempt per backoff; the
 * failures are kept (the last DISPATCH_FAILURES) for the status.  A task
 * whose own start keeps failing is set aside after TASK_START_TRIES, so it
 * does not hold the queue of its profile.
 *
 * On/off: the file's "enabled", unless `dispatch on|off` said otherwise
 * for this content of the file: the switch is kept in the store's kv with
 * the file's digest, so it survives a restart and is dropped when the file
 * changes (the operator's new file speaks last).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/config-file.h"
#include "daemon/daemon.h"
#include "daemon/dispatch-policy.h"
#include "daemon/dispatch.h"
#include "daemon/profiles.h"
#include "daemon/spawn-spec.h"
#include "daemon/spawn-tenant.h"
#include "daemon/spawner.h"
#include "daemon/txn.h"
#include "store/store.h"

#define DISPATCH_KV       "dispatch.switch"
#define DISPATCH_FAILURES 8
#define BACKOFF_FIRST_MS  1000
#define BACKOFF_MAX_MS    60000
#define WALK_SCAN_MAX     500 /* ready tasks looked at per walk */
#define WALK_SPAWN_MAX    32  /* starts per walk; more on the next turn */
#define TASK_START_TRIES  3   /* failed starts before a task is set aside */

static struct dispatch_policy pol;
static char *dispatch_path;
static int switched = -1; /* dispatch on|off for this file: 1, 0; -1: the file decides */
static int running, inited;
static uv_timer_t tick_timer, kick_timer;
static int kick_pending;
static int first_done;    /* first_cb ran (the resumes, if asked, came first) */
static long long started; /* runs started since the daemon started */
static json_t *failures;  /* [{at_ms, task, profile, error}], newest last */
static json_t *backoffs;  /* {"PROFILE": {until_ms, delay_ms, failures}} */
static json_t *missing;   /* profiles the policy names that profiles.json lacks */
static json_t *tries;     /* {"TASK_ID": failed starts} */

static void count_add(json_t *counts, const char *name);

static int
dispatch_on(void)
{
	return switched >= 0 ? switched : pol.enabled;
}

/* ---- the switch, kept in the store ---- */

static void
switch_load(void)
{
	char *s = store_kv_get(D.store, DISPATCH_KV);
	json_t *o = s != NULL ? json_loads(s, 0, NULL) : NULL;
	json_t *on = json_object_get(o, "on");
	const char *dg = json_string_value(json_object_get(o, "digest"));

	switched = json_is_boolean(on) && dg != NULL && strcmp(dg, pol.digest) == 0
	                   ? json_is_true(on)
	                   : -1;
	json_decref(o);
	free(s);
}

static int
switch_store(json_t *on, char **cause)
{
	struct store_err e;
	json_t *o = json_pack("{s:O, s:s}", "on", on, "digest", pol.digest);
	char *s = json_dumps(o, JSON_COMPACT);
	int rc = 0;

	json_decref(o);
	if (txn_write(&e) == -1 || store_kv_set(D.store, DISPATCH_KV, s, &e) == -1) {
		xasprintf(cause, "the switch could not be kept: %s", e.msg);
		rc = -1;
	}
	free(s);
	return rc;
}

int
dispatch_switch(int on, char **cause)
{
	if (switch_store(on ? json_true() : json_false(), cause) == -1)
		return -1;
	switched = on;
	log_info("dispatcher switched %s", on ? "on" : "off");
	if (on) {
		json_object_clear(tries); /* tasks set aside get another chance */
		dispatch_kick();
	}
	return 0;
}

/* ---- failures and backoff ---- */

/* Keep a failure for the status (the last DISPATCH_FAILURES). */
static void
failure_keep(long long task, const char *profile, const char *error)
{
	if (json_array_size(failures) == DISPATCH_FAILURES)
		json_array_remove(failures, 0);
	json_array_append_new(
	        failures,
	        json_pack("{s:I, s:o, s:o, s:s}", "at_ms", (json_int_t)now_ms(), "task",
	                  task > 0 ? json_integer(task) : json_null(), "profile",
	                  profile != NULL ? json_string(profile) : json_null(), "error", error));
}

/* A spawn of task with profile failed: kept, and the profile backs off (1 s doubling to 60 s). */
static void
failure_note(long long task, const char *profile, const char *error)
{
	json_t *b = json_object_get(backoffs, profile);
	long long delay = json_integer_value(json_object_get(b, "delay_ms"));
	long long n = json_integer_value(json_object_get(b, "failures"));

	delay = delay == 0 ? BACKOFF_FIRST_MS : delay * 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	json_object_set_new(backoffs, profile,
	                    json_pack("{s:I, s:I, s:I, s:s}", "until_ms",
	                              (json_int_t)(now_ms() + delay), "delay_ms", (json_int_t)delay,
	                              "failures", (json_int_t)(n + 1), "error", error));
	failure_keep(task, profile, error);
	log_warnx("dispatch: task %lld with profile %s did not start (%s); the profile backs off "
	          "%lld ms",
	          task, profile, error, delay);
}

/* A profile the policy routes to is not in profiles.json: listed (and logged) once. */
static void
missing_note(const char *profile)
{
	size_t i;

	for (i = 0; i < json_array_size(missing); i++)
		if (strcmp(json_string_value(json_array_get(missing, i)), profile) == 0)
			return;
	json_array_append_new(missing, json_string(profile));
	log_warnx("dispatch: profile %s is not in profiles.json; its tasks wait", profile);
}

/*
 * A task whose own start fails again and again (its prompt too long for an
 * argument, say) must not hold its profile's queue: after TASK_START_TRIES
 * failed starts it is set aside, and the tasks behind it go on.  Reloading
 * the policy or dispatch on tries it again.
 */
static void
task_failed_start(long long id)
{
	char key[24];

	snprintf(key, sizeof key, "%lld", id);
	count_add(tries, key);
}

static int
task_set_aside(long long id)
{
	char key[24];

	snprintf(key, sizeof key, "%lld", id);
	return json_integer_value(json_object_get(tries, key)) >= TASK_START_TRIES;
}

/* The tasks set aside, by id. */
static json_t *
set_aside_list(void)
{
	json_t *a = json_array(), *v;
	const char *k;

	json_object_foreach(tries, k, v) if (json_integer_value(v) >= TASK_START_TRIES)
	        json_array_append_new(a, json_integer(strtoll(k, NULL, 10)));
	return a;
}

/* The time until which profile backs off after a failed spawn, or 0. */
static int64_t
backoff_until(const char *profile)
{
	json_t *b = json_object_get(backoffs, profile);
	int64_t until = json_integer_value(json_object_get(b, "until_ms"));

	return until > now_ms() ? until : 0;
}

/* ---- the claims held now ---- */

static void
count_add(json_t *counts, const char *name)
{
	if (name != NULL)
		json_object_set_new(
		        counts, name,
		        json_integer(json_integer_value(json_object_get(counts, name)) + 1));
}

/*
 * The owner of n claims, if it is an agent this host spawned: its profile and tenant
 * counted (n times).
 */
static void
count_owner(struct dispatch_used *u, const char *owner, json_int_t n)
{
	struct store_err e;
	json_t *a = store_agent_get(D.store, owner, &e);
	const char *kind = json_string_value(json_object_get(a, "kind"));
	const char *host = json_string_value(json_object_get(a, "host"));

	for (; n > 0 && kind != NULL && strcmp(kind, "spawned") == 0 && host != NULL &&
	       strcmp(host, D.hostname) == 0;
	     n--) {
		u->host++;
		count_add(u->profiles, json_string_value(json_object_get(a, "profile")));
		count_add(u->tenants, json_string_value(json_object_get(a, "tenant")));
	}
	json_decref(a);
}

/*
 * Fill u (its objects new) from the board: 0, or -1 when the store could not be read.
 * A spawned run's claim is the only one without a lease (task-claim's lease_ms is at
 * least 100), so the claims counted are the store's claims without a lease, by owner
 * (store_counts' unleased_owners): O(those claims), which the caps bound, not O(every
 * claim on the board).
 */
static int
count_claims(struct dispatch_used *u)
{
	json_t *counts = store_counts(D.store), *n;
	json_t *owners = json_object_get(json_object_get(counts, "tasks"), "unleased_owners");
	const char *owner;
	int rc;

	u->host = 0;
	u->profiles = json_object();
	u->tenants = json_object();
	json_object_foreach(owners, owner, n)
	{
		count_owner(u, owner, json_integer_value(n));
	}
	rc = json_is_object(owners) ? 0 : -1;
	json_decref(counts);
	return rc;
}

static void
used_clear(struct dispatch_used *u)
{
	json_decref(u->profiles);
	json_decref(u->tenants);
}

/* The ready queue's head (up to n tasks, in order): a new array, or NULL. */
static json_t *
ready_queue(long long n)
{
	struct store_task_page pg = {0};
	struct store_err e;
	struct buf b;
	json_t *list = NULL;

	buf_init(&b);
	buf_addc(&b, '[');
	pg.ready_only = 1;
	pg.limit = n;
	if (store_task_list_json(D.store, &pg, &b, &e) == 0) {
		buf_addc(&b, ']');
		list = json_loadb(buf_head(&b), buf_used(&b), 0, NULL);
	}
	buf_free(&b);
	return list;
}

/* ---- one task ---- */

/*
 * The spawn arguments of a run of task with profile: a new object in *args
 * and the provider, or -1 with *cause (the profile is not in profiles.json).
 */
static int
task_args(long long task, const char *profile, json_t **args, const char **prov, char **cause)
{
	json_t *req = json_pack("{s:I}", "task", (json_int_t)task);
	int rc;

	*prov = NULL;
	rc = profiles_apply(profile, req, args, prov, cause);
	json_decref(req);
	return rc;
}

/* The tenant a run with args would count against: its jail's name, or NULL. */
static const char *
args_tenant(json_t *args)
{
	return json_string_value(json_object_get(json_object_get(args, "jail"), "name"));
}

/* A tenant_env run needs the tenant's .env now: the dispatcher holds no request to wait. */
static int
tenant_env_ready(struct spawn_spec *spec, char **cause)
{
	char *tenant = NULL;
	int rc;

	if (spawn_tenant_of(spec, &tenant, cause) == -1)
		return -1;
	rc = spawn_tenant_env_load(spec, cause);
	if (rc == 0)
		xasprintf(cause, "tenant_env: tenant %s has no .env yet (provision-tenant %s)",
		          tenant, tenant);
	free(tenant);
	return rc == 1 ? 0 : -1;
}

/* Start the run of task with args; 0, or -1 with *cause. */
static int
task_start(long long task, json_t *args, const char *prov, char **cause)
{
	struct spawn_spec spec;
	const char *code = ERR_INTERNAL;
	json_t *a;

	if (spawn_spec_parse(args, prov, D.uid, &spec, &code, cause) == -1)
		return -1;
	if (json_is_true(json_object_get(args, "tenant_env")) &&
	    tenant_env_ready(&spec, cause) == -1) {
		spawn_spec_clear(&spec);
		return -1;
	}
	if ((a = spawner_spawn(&spec, &code, cause)) == NULL)
		return -1;
	log_info("dispatch: task %lld started as agent %s", task,
	         json_string_value(json_object_get(a, "id")));
	json_decref(a);
	started++;
	return 0;
}

/*
 * Why task t cannot start now (why filled: 1, or 2 when its profile is
 * not in profiles.json), or 0 with *args and *prov set for its start (the
 * caller frees args).  *profile and *tenant are borrowed (from the policy
 * and from *args).
 */
static int
task_why(json_t *t, const struct dispatch_used *u, const char **profile, const char **tenant,
         json_t **args, const char **prov, char *why, size_t len)
{
	long long id = json_integer_value(json_object_get(t, "id"));
	int64_t until;
	char *cause = NULL;

	*args = NULL;
	*tenant = NULL;
	*profile = dispatch_policy_profile_of(&pol, json_object_get(t, "tags"));
	if (task_set_aside(id)) {
		snprintf(why, len,
		         "task %lld failed to start %d times (set aside until a reload or dispatch "
		         "on)",
		         id, TASK_START_TRIES);
		return 1;
	}
	if (*profile != NULL && (until = backoff_until(*profile)) > 0) {
		snprintf(why, len, "profile %s backs off after a failed spawn (%lld s)", *profile,
		         (long long)((until - now_ms() + 999) / 1000));
		return 1;
	}
	if (*profile != NULL && task_args(id, *profile, args, prov, &cause) == -1) {
		snprintf(why, len, "profile %s is not in profiles.json", *profile);
		free(cause);
		return 2;
	}
	*tenant = *args != NULL ? args_tenant(*args) : NULL;
	if (dispatch_policy_why(&pol, u, *profile, *tenant,
	                        *profile != NULL ? spawner_parked_until(*profile) : 0, now_ms(),
	                        why, len) == 0)
		return 0;
	json_decref(*args);
	*args = NULL;
	return 1;
}

/* ---- the walk ---- */

/* Try task t: 1 when it started, else 0 (why filled when it cannot start now). */
static int
walk_one(json_t *t, struct dispatch_used *u, char *why, size_t len)
{
	long long id = json_integer_value(json_object_get(t, "id"));
	const char *profile, *tenant, *prov;
	json_t *args;
	char *cause = NULL;
	int ok;

	switch (task_why(t, u, &profile, &tenant, &args, &prov, why, len)) {
	case 0:
		break;
	case 2:
		missing_note(profile);
		return 0;
	default:
		return 0;
	}
	if (task_start(id, args, prov, &cause) == 0) {
		/* it works again: the next failure starts at 1 s */
		json_object_del(backoffs, profile);
		u->host++;
		count_add(u->profiles, profile);
		count_add(u->tenants, tenant);
		ok = 1;
	} else {
		snprintf(why, len, "spawn failed: %s", cause != NULL ? cause : "unknown");
		failure_note(id, profile, cause != NULL ? cause : "spawn failed");
		task_failed_start(id);
		ok = 0;
	}
	free(cause);
	json_decref(args);
	return ok;
}

static void
walk(void)
{
	struct dispatch_used u;
	json_t *queue, *t;
	char why[256];
	size_t i;
	int n = 0;

	if (!running || !first_done || !dispatch_on() || D.shutting_down || D.cfg.spawn_disabled)
		return;
	if (count_claims(&u) == -1 || (queue = ready_queue(WALK_SCAN_MAX)) == NULL) {
		used_clear(&u);
		log_warnx("dispatch: the board could not be read; the next walk tries again");
		return;
	}
	json_array_foreach(queue, i, t)
	{
		if (pol.cap_host >= 0 && u.host >= pol.cap_host)
			break;
		if (n == WALK_SPAWN_MAX) {
			dispatch_kick(); /* the rest on the next turn of the loop */
			break;
		}
		n += walk_one(t, &u, why, sizeof why);
	}
	json_decref(queue);
	used_clear(&u);
}

static void
kick_cb(uv_timer_t *h)
{
	(void)h;
	kick_pending = 0;
	walk();
}

void
dispatch_kick(void)
{
	if (!running || kick_pending)
		return;
	kick_pending = 1;
	uv_timer_start(&kick_timer, kick_cb, 0, 0);
}

static void
tick_cb(uv_timer_t *h)
{
	(void)h;
	walk();
}

/* ---- the file ---- */

/* Which profiles the policy names that profiles.json lacks (logged; shown in the status). */
static void
profiles_check(void)
{
	json_t *names = dispatch_policy_profiles(&pol), *v, *args;
	const char *prov;
	char *cause = NULL;
	size_t i;

	json_decref(missing);
	missing = json_array();
	json_array_foreach(names, i, v)
	{
		if (task_args(1, json_string_value(v), &args, &prov, &cause) == -1) {
			json_array_append(missing, v);
			log_warnx("dispatch: %s names profile %s, which profiles.json lacks",
			          dispatch_path, json_string_value(v));
			free(cause);
			cause = NULL;
		} else
			json_decref(args);
	}
	json_decref(names);
}

static int
policy_load(struct dispatch_policy *p, char **cause)
{
	json_t *root;
	char *why = NULL;

	if (config_load_json(dispatch_path, &root, cause) == -1)
		return -1;
	if (dispatch_policy_parse(root, p, &why) == -1) {
		xasprintf(cause, "%s: %s", dispatch_path, why);
		free(why);
		json_decref(root);
		return -1;
	}
	json_decref(root);
	return 0;
}

static void
policy_log(const char *what)
{
	log_info("dispatch: %s %s: %s, %zu tag route(s), default profile %s, host cap %lld", what,
	         dispatch_path, dispatch_on() ? "on" : "off", json_object_size(pol.tags),
	         pol.default_profile != NULL ? pol.default_profile : "none", pol.cap_host);
}

/* resume: true: the interrupted agents of this host again, each on its session. */
static void
resume_interrupted(void)
{
	struct store_err e;
	json_t *list = store_agent_list(D.store, "spawned", "interrupted", &e), *a, *r;
	const char *code = NULL;
	char *cause = NULL;
	size_t i;

	json_array_foreach(json_object_get(list, "items"), i, a)
	{
		const char *id = json_string_value(json_object_get(a, "id"));
		const char *host = json_string_value(json_object_get(a, "host"));
		if (id == NULL || host == NULL || strcmp(host, D.hostname) != 0)
			continue; /* another host's agent (a shared store) is its daemon's to resume
			           */
		if ((r = spawner_resume(id, &code, &cause)) != NULL) {
			log_info("dispatch: agent %s resumed", id);
			json_decref(r);
			continue;
		}
		failure_keep(0, NULL, cause != NULL ? cause : code);
		log_warnx("dispatch: agent %s not resumed: %s", id, cause != NULL ? cause : code);
		free(cause);
		cause = NULL;
	}
	json_decref(list);
}

static void
first_cb(uv_timer_t *h)
{
	(void)h;
	if (pol.resume && !D.cfg.spawn_disabled)
		resume_interrupted();
	first_done = 1; /* walks wait for the resumes: a resumed run keeps its task */
	uv_timer_start(&tick_timer, tick_cb, (uint64_t)pol.interval_ms, (uint64_t)pol.interval_ms);
	walk();
}

int
dispatch_init(char **cause)
{
	dispatch_path = config_path(DISPATCH_FILE);
	if (policy_load(&pol, cause) == -1)
		return -1;
	failures = json_array();
	backoffs = json_object();
	tries = json_object();
	switch_load();
	profiles_check();
	policy_log("policy from");
	uv_timer_init(D.loop, &tick_timer);
	uv_timer_init(D.loop, &kick_timer);
	inited = running = 1;
	uv_timer_start(&tick_timer, first_cb, 0, 0);
	return 0;
}

void
dispatch_reload(void)
{
	struct dispatch_policy p;
	char *cause = NULL;
	int changed;

	if (policy_load(&p, &cause) == -1) {
		log_warnx("dispatch: not reloaded, the old policy stays: %s", cause);
		free(cause);
		return;
	}
	changed = strcmp(p.digest, pol.digest) != 0;
	dispatch_policy_clear(&pol);
	pol = p;
	if (changed)
		switched = -1; /* a new file speaks last (the stored switch no longer matches it) */
	json_object_clear(backoffs);
	json_object_clear(tries);
	profiles_check();
	policy_log("policy reloaded from");
	if (running)
		uv_timer_start(&tick_timer, tick_cb, (uint64_t)pol.interval_ms,
		               (uint64_t)pol.interval_ms);
	dispatch_kick();
}

void
dispatch_shutdown(void)
{
	running = 0;
	uv_timer_stop(&tick_timer);
	uv_timer_stop(&kick_timer);
}

void
dispatch_close(void)
{
	if (inited) {
		dispatch_shutdown();
		uv_close((uv_handle_t *)&tick_timer, NULL);
		uv_close((uv_handle_t *)&kick_timer, NULL);
		inited = 0;
	}
	dispatch_policy_clear(&pol);
	json_decref(failures);
	json_decref(backoffs);
	json_decref(missing);
	json_decref(tries);
	failures = backoffs = missing = tries = NULL;
	free(dispatch_path);
	dispatch_path = NULL;
}

/* ---- the status ---- */

static json_t *
cap_entry(long long cap, long long used)
{
	return json_pack("{s:o, s:I}", "cap", cap >= 0 ? json_integer(cap) : json_null(), "used",
	                 (json_int_t)used);
}

/* {"NAME": {cap, used}} for every name with a cap or a claim, and every name in also. */
static json_t *
cap_table(json_t *caps, json_t *used, json_t *also)
{
	json_t *o = json_object(), *v;
	const char *k;
	size_t i;

	json_object_foreach(caps, k, v) json_object_set_new(
	        o, k,
	        cap_entry(json_integer_value(v), json_integer_value(json_object_get(used, k))));
	json_object_foreach(used, k, v) if (json_object_get(o, k) == NULL)
	        json_object_set_new(o, k, cap_entry(-1, json_integer_value(v)));
	json_array_foreach(also, i, v) if (json_object_get(o, json_string_value(v)) == NULL)
	        json_object_set_new(o, json_string_value(v), cap_entry(-1, 0));
	return o;
}

/* The head of the queue and why it is not starting (why null when it may start now). */
static json_t *
head_status(const struct dispatch_used *u)
{
	json_t *q = ready_queue(1), *t = json_array_get(q, 0), *args = NULL, *res;
	const char *profile, *tenant, *prov;
	char why[256];
	int blocked = 1;

	if (t == NULL) {
		json_decref(q);
		return json_pack("{s:n, s:n, s:n}", "task", "profile", "why");
	}
	if (!dispatch_on())
		snprintf(why, sizeof why, "dispatcher off");
	else if (D.cfg.spawn_disabled)
		snprintf(why, sizeof why, "this daemon runs with --no-spawn");
	else
		blocked = task_why(t, u, &profile, &tenant, &args, &prov, why, sizeof why);
	profile = dispatch_policy_profile_of(&pol, json_object_get(t, "tags"));
	res = json_pack("{s:O, s:o, s:o}", "task", json_object_get(t, "id"), "profile",
	                profile != NULL ? json_string(profile) : json_null(), "why",
	                blocked ? json_string(why) : json_null());
	json_decref(args);
	json_decref(q);
	return res;
}

json_t *
dispatch_status(void)
{
	struct dispatch_used u;
	json_t *res, *counts = store_counts(D.store), *named = dispatch_policy_profiles(&pol);
	long long ready =
	        json_integer_value(json_object_get(json_object_get(counts, "tasks"), "ready"));

	json_decref(counts);
	if (count_claims(&u) == -1)
		u.host = 0;
	res = json_pack("{s:b, s:s, s:b, s:s, s:b, s:I}", "enabled", dispatch_on(), "source",
	                switched >= 0 ? "switch" : "file", "file_enabled", pol.enabled, "file",
	                dispatch_path, "resume", pol.resume, "interval_ms",
	                (json_int_t)pol.interval_ms);
	json_object_set_new(res, "caps",
	                    json_pack("{s:o, s:o, s:o}", "host", cap_entry(pol.cap_host, u.host),
	                              "profiles", cap_table(pol.cap_profiles, u.profiles, named),
	                              "tenants", cap_table(pol.cap_tenants, u.tenants, NULL)));
	json_object_set_new(
	        res, "queue",
	        json_pack("{s:I, s:o}", "ready", (json_int_t)ready, "head", head_status(&u)));
	json_object_set_new(res, "routes", json_incref(pol.tags));
	json_object_set_new(res, "default_profile",
	                    pol.default_profile != NULL ? json_string(pol.default_profile)
	                                                : json_null());
	json_object_set_new(res, "missing_profiles", json_incref(missing));
	json_object_set_new(res, "backoff", json_deep_copy(backoffs));
	json_object_set_new(res, "failures", json_deep_copy(failures));
	json_object_set_new(res, "set_aside", set_aside_list());
	json_object_set_new(res, "started", json_integer(started));
	used_clear(&u);
	json_decref(named);
	return res;
}
