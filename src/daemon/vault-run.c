/*
 * vault-run.c -- provisioning a tenant's secrets from its vault collection.
 *
 * The runbook's chain, off the event loop's critical path: each `bw` call
 * is a child process (job.h) whose output is collected through pipes, so
 * the daemon keeps answering other clients while bw takes its seconds.
 * Jobs run one at a time from a FIFO: bw's data file is not safe under
 * concurrency, and one data dir per tenant (STATE/vault/<tenant>, 0700,
 * BITWARDENCLI_APPDATA_DIR) keeps tenants apart.
 *
 * A job: look the tenant up; check the spawned root against the tenant's
 * (trailing slashes normalised) and contain the target under
 * COLIBRI_JAIL_ROOT_BASE before anything is created; then
 *   bw status -> (bw config server BW_SERVER) -> the server must match
 *   BW_SERVER or the job fails closed -> bw login --apikey (when
 *   unauthenticated) -> bw unlock --passwordenv BW_PASSWORD --raw -> bw sync
 *   -> bw list collections --search NAME -> bw list items --collectionid ID
 * and write <root>/.env atomically at 0600; the tenant becomes active and
 * a vault.provisioned event names the keys, never the values.
 *
 * Secrets travel only through the environment of the bw process that
 * needs them (BW_CLIENTID/BW_CLIENTSECRET for login, BW_PASSWORD for
 * unlock, BW_SESSION afterwards), never argv; buffers that held them are
 * wiped; error messages are scrubbed of every known secret.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "job/job.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "daemon/vault-run.h"
#include "store/store.h"
#include "vault/vault.h"

#define BW_OUT_MAX (16 * 1024 * 1024)

enum vstep {
	VS_STATUS,
	VS_CONFIG,
	VS_STATUS2,
	VS_LOGIN,
	VS_UNLOCK,
	VS_SYNC,
	VS_COLLECTIONS,
	VS_ITEMS,
	VS_LOCK, /* after every job that ran bw, whatever its outcome */
};

struct vjob {
	char *tenant;
	char *collection;
	char *root;        /* canonical */
	char *tenant_root; /* as registered, trailing slashes normalised */
	char *datadir;
	char *spawned_root; /* from the hook, NULL for provision-tenant */
	struct vault_creds creds;
	char *session; /* BW_SESSION, a secret */
	char *collection_id;
	char **item_values; /* fetched this job, secrets: kept only to scrub text */
	size_t n_item_values;
	char *error; /* the outcome (scrubbed) while bw lock runs; NULL for success */
	int bw_started;
	enum vstep step;
	vault_done_fn *done; /* provision-tenant waits for the outcome */
	void *done_arg;
	/* the current bw call: a job with a hard deadline, so the queue never wedges */
	struct job bw;
	int bw_live; /* bw started and its handles not yet closed */
	int exit_code, term_signal, timed_out, forced; /* its outcome, from the job */
	uv_timer_t timer;                              /* only to free the vjob from the loop */
	struct buf obuf, ebuf;
	struct vjob *next;
};

static struct vjob *queue, *running;
static uv_timer_t kick_timer; /* starts queued jobs from the loop, never inside a request */
static int kick_open;
static int64_t bw_timeout_ms = 120000;
static char *provider_env_path;
static char *root_base;
static char *bw_path;

static void job_next_step(struct vjob *);
static void job_done(struct vjob *, const char *error);
static void queue_kick(void);

/* ---- bw processes ---- */

static void bw_maybe_done(struct vjob *);
static int job_tenant_unchanged(struct vjob *, const char **why);
static void job_locked(struct vjob *);

static void
bw_on_read(struct job *b, int which, const char *p, size_t n)
{
	struct vjob *j = b->data;
	struct buf *dst = which == 1 ? &j->obuf : &j->ebuf;

	if (buf_used(dst) + n > BW_OUT_MAX) {
		job_signal(b, SIGKILL);
		buf_reset(dst);
		return;
	}
	buf_add(dst, p, n);
}

