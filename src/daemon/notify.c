/*
 * notify.c -- notifications: the operator's command hook, run on the
 * transitions an operator acts on.
 *
 * An operator running a fleet wants to hear of four things and no other:
 *
 *   agent.blocked  an agent blocked needing input (agent.state to blocked
 *                  for an extension UI request: glasspane's UI block)
 *   agent.parked   an agent parked by a provider's quota (agent.state to
 *                  blocked with a reason that starts with "quota")
 *   task.failed    a task failed for good (task.failed, status "failed";
 *                  a failed run that puts the task back is not news)
 *   queue.drained  the ready queue went from non-empty to empty (checked
 *                  once per commit that carried task events, with one
 *                  LIMIT 1 read of the ready queue)
 *
 * The server hands this file every event it published, after the commit
 * (notify_published), so a notification never reports a write that a
 * rollback took back.  Each notification is one JSON object --
 * {kind, at_ms, host, agent?, task?, title?, reason, event, dropped?} with
 * task the agent's task for a task-bound run, event the triggering event line -- of at most
 * NOTIFY_MAX_BYTES (a larger event keeps its topic, seq and ts and says truncated).
 *
 * Deduplication is per agent: the same kind for the same agent is not
 * repeated until the agent's state changed in between (a second UI request
 * while still blocked is not news; blocked, working, blocked again is).
 * dedup_ms > 0 adds a window: not the same kind for the same agent (or a
 * second queue.drained) within dedup_ms of the last one, state changes or
 * not -- for an agent that flaps.
 *
 * Notifications wait in a FIFO of at most max_queue; when it is full the
 * oldest is dropped, and the next notification the hook gets carries
 * "dropped": how many went since the last one it got.  The hook runs one
 * at a time on the job layer (job.h): argv from the policy, no shell, cwd
 * /, the notification and a newline on its stdin, stdout and stderr kept
 * (NOTIFY_OUT_MAX each) for the log, its whole process tree killed after
 * timeout_ms.  Its environment is an allow-list (PATH, HOME, locale, TZ,
 * TMPDIR, USER, LOGNAME, the proxy variables) plus COLIBRI_NOTIFY_KIND:
 * nothing else of the daemon's -- no BW_*, no COLIBRI_*, no tokens -- reaches
 * it.  Its outcome (exit status, signal, timeout, the start of stderr) is
 * logged; nothing waits for it.
 *
 * The policy (notify.json) is parsed in notify-policy.c; this file holds
 * the observation, the queue and the hook's process.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/config-file.h"
#include "daemon/daemon.h"
#include "daemon/notify.h"
#include "daemon/notify-policy.h"
#include "job/job.h"
#include "store/store.h"

#define NOTIFY_MAX_BYTES (64 * 1024) /* one notification on the hook's stdin */
#define NOTIFY_OUT_MAX   4096        /* of the hook's stdout, and of its stderr, for the log */
#define NOTIFY_TEXT_MAX  1024        /* a reason or a title in a notification */
#define NOTIFY_SEEN_MAX  4096        /* agents remembered for deduplication */
#define NOTIFY_LOG_MAX   300         /* of the hook's stderr in a log line */

struct note {
	json_t *body;
	enum nkind kind;
	struct note *next;
};

/* An agent's deduplication state. */
struct seen {
	char *agent;
	int holding;        /* the kind notified for its present state, -1: none */
	int64_t last_at[2]; /* when agent.blocked, agent.parked last went out */
};

static struct notify_policy pol;
static char *pol_path;
static struct note *qhead, **qtail = &qhead;
static int64_t qlen;
static long long dropped; /* since the last notification the hook got */
static struct seen *seen;
static size_t nseen;
static int queue_ready_was = -1; /* the ready queue held a task (1), none (0), unknown (-1) */
static int64_t drained_last_at;

/* The hook: one at a time. */
static struct job hook;
static int hook_live; /* started, handles not yet closed */
static enum nkind hook_kind;
static char *hook_in;
static uv_write_t hook_wr;
static struct buf hook_out, hook_err;
static int64_t hook_started;
static uv_timer_t kick;
static int kick_open, closed;

static void
policy_log(const char *what)
{
	if (pol.argv == NULL) {
		log_info("notifications: %s: no %s, none", what, pol_path);
		return;
	}
	log_info("notifications: %s from %s: hook %s, timeout %lld ms, queue %lld, dedup %lld ms",
	         what, pol_path, pol.argv[0], (long long)pol.timeout_ms, (long long)pol.max_queue,
	         (long long)pol.dedup_ms);
}