/* The join (exited and pipes at EOF, or the deadline): release the handles first. */
static void
bw_on_done(struct job *b)
{
	job_close(b);
}

static void
bw_on_closed(struct job *b)
{
	struct vjob *j = b->data;

	j->bw_live = 0;
	j->exit_code = b->exit_code;
	j->term_signal = b->term_signal;
	j->timed_out = b->timed_out;
	j->forced = b->forced;
	bw_maybe_done(j);
}

static const char *
step_name(enum vstep s)
{
	static const char *names[] = {"status", "config server",    "status",     "login", "unlock",
	                              "sync",   "list collections", "list items", "lock"};
	return names[s];
}

/*
 * Scrub msg of every secret the job knows: the bootstrap credentials but
 * the server URL (it names the vault in the fail-closed message), the
 * session key and each item value fetched.  Any text that may reach the
 * log, an event, a reply or the tenant's row passes here before it is cut.
 */
static void
job_scrub(struct vjob *j, char *msg)
{
	const char **secrets = xcalloc(4 + j->n_item_values, sizeof *secrets);
	size_t n = 0, i;

	secrets[n++] = j->creds.password;
	secrets[n++] = j->creds.client_secret;
	secrets[n++] = j->creds.client_id;
	secrets[n++] = j->session;
	for (i = 0; i < j->n_item_values; i++)
		secrets[n++] = j->item_values[i];
	vault_scrub(msg, secrets, n);
	free(secrets);
}

/*
 * The first line of bw's stderr for an error message: scrubbed whole, then
 * cut (a secret cut first would leave its prefix behind), valid UTF-8.
 */
static char *
bw_error_text(struct vjob *j)
{
	size_t n = buf_used(&j->ebuf) < 4096 ? buf_used(&j->ebuf) : 4096;
	char *e = xstrndup(n > 0 ? buf_head(&j->ebuf) : "", n);

	if (j->ebuf.data != NULL)
		explicit_bzero(j->ebuf.data, j->ebuf.cap);
	job_scrub(j, e);
	e[strcspn(e, "\r\n")] = '\0';
	vault_cut(e, 300);
	utf8_scrub(e);
	return e;
}

static void
bw_maybe_done(struct vjob *j)
{
	char *err, msg[512];

	const char *why;

	if (j->step == VS_LOCK) {
		job_locked(j);
		return;
	}
	if (D.shutting_down) {
		job_done(j, "the daemon is shutting down");
		return;
	}
	if (!job_tenant_unchanged(j, &why)) {
		job_done(j, why);
		return;
	}
	if (j->timed_out) {
		snprintf(msg, sizeof msg, "bw %s timed out after %lld ms", step_name(j->step),
		         (long long)bw_timeout_ms);
		job_done(j, msg);
		return;
	}
	if (j->forced) {
		snprintf(msg, sizeof msg,
		         "bw %s exited but a process it left held its output: killed, step failed",
		         step_name(j->step));
		job_done(j, msg);
		return;
	}
	if (j->exit_code != 0 || j->term_signal != 0) {
		err = bw_error_text(j);
		snprintf(msg, sizeof msg, "bw %s failed (%s %d)%s%s", step_name(j->step),
		         j->term_signal ? "signal" : "exit",
		         j->term_signal ? j->term_signal : j->exit_code, *err ? ": " : "", err);
		free(err);
		job_done(j, msg);
		return;
	}
	job_next_step(j);
}

/* Run bw with args; extra_env entries (NAME=value) are added to a minimal environment. */
static int
bw_run(struct vjob *j, const char *const *args, const char *const *extra_env)
{
	static const char *passthrough[] = {
	        "NODE_EXTRA_CA_CERTS", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
	        "https_proxy",         "http_proxy",  "no_proxy",   NULL};
	char *argv[16], *envp[24], *cause = NULL;
	struct job_spec js;
	const char *path = getenv("PATH");
	size_t n = 0, e = 0, i;
	int rc;

	argv[n++] = bw_path;
	for (i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	xasprintf(&envp[e++], "PATH=%s", path != NULL ? path : "/usr/local/bin:/usr/bin:/bin");
	xasprintf(&envp[e++], "HOME=%s", j->datadir);
	xasprintf(&envp[e++], "BITWARDENCLI_APPDATA_DIR=%s", j->datadir);
	envp[e++] = xstrdup("BW_NOINTERACTION=true");
	envp[e++] = xstrdup("BW_RESPONSE=false");
	for (i = 0; passthrough[i] != NULL; i++)
		if (getenv(passthrough[i]) != NULL)
			xasprintf(&envp[e++], "%s=%s", passthrough[i], getenv(passthrough[i]));
	for (i = 0; extra_env != NULL && extra_env[i] != NULL && e < 23; i++)
		envp[e++] = xstrdup(extra_env[i]);
	envp[e] = NULL;
	buf_reset(&j->obuf);
	buf_reset(&j->ebuf);
	memset(&js, 0, sizeof js);
	js.path = bw_path;
	js.argv = argv;
	js.envp = envp;
	js.in = PROC_NULL;
	js.out = PROC_PIPE;
	js.err = PROC_PIPE;
	js.tree = "job.bw";
	js.deadline_ms = bw_timeout_ms;
	memset(&j->bw, 0, sizeof j->bw);
	j->bw.on_read = bw_on_read;
	j->bw.on_done = bw_on_done;
	j->bw.on_closed = bw_on_closed;
	j->bw.data = j;
	rc = job_start(&j->bw, &js, &cause);
	for (i = 0; i < e; i++) {
		explicit_bzero(envp[i], strlen(envp[i]));
		free(envp[i]);
	}
	if (rc == -1) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", cause);
		free(cause);
		job_done(j, msg);
		return -1;
	}
	j->bw_live = 1;
	return 0;
}

/* ---- the chain ---- */

static void
job_run_step(struct vjob *j)
{
	char *env[3] = {NULL, NULL, NULL};
	size_t i;

	j->bw_started = 1;
	switch (j->step) {
	case VS_STATUS:
	case VS_STATUS2:
		bw_run(j, (const char *[]){"status", NULL}, NULL);
		return;
	case VS_CONFIG:
		bw_run(j, (const char *[]){"config", "server", j->creds.server, NULL}, NULL);
		return;
	case VS_LOGIN:
		xasprintf(&env[0], "BW_CLIENTID=%s", j->creds.client_id);
		xasprintf(&env[1], "BW_CLIENTSECRET=%s", j->creds.client_secret);
		bw_run(j, (const char *[]){"login", "--apikey", NULL}, (const char *const *)env);
		break;
	case VS_UNLOCK:
		xasprintf(&env[0], "BW_PASSWORD=%s", j->creds.password);
		bw_run(j, (const char *[]){"unlock", "--passwordenv", "BW_PASSWORD", "--raw", NULL},
		       (const char *const *)env);
		break;
	case VS_SYNC:
		xasprintf(&env[0], "BW_SESSION=%s", j->session);
		bw_run(j, (const char *[]){"sync", NULL}, (const char *const *)env);
		break;
	case VS_COLLECTIONS:
		xasprintf(&env[0], "BW_SESSION=%s", j->session);
		bw_run(j, (const char *[]){"list", "collections", "--search", j->collection, NULL},
		       (const char *const *)env);
		break;
	case VS_ITEMS:
		xasprintf(&env[0], "BW_SESSION=%s", j->session);
		bw_run(j,
		       (const char *[]){"list", "items", "--collectionid", j->collection_id, NULL},
		       (const char *const *)env);
		break;
	case VS_LOCK:
		/* No secret needed: lock forgets the keys bw keeps in its data dir. */
		bw_run(j, (const char *[]){"lock", NULL}, NULL);
		return;
	}
	for (i = 0; env[i] != NULL; i++) {
		explicit_bzero(env[i], strlen(env[i]));
		free(env[i]);
	}
}