/* ---- the queue ---- */

static void
note_free(struct note *n)
{
	json_decref(n->body);
	free(n);
}

static struct note *
queue_pop(void)
{
	struct note *n = qhead;

	if (n == NULL)
		return NULL;
	if ((qhead = n->next) == NULL)
		qtail = &qhead;
	qlen--;
	return n;
}

static void
queue_drop_all(const char *why)
{
	struct note *n;
	int64_t k = qlen;

	while ((n = queue_pop()) != NULL)
		note_free(n);
	if (k > 0)
		log_warnx("notifications: %lld queued dropped: %s", (long long)k, why);
	dropped = 0;
}

static void hook_kick(void);

static void
queue_push(enum nkind k, json_t *body)
{
	struct note *n;

	while (qlen >= pol.max_queue && (n = queue_pop()) != NULL) {
		if (dropped++ == 0)
			log_warnx("notifications: the queue is full (%lld): the oldest are dropped",
			          (long long)pol.max_queue);
		note_free(n);
	}
	n = xcalloc(1, sizeof *n);
	n->kind = k;
	n->body = body;
	*qtail = n;
	qtail = &n->next;
	qlen++;
	hook_kick();
}

/* A short text of a notification: cut to NOTIFY_TEXT_MAX on a character boundary. */
static json_t *
note_text(const char *s)
{
	size_t n = strlen(s != NULL ? s : "");

	return json_stringn(s != NULL ? s : "",
	                    utf8_cut_len(s != NULL ? s : "", n, NOTIFY_TEXT_MAX));
}

/* The triggering event, or (over the bound) its topic, seq and ts. */
static void
note_bound(json_t *body, json_t *event)
{
	char *s;
	size_t n;

	json_object_set(body, "event", event);
	if ((s = jsonw_dumps(body)) == NULL)
		n = NOTIFY_MAX_BYTES;
	else
		n = strlen(s);
	free(s);
	if (n + 64 <= NOTIFY_MAX_BYTES) /* room for "dropped" */
		return;
	json_object_set_new(body, "event",
	                    json_pack("{s:O, s:O, s:O, s:b}", "event",
	                              json_object_get(event, "event"), "seq",
	                              json_object_get(event, "seq"), "ts",
	                              json_object_get(event, "ts"), "truncated", 1));
}

/* Queue a notification of kind k (if the policy wants it); event is borrowed. */
static void
note_add(enum nkind k, json_t *event, const char *agent, const json_t *task, const char *title,
         const char *reason)
{
	json_t *b;

	if (!(pol.on & (1u << k)))
		return;
	b = json_pack("{s:s, s:I, s:s}", "kind", notify_kind_names[k], "at_ms",
	              (json_int_t)now_ms(), "host", D.hostname);
	if (agent != NULL)
		json_object_set_new(b, "agent", json_string(agent));
	if (json_is_integer(task))
		json_object_set_new(b, "task", json_integer(json_integer_value(task)));
	if (title != NULL)
		json_object_set_new(b, "title", note_text(title));
	json_object_set_new(b, "reason", note_text(reason));
	note_bound(b, event);
	log_debug("notifications: %s%s%s queued", notify_kind_names[k],
	          agent != NULL ? " for " : "", agent != NULL ? agent : "");
	queue_push(k, b);
}

/* ---- deduplication ---- */

static struct seen *
seen_find(const char *agent)
{
	size_t i;

	for (i = 0; i < nseen; i++)
		if (strcmp(seen[i].agent, agent) == 0)
			return &seen[i];
	return NULL;
}

static void
seen_remove(size_t i)
{
	free(seen[i].agent);
	seen[i] = seen[--nseen];
}

/* Forget agents that hold nothing and whose window has passed. */
static void
seen_prune(int64_t now)
{
	size_t i = 0;

	while (i < nseen) {
		struct seen *s = &seen[i];
		if (s->holding == -1 &&
		    (pol.dedup_ms == 0 ||
		     (now - s->last_at[0] >= pol.dedup_ms && now - s->last_at[1] >= pol.dedup_ms)))
			seen_remove(i);
		else
			i++;
	}
}

static void
seen_clear(void)
{
	while (nseen > 0)
		seen_remove(nseen - 1);
}