/* Free the NAME -> value object; jansson owns the value strings: wipe them first. */
static void
job_wipe_vars(json_t *vars)
{
	const char *k;
	json_t *v;

	json_object_foreach(vars, k, v)
	        explicit_bzero((char *)json_string_value(v), json_string_length(v));
	json_decref(vars);
}

static void
job_write_env(struct vjob *j)
{
	char *cause = NULL, *text, msg[512];
	json_t *vars, *keys;
	const char *k;
	json_t *v;
	size_t len;

	vars = vault_items_to_vars(buf_head(&j->obuf), buf_used(&j->obuf), &cause);
	explicit_bzero(j->obuf.data, j->obuf.cap);
	if (vars == NULL) {
		snprintf(msg, sizeof msg, "collection %s: %s", j->collection, cause);
		free(cause);
		job_done(j, msg);
		return;
	}
	j->item_values = xcalloc(json_object_size(vars), sizeof *j->item_values);
	json_object_foreach(vars, k, v) j->item_values[j->n_item_values++] =
	        xstrdup(json_string_value(v));
	/* Again just before writing: the root may have become a symlink meanwhile. */
	if (vault_root_canonical(j->tenant_root, &cause) == -1) {
		job_wipe_vars(vars);
		snprintf(msg, sizeof msg, "%s", cause);
		free(cause);
		job_done(j, msg);
		return;
	}
	text = vault_render_env(vars, &len);
	if (vault_write_env(j->root, text, len, &cause) == -1) {
		explicit_bzero(text, len);
		free(text);
		job_wipe_vars(vars);
		snprintf(msg, sizeof msg, "%s", cause);
		free(cause);
		job_done(j, msg);
		return;
	}
	explicit_bzero(text, len);
	free(text);
	keys = json_array();
	json_object_foreach(vars, k, v) json_array_append_new(keys, json_string(k));
	job_wipe_vars(vars);
	log_info("vault: tenant %s provisioned: %zu keys written to %s/.env", j->tenant,
	         json_array_size(keys), j->root);
	events_emit(EV_VAULT_PROVISIONED, json_pack("{s:s, s:o, s:s}", "tenant_id", j->tenant,
	                                            "keys", keys, "path", j->root));
	job_done(j, NULL);
}

/* job_done with the cause of a failed check (freed), cut to a message's length. */
static void
job_done_cause(struct vjob *j, char *cause)
{
	char msg[512];

	snprintf(msg, sizeof msg, "%s", cause);
	free(cause);
	job_done(j, msg);
}

/*
 * After bw status: set the server when none is (first status only), refuse
 * one that is not BW_SERVER (fail closed), else log in or unlock.  0 with
 * j->step set, or -1 after job_done.
 */
static int
job_after_status(struct vjob *j)
{
	char *server = NULL, *status = NULL, *cause = NULL, msg[512];

	if (vault_parse_status(buf_head(&j->obuf), buf_used(&j->obuf), &server, &status, &cause) ==
	    -1) {
		job_done_cause(j, cause);
		return -1;
	}
	if (server == NULL && j->step == VS_STATUS) {
		free(status);
		j->step = VS_CONFIG;
		return 0;
	}
	if (!vault_server_matches(server, j->creds.server)) {
		snprintf(msg, sizeof msg,
		         "bw is configured for %s, not BW_SERVER %s: refusing (fail closed)",
		         server != NULL ? server : "the default server", j->creds.server);
		free(server);
		free(status);
		job_done(j, msg);
		return -1;
	}
	j->step = strcmp(status, "unauthenticated") == 0 ? VS_LOGIN : VS_UNLOCK;
	free(server);
	free(status);
	return 0;
}

/* After bw unlock: keep the session key it printed.  0, or -1 after job_done. */
static int
job_after_unlock(struct vjob *j)
{
	j->session = xstrndup(buf_head(&j->obuf), buf_used(&j->obuf));
	explicit_bzero(j->obuf.data, j->obuf.cap);
	j->session[strcspn(j->session, "\r\n")] = '\0';
	if (j->session[0] == '\0') {
		job_done(j, "bw unlock printed no session key");
		return -1;
	}
	return 0;
}

/* The step that ran succeeded: judge its output, then run the next one. */
static void
job_next_step(struct vjob *j)
{
	char *cause = NULL;

	switch (j->step) {
	case VS_STATUS:
	case VS_STATUS2:
		if (job_after_status(j) == -1)
			return;
		break;
	case VS_CONFIG:
		j->step = VS_STATUS2;
		break;
	case VS_LOGIN:
		j->step = VS_UNLOCK;
		break;
	case VS_UNLOCK:
		if (job_after_unlock(j) == -1)
			return;
		j->step = VS_SYNC;
		break;
	case VS_SYNC:
		j->step = VS_COLLECTIONS;
		break;
	case VS_COLLECTIONS:
		if (vault_find_collection(buf_head(&j->obuf), buf_used(&j->obuf), j->collection,
		                          &j->collection_id, &cause) == -1) {
			job_done_cause(j, cause);
			return;
		}
		j->step = VS_ITEMS;
		break;
	case VS_ITEMS:
		job_write_env(j);
		return;
	case VS_LOCK:
		job_locked(j);
		return;
	}
	job_run_step(j);
}

static void
job_forget_items(struct vjob *j)
{
	size_t i;

	for (i = 0; i < j->n_item_values; i++) {
		explicit_bzero(j->item_values[i], strlen(j->item_values[i]));
		free(j->item_values[i]);
	}
	free(j->item_values);
	j->item_values = NULL;
	j->n_item_values = 0;
}

static void
job_free(struct vjob *j)
{
	vault_creds_clear(&j->creds);
	if (j->session != NULL) {
		explicit_bzero(j->session, strlen(j->session));
		free(j->session);
	}
	if (j->obuf.data != NULL)
		explicit_bzero(j->obuf.data, j->obuf.cap);
	if (j->ebuf.data != NULL)
		explicit_bzero(j->ebuf.data, j->ebuf.cap);
	job_forget_items(j);
	free(j->error);
	buf_free(&j->obuf);
	buf_free(&j->ebuf);
	free(j->tenant);
	free(j->collection);
	free(j->collection_id);
	free(j->root);
	free(j->tenant_root);
	free(j->datadir);
	free(j->spawned_root);
	free(j);
}

static void
job_free_closed(uv_handle_t *h)
{
	job_free(h->data);
}

/*
 * Whether the tenant is still registered as the job found it (same root,
 * same collection).  A tenant deleted, or registered again elsewhere, while
 * bw ran must not get the secrets written into the old root.
 */
static int
job_tenant_unchanged(struct vjob *j, const char **why)
{
	struct store_err e;
	const char *coll;
	char *root;
	json_t *t;
	int same;

	if (j->tenant_root == NULL)
		return 1; /* the job's checks have not passed yet */
	if ((t = store_tenant_get(D.store, j->tenant, &e)) == NULL) {
		*why = "the tenant was deleted while provisioning ran";
		return 0;
	}
	root = path_normalize_trailing(json_string_value(json_object_get(t, "jail_root_path")));
	coll = json_string_value(json_object_get(t, "collection_id"));
	same = strcmp(root, j->tenant_root) == 0 && coll != NULL &&
	       strcmp(coll, j->collection) == 0;
	free(root);
	json_decref(t);
	if (!same)
		*why = "the tenant was registered again with another jail root or collection "
		       "while provisioning ran";
	return same;
}