static struct seen *
seen_add(const char *agent, int64_t now)
{
	if (nseen == NOTIFY_SEEN_MAX)
		seen_prune(now);
	if (nseen == NOTIFY_SEEN_MAX)
		seen_remove(0); /* a bound on memory, not a rule: the table is never this full */
	seen = xreallocarray(seen, nseen + 1, sizeof *seen);
	memset(&seen[nseen], 0, sizeof *seen);
	seen[nseen].agent = xstrdup(agent);
	seen[nseen].holding = -1;
	return &seen[nseen++];
}

/* Agent's state changed to one of kind k (-1: no notified kind): notify? */
static int
seen_should(const char *agent, int k, int64_t now)
{
	struct seen *s = seen_find(agent);

	if (k < 0) {
		if (s != NULL) {
			s->holding = -1;
			seen_prune(now);
		}
		return 0;
	}
	if (s == NULL)
		s = seen_add(agent, now);
	if (s->holding == k)
		return 0;
	s->holding = k;
	if (pol.dedup_ms > 0 && s->last_at[k] != 0 && now - s->last_at[k] < pol.dedup_ms)
		return 0;
	s->last_at[k] = now;
	return 1;
}

/* ---- the observed transitions ---- */

static const char *
jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_t *
event_parse(const struct event_out *e)
{
	json_t *o = json_loadb(e->line, e->len, 0, NULL);

	if (!json_is_object(o) || !json_is_object(json_object_get(o, "data"))) {
		log_warnx("notifications: event %lld (%s) does not parse", e->seq, e->topic);
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The kind of an agent.state transition, -1 for none the policy wants. */
static int
agent_kind(const char *to, const char *reason, const char *cause)
{
	int k = -1;

	if (strcmp(to, "blocked") != 0)
		return -1;
	if (reason != NULL && strncmp(reason, "quota", 5) == 0)
		k = NK_PARKED;
	else if ((cause != NULL && strcmp(cause, "extension_ui_request") == 0) ||
	         (reason != NULL && strncmp(reason, "waiting for extension UI", 24) == 0))
		k = NK_BLOCKED;
	return k >= 0 && (pol.on & (1u << k)) ? k : -1;
}

/* The task an agent works on (a task-bound run), from its row: a new reference or NULL. */
static json_t *
agent_task(const char *id)
{
	struct store_err e;
	json_t *row = store_agent_get(D.store, id, &e), *t;

	t = json_incref(json_object_get(row, "task"));
	json_decref(row);
	return t;
}

static void
note_agent_state(const struct event_out *e)
{
	json_t *o = event_parse(e), *d, *task;
	const char *id, *to;
	int k;

	if (o == NULL)
		return;
	d = json_object_get(o, "data");
	id = jstr(d, "id");
	to = jstr(d, "to");
	if (id != NULL && to != NULL) {
		k = agent_kind(to, jstr(d, "reason"), jstr(d, "cause"));
		if (seen_should(id, k, now_ms())) {
			task = agent_task(id);
			note_add((enum nkind)k, o, id, task, NULL, jstr(d, "reason"));
			json_decref(task);
		}
	}
	json_decref(o);
}

static void
note_task_failed(const struct event_out *e)
{
	json_t *o = event_parse(e), *d;
	const char *st;

	if (o == NULL)
		return;
	d = json_object_get(o, "data");
	st = jstr(d, "status");
	if (st != NULL && strcmp(st, "failed") == 0)
		note_add(NK_FAILED, o, jstr(d, "owner"), json_object_get(d, "id"), jstr(d, "title"),
		         jstr(d, "last_error") != NULL ? jstr(d, "last_error") : "failed");
	json_decref(o);
}

/* Does the ready queue hold a task?  1, 0, or -1 (a store error, logged). */
static int
queue_ready_now(void)
{
	struct store_task_page pg;
	struct store_err e;
	struct buf b;
	int rc;

	memset(&pg, 0, sizeof pg);
	pg.ready_only = 1;
	pg.limit = 1;
	buf_init(&b);
	rc = store_task_list_json(D.store, &pg, &b, &e);
	buf_free(&b);
	if (rc == -1) {
		log_warnx("notifications: the ready queue cannot be read: %s", e.msg);
		return -1;
	}
	return pg.count > 0;
}

/* After a commit with task events (last the last of them): did the queue drain? */
static void
note_queue(const struct event_out *last)
{
	int ready = queue_ready_now(), was = queue_ready_was;
	int64_t now = now_ms();
	json_t *o;

	if (ready == -1)
		return;
	queue_ready_was = ready;
	if (was != 1 || ready != 0)
		return;
	if (pol.dedup_ms > 0 && drained_last_at != 0 && now - drained_last_at < pol.dedup_ms)
		return;
	if ((o = event_parse(last)) == NULL)
		return;
	drained_last_at = now;
	note_add(NK_DRAINED, o, NULL, NULL, NULL, "the ready queue is empty");
	json_decref(o);
}

void
notify_published(const struct event_out *ev, size_t n)
{
	const struct event_out *last_task = NULL;
	size_t i, tl = strlen(EV_PREFIX_TASK);

	if (pol.argv == NULL || D.shutting_down || closed)
		return;
	for (i = 0; i < n; i++) {
		if (strcmp(ev[i].topic, EV_AGENT_STATE) == 0)
			note_agent_state(&ev[i]);
		else if (strncmp(ev[i].topic, EV_PREFIX_TASK, tl) == 0) {
			last_task = &ev[i];
			if (strcmp(ev[i].topic, EV_TASK_FAILED) == 0)
				note_task_failed(&ev[i]);
		}
	}
	if (last_task != NULL)
		note_queue(last_task);
}

/* ---- the hook ---- */

/* The hook's environment: an allow-list of the daemon's, and the kind. */
static char **
hook_env(enum nkind k)
{
	static const char *const keep[] = {"PATH",        "HOME",        "LANG",       "LC_ALL",
	                                   "LC_CTYPE",    "TZ",          "TMPDIR",     "USER",
	                                   "LOGNAME",     "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
	                                   "https_proxy", "http_proxy",  "no_proxy",   NULL};
	char **envp = xcalloc(sizeof keep / sizeof *keep + 2, sizeof *envp);
	size_t i, n = 0;

	for (i = 0; keep[i] != NULL; i++)
		if (getenv(keep[i]) != NULL)
			xasprintf(&envp[n++], "%s=%s", keep[i], getenv(keep[i]));
	if (getenv("PATH") == NULL)
		envp[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	xasprintf(&envp[n++], "COLIBRI_NOTIFY_KIND=%s", notify_kind_names[k]);
	envp[n] = NULL;
	return envp;
}

static void
hook_read(struct job *j, int which, const char *p, size_t n)
{
	struct buf *b = which == 1 ? &hook_out : &hook_err;
	size_t room = NOTIFY_OUT_MAX - buf_used(b);

	(void)j;
	buf_add(b, p, n < room ? n : room); /* the rest is read and let go */
}

static void
hook_wrote(uv_write_t *w, int status)
{
	(void)w;
	if (status < 0 && status != UV_ECANCELED)
		log_debug("notifications: the hook did not read its stdin: %s",
		          uv_strerror(status));
	if (job_stdin(&hook) != NULL)
		job_close_stdin(&hook);
}

static void
hook_done(struct job *j)
{
	job_close(j);
}

/* What the hook wrote to b, for a log line: its start, one line, printable. */
static char *
hook_text(struct buf *b)
{
	size_t n = buf_used(b) < NOTIFY_LOG_MAX ? buf_used(b) : NOTIFY_LOG_MAX, i;
	char *s = xstrndup(n > 0 ? buf_head(b) : "", n);

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	utf8_scrub(s);
	return s;
}

static void
hook_log(const struct job *j)
{
	char *err = hook_text(&hook_err), *out = hook_text(&hook_out);
	long long took = (long long)(now_ms() - hook_started);
	const char *k = notify_kind_names[hook_kind], *sep = err[0] != '\0' ? ": " : "";

	if (j->timed_out)
		log_warnx("notifications: hook for %s killed after %lld ms (timeout_ms)%s%s", k,
		          took, sep, err);
	else if (j->term_signal != 0)
		log_warnx("notifications: hook for %s killed by signal %d after %lld ms%s%s", k,
		          j->term_signal, took, sep, err);
	else if (j->exit_code != 0)
		log_warnx("notifications: hook for %s exited %d after %lld ms%s%s", k, j->exit_code,
		          took, sep, err);
	else
		log_info("notifications: hook for %s exited 0 after %lld ms%s%s", k, took, sep,
		         err);
	if (out[0] != '\0')
		log_debug("notifications: hook for %s wrote: %s", k, out);
	free(err);
	free(out);
}

static void
hook_closed(struct job *j)
{
	hook_log(j);
	free(hook_in);
	hook_in = NULL;
	hook_live = 0;
	if (!closed)
		hook_kick();
}

/* Start the hook on n; 0, or -1 with *cause. */
static int
hook_start(struct note *n, char **cause)
{
	struct job_spec js;
	char **envp = hook_env(n->kind), *js_body;
	uv_buf_t b;
	size_t i;
	int rc;

	memset(&js, 0, sizeof js);
	js.path = pol.argv[0];
	js.argv = pol.argv;
	js.envp = envp;
	js.cwd = "/";
	js.in = js.out = js.err = PROC_PIPE;
	js.tree = "job.notify";
	js.deadline_ms = pol.timeout_ms;
	memset(&hook, 0, sizeof hook);
	hook.on_read = hook_read;
	hook.on_done = hook_done;
	hook.on_closed = hook_closed;
	buf_reset(&hook_out);
	buf_reset(&hook_err);
	rc = job_start(&hook, &js, cause);
	for (i = 0; envp[i] != NULL; i++)
		free(envp[i]);
	free(envp);
	if (rc == -1)
		return -1;
	hook_live = 1;
	hook_kind = n->kind;
	hook_started = now_ms();
	js_body = jsonw_dumps(n->body);
	xasprintf(&hook_in, "%s\n", js_body != NULL ? js_body : "{}");
	free(js_body);
	b = uv_buf_init(hook_in, (unsigned)strlen(hook_in));
	if (job_stdin(&hook) == NULL ||
	    uv_write(&hook_wr, job_stdin(&hook), &b, 1, hook_wrote) != 0) {
		log_warnx("notifications: the hook's stdin could not be written");
		if (job_stdin(&hook) != NULL)
			job_close_stdin(&hook);
	}
	return 0;
}

/* The next notification to the hook, if none runs (from the kick timer, never a callback). */
static void
hook_next(uv_timer_t *t)
{
	struct note *n;
	char *cause = NULL;
	long long d = dropped;

	(void)t;
	if (hook_live || closed || D.shutting_down || pol.argv == NULL || (n = queue_pop()) == NULL)
		return;
	if (d > 0) {
		json_object_set_new(n->body, "dropped", json_integer(d));
		log_warnx("notifications: %lld dropped (the queue was full); the next says so", d);
		dropped = 0;
	}
	if (hook_start(n, &cause) == -1) {
		log_warnx("notifications: hook for %s not started: %s", notify_kind_names[n->kind],
		          cause);
		free(cause);
		dropped += d + 1; /* this one too: the next notification tells of it */
		hook_kick();
	}
	note_free(n);
}

static void
hook_kick(void)
{
	if (kick_open && !hook_live && qhead != NULL)
		uv_timer_start(&kick, hook_next, 0, 0);
}

/* ---- the subsystem ---- */

int
notify_init(char **cause)
{
	pol_path = config_path(NOTIFY_FILE);
	if (notify_policy_load(pol_path, &pol, cause) == -1)
		return -1;
	buf_init(&hook_out);
	buf_init(&hook_err);
	uv_timer_init(D.loop, &kick);
	uv_unref((uv_handle_t *)&kick);
	kick_open = 1;
	if (pol.argv != NULL)
		queue_ready_was = queue_ready_now();
	policy_log("loaded");
	return 0;
}

void
notify_reload(void)
{
	struct notify_policy p;
	char *cause = NULL;
	int was_on = pol.argv != NULL;

	if (closed)
		return;
	if (notify_policy_load(pol_path, &p, &cause) == -1) {
		log_warnx("notifications: %s not reloaded, the old policy stays: %s", pol_path,
		          cause);
		free(cause);
		return;
	}
	notify_policy_free(&pol);
	pol = p;
	if (pol.argv == NULL) {
		queue_drop_all("notifications are off");
		seen_clear();
		queue_ready_was = -1;
		drained_last_at = 0;
	} else if (!was_on)
		queue_ready_was = queue_ready_now();
	policy_log("reloaded");
	hook_kick();
}

void
notify_shutdown(void)
{
	queue_drop_all("the daemon is shutting down");
}

int
notify_busy(void)
{
	return hook_live;
}

void
notify_free(void)
{
	closed = 1;
	queue_drop_all("the daemon stops");
	if (hook_live)
		job_close(&hook);
	if (kick_open) {
		kick_open = 0;
		uv_close((uv_handle_t *)&kick, NULL);
	}
	seen_clear();
	free(seen);
	seen = NULL;
	notify_policy_free(&pol);
	buf_free(&hook_out);
	buf_free(&hook_err);
	free(pol_path);
	pol_path = NULL;
}