/* Tell provision-tenant the outcome: the tenant's row t, else why not. */
static void
job_tell(struct vjob *j, const char *error, json_t *t, const struct store_err *e)
{
	char msg[512];

	if (error != NULL) {
		snprintf(msg, sizeof msg, "provisioning %s failed: %s", j->tenant, error);
		j->done(j->done_arg, NULL, ERR_UNAVAILABLE, msg);
	} else if (t != NULL)
		j->done(j->done_arg, t, NULL, NULL);
	else
		j->done(j->done_arg, NULL, e->code, e->msg);
}

/* Record the outcome, answer provision-tenant, start the next job. */
static void
job_finish(struct vjob *j, const char *error)
{
	struct store_err e;
	const char *why;
	json_t *t = NULL, *row;
	int64_t now = now_ms();

	txn_write(&e);
	if (error != NULL) {
		log_warnx("vault: tenant %s: %s", j->tenant, error);
		events_emit(EV_VAULT_FAILED,
		            json_pack("{s:s, s:s}", "tenant_id", j->tenant, "reason", error));
	}
	if (job_tenant_unchanged(j, &why)) {
		store_tenant_set_status(D.store, j->tenant, error != NULL ? "failed" : "active",
		                        error, now, &e);
		t = store_tenant_get(D.store, j->tenant, &e);
	} else if ((row = store_tenant_get(D.store, j->tenant, &e)) == NULL) {
		/* Deleted meanwhile (a registration anew keeps its own status): bw may
		 * have recreated the data dir delete-tenant removed. */
		if (j->datadir != NULL && vault_remove_dir(j->datadir) == -1)
			log_warn("vault: tenant %s: removing %s", j->tenant, j->datadir);
	} else
		json_decref(row);
	if (t != NULL)
		events_emit(EV_TENANT_UPDATED, json_incref(t));
	if (j->done != NULL)
		job_tell(j, error, t, &e);
	json_decref(t);
	if (running == j)
		running = NULL;
	uv_close((uv_handle_t *)&j->timer, job_free_closed);
	queue_kick();
}

/*
 * bw lock did not run or failed: the data dir may hold the vault unlocked,
 * so it goes (the next job logs in again).  The job's outcome stands.
 */
static void
job_lock_failed(struct vjob *j, const char *why)
{
	char *w = xstrdup(why);

	job_scrub(j, w);
	log_warnx("vault: tenant %s: %s; removing its bw data dir %s so that nothing stays "
	          "unlocked",
	          j->tenant, w, j->datadir);
	free(w);
	if (j->datadir != NULL && vault_remove_dir(j->datadir) == -1)
		log_warn("vault: tenant %s: removing %s", j->tenant, j->datadir);
	job_finish(j, j->error);
}

/* The lock step's bw ended (bw_maybe_done): check it, then record the outcome. */
static void
job_locked(struct vjob *j)
{
	char *err, msg[512];

	if (j->timed_out) {
		snprintf(msg, sizeof msg, "bw lock timed out after %lld ms",
		         (long long)bw_timeout_ms);
		job_lock_failed(j, msg);
	} else if (j->forced) {
		job_lock_failed(j, "bw lock exited but a process it left held its output");
	} else if (j->exit_code != 0 || j->term_signal != 0) {
		err = bw_error_text(j);
		snprintf(msg, sizeof msg, "bw lock failed (%s %d)%s%s",
		         j->term_signal ? "signal" : "exit",
		         j->term_signal ? j->term_signal : j->exit_code, *err ? ": " : "", err);
		free(err);
		job_lock_failed(j, msg);
	} else
		job_finish(j, j->error);
}

/*
 * Every job ends here.  The outcome is scrubbed (and then cut) before it
 * goes anywhere; when bw ran, the vault is locked (`bw lock`) before the
 * outcome is recorded, whatever it is, so nothing stays unlocked at rest.
 * During shutdown no bw starts: the data dir is removed instead.  An error
 * in the lock step itself (bw could not start) lands in job_lock_failed.
 */
static void
job_done(struct vjob *j, const char *error)
{
	if (j->step == VS_LOCK && j->bw_started) {
		job_lock_failed(j, error != NULL ? error : "bw lock did not run");
		return;
	}
	free(j->error);
	j->error = NULL;
	if (error != NULL) {
		j->error = xstrdup(error);
		job_scrub(j, j->error);
		vault_cut(j->error, 400);
		utf8_scrub(j->error);
	}
	if (!j->bw_started) {
		job_finish(j, j->error);
		return;
	}
	if (D.shutting_down) {
		job_lock_failed(j, "the daemon is shutting down, no bw lock");
		return;
	}
	j->step = VS_LOCK;
	job_run_step(j);
}

static int
make_datadir(struct vjob *j, char **cause)
{
	char *base =
	        path_join(D.cfg.state_dir != NULL ? D.cfg.state_dir : PATH_DEFAULT_DATA, "vault");
	struct stat sb;

	j->datadir = path_join(base, j->tenant);
	if ((mkdir(base, 0700) == -1 && errno != EEXIST) ||
	    (mkdir(j->datadir, 0700) == -1 && errno != EEXIST) || lstat(j->datadir, &sb) == -1 ||
	    !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) {
		xasprintf(cause, "bw data dir %s: %s", j->datadir,
		          errno ? strerror(errno) : "not a directory of ours");
		free(base);
		return -1;
	}
	chmod(j->datadir, 0700);
	free(base);
	return 0;
}

/*
 * The tenant as registered now: its collection, its root (equal to the
 * spawned root, when a spawn queued the job) contained under the root base.
 * 0, or -1 after job_done.
 */
static int
vjob_check_root(struct vjob *j)
{
	struct store_err e;
	char *cause = NULL, *a, *b, msg[512];
	json_t *t;

	if ((t = store_tenant_get(D.store, j->tenant, &e)) == NULL) {
		job_done(j, "the tenant is no longer registered");
		return -1;
	}
	j->collection = xstrdup(json_string_value(json_object_get(t, "collection_id")));
	a = path_normalize_trailing(json_string_value(json_object_get(t, "jail_root_path")));
	json_decref(t);
	if (j->spawned_root != NULL) {
		b = path_normalize_trailing(j->spawned_root);
		if (strcmp(a, b) != 0) {
			snprintf(msg, sizeof msg,
			         "the spawned jail root %s differs from the tenant's %s: refusing",
			         b, a);
			free(a);
			free(b);
			job_done(j, msg);
			return -1;
		}
		free(b);
	}
	j->root = vault_contain(a, root_base, &cause);
	j->tenant_root = a;
	if (j->root == NULL) {
		job_done_cause(j, cause);
		return -1;
	}
	return 0;
}

/* What running bw needs: the credentials, bw itself, the data dir.  0, or -1 after job_done. */
static int
vjob_check_tools(struct vjob *j)
{
	char *cause = NULL, msg[512];
	const char *missing;

	if (vault_load_creds(provider_env_path, &j->creds, &cause) == -1) {
		job_done_cause(j, cause);
		return -1;
	}
	if (!vault_creds_complete(&j->creds, &missing)) {
		snprintf(msg, sizeof msg, "%s is not set in %s or the environment", missing,
		         provider_env_path);
		job_done(j, msg);
		return -1;
	}
	if (bw_path == NULL) {
		job_done(j, "bw not found on PATH");
		return -1;
	}
	if (make_datadir(j, &cause) == -1) {
		job_done_cause(j, cause);
		return -1;
	}
	return 0;
}

/* Checks before any bw call or file: tenant, root equality, containment, creds. */
static void
vjob_start(struct vjob *j)
{
	running = j;
	uv_timer_init(D.loop, &j->timer);
	j->timer.data = j;
	if (vjob_check_root(j) == -1 || vjob_check_tools(j) == -1)
		return;
	log_info("vault: provisioning tenant %s from collection %s", j->tenant, j->collection);
	j->step = VS_STATUS;
	job_run_step(j);
}

static void
queue_kick(void)
{
	struct vjob *j;

	if (running != NULL || queue == NULL || D.shutting_down)
		return;
	j = queue;
	queue = j->next;
	vjob_start(j);
}

static void
on_kick(uv_timer_t *t)
{
	(void)t;
	queue_kick();
}

/*
 * Queue a job.  It starts from the loop, not here: a job that ends at once
 * (a refused root) records its outcome in a transaction of its own
 * (job_finish), not inside the request that queued it -- a spawn whose
 * savepoint could still roll the outcome back, or a provision-tenant whose
 * caller is told before its own exec has returned.
 */
static void
vault_enqueue(const char *tenant, const char *spawned_root, vault_done_fn *done, void *arg)
{
	struct vjob *j = xcalloc(1, sizeof *j), **pp;

	j->tenant = xstrdup(tenant);
	j->spawned_root = spawned_root != NULL ? xstrdup(spawned_root) : NULL;
	j->done = done;
	j->done_arg = arg;
	buf_init(&j->obuf);
	buf_init(&j->ebuf);
	for (pp = &queue; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = j;
	uv_timer_start(&kick_timer, on_kick, 0, 0);
}

void
vault_jailed_spawned(const char *agent_id, const char *jail_name, const char *jail_root)
{
	struct store_err e;
	json_t *t;

	if (!kick_open)
		return; /* shutting down */
	if ((t = store_tenant_get(D.store, jail_name, &e)) == NULL) {
		log_debug("vault: no tenant for jail %s (agent %s): nothing to provision",
		          jail_name, agent_id);
		return;
	}
	json_decref(t);
	log_info("vault: agent %s spawned in jail %s: provisioning tenant env", agent_id,
	         jail_name);
	vault_enqueue(jail_name, jail_root, NULL, NULL);
}

int
vault_provision(const char *tenant, vault_done_fn *done, void *arg)
{
	if (!kick_open || D.shutting_down)
		return -1;
	vault_enqueue(tenant, NULL, done, arg);
	return 0;
}

int
vault_tenant_env(const char *tenant_root, json_t **vars, char **cause)
{
	char *canon;
	int rc;

	*vars = NULL;
	if ((canon = vault_contain(tenant_root, root_base, cause)) == NULL)
		return -1;
	rc = vault_read_env(canon, vars, cause);
	free(canon);
	return rc;
}

int
vault_init(char **cause)
{
	const char *v;

	v = getenv("COLIBRI_PROVIDER_ENV");
	provider_env_path = xstrdup(v != NULL && *v != '\0' ? v : PATH_DEFAULT_PROVIDER_ENV);
	if (vault_check_provider_env_mode(provider_env_path, cause) == -1)
		return -1;
	v = getenv("COLIBRI_JAIL_ROOT_BASE");
	root_base = xstrdup(v != NULL && *v != '\0' ? v : VAULT_ROOT_BASE_DEFAULT);
	if ((v = getenv("COLIBRI_BW_TIMEOUT_MS")) != NULL && atoll(v) >= 100)
		bw_timeout_ms = atoll(v);
	v = getenv("COLIBRI_BW");
	bw_path = v != NULL && *v == '/' ? xstrdup(v) : path_search("bw");
	uv_timer_init(D.loop, &kick_timer);
	kick_open = 1;
	return 0;
}

void
vault_shutdown(void)
{
	struct vjob *j;

	if (kick_open) {
		kick_open = 0;
		uv_close((uv_handle_t *)&kick_timer, NULL);
	}
	while ((j = queue) != NULL) {
		queue = j->next;
		if (j->done != NULL)
			j->done(j->done_arg, NULL, ERR_UNAVAILABLE, "the daemon is shutting down");
		job_free(j);
	}
	if (running != NULL && running->bw_live)
		job_signal(&running->bw, SIGTERM);
}

int
vault_busy(void)
{
	return running != NULL;
}

void
vault_close(void)
{
	free(provider_env_path);
	free(root_base);
	free(bw_path);
}
