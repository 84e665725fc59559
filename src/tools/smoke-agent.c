/*
 * smoke-agent.c -- colibri-smoke-agent, a small reference client of the board.
 *
 * It does what any agent written against the socket has to do, and nothing
 * more, so it serves both to smoke-test a deployment and as an example:
 *
 *   1. agent-register {id?, name, provider, lease_ms}: the daemon knows it;
 *   2. agent-heartbeat on a timer (a third of the lease by default), which
 *      also renews the leases of its claims -- an agent that stops
 *      heartbeating is declared lost and its claims go back to the queue;
 *   3. task-claim {agent, lease_ms}: the head of the ready queue, or
 *      not_found "no ready task";
 *   4. task-update {id, agent, progress} after each step of the "work";
 *   5. task-complete {id, agent, result} with a small result object;
 *   6. exit once no task was ready for --idle-exit-ms, or after --max-tasks.
 *
 * One blocking connection, one request in flight (src/client/client.h); the
 * heartbeat is sent between steps, whenever it is due.  SIGINT and SIGTERM
 * stop it after the current request: a claimed task is released, not left
 * to expire.  Logs go to stderr, one line per action.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define SMOKE_EXIT_OK          0
#define SMOKE_EXIT_REFUSED     1
#define SMOKE_EXIT_USAGE       2
#define SMOKE_EXIT_UNREACHABLE 69

struct smoke_opts {
	const char *socket;
	const char *id;
	const char *name;
	long long lease_ms;
	long long heartbeat_ms;
	long long idle_exit_ms;
	long long poll_ms;
	long long work_ms;
	long long steps;
	long long max_tasks;
};

struct smoke {
	struct smoke_opts o;
	struct client *c;
	char *id;
	int64_t next_beat;
	long long done;
	long long current; /* the claimed task, 0 if none */
	int status;        /* exit status once something failed */
};

static volatile sig_atomic_t smoke_stop;

static void
smoke_on_signal(int sig)
{
	(void)sig;
	smoke_stop = 1;
}

static void
smoke_usage(FILE *f)
{
	fputs("usage: colibri-smoke-agent [--socket PATH] [--id ID] [--name NAME]\n"
	      "           [--lease-ms MS] [--heartbeat-ms MS] [--idle-exit-ms MS]\n"
	      "           [--poll-ms MS] [--work-ms MS] [--steps N] [--max-tasks N]\n"
	      "           [--log-level error|warn|info|debug]\n"
	      "\n"
	      "Registers with the daemon, heartbeats, claims ready tasks, reports\n"
	      "progress and completes them, until no task was ready for --idle-exit-ms\n"
	      "(default 2000) or --max-tasks tasks are done (default: no limit).\n"
	      "\n"
	      "  --socket PATH      daemon socket (default $COLIBRI_SOCKET, then the OS default)\n"
	      "  --id ID            agent id to register as (default: the daemon picks one)\n"
	      "  --lease-ms MS      agent and claim lease (default 30000)\n"
	      "  --heartbeat-ms MS  heartbeat period (default lease/3)\n"
	      "  --poll-ms MS       wait between claims when the queue is empty (default 100)\n"
	      "  --work-ms MS       time spent on each task, over --steps steps (default 0, 3)\n"
	      "\n"
	      "exit status:\n"
	      "  0   done: idle for --idle-exit-ms, --max-tasks reached, or stopped by a signal\n"
	      "  1   the daemon refused a request it should have accepted (the log says which)\n"
	      "  2   usage error\n"
	      "  69  the daemon is unreachable, or the connection was lost\n",
	      f);
}

/* A non-negative integer option value; -1 when it is not one. */
static long long
smoke_number(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 0)
		return -1;
	return v;
}

static const struct option smoke_longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"id", required_argument, NULL, 'i'},
        {"name", required_argument, NULL, 'n'},
        {"lease-ms", required_argument, NULL, 'l'},
        {"heartbeat-ms", required_argument, NULL, 'b'},
        {"idle-exit-ms", required_argument, NULL, 'x'},
        {"poll-ms", required_argument, NULL, 'p'},
        {"work-ms", required_argument, NULL, 'w'},
        {"steps", required_argument, NULL, 'S'},
        {"max-tasks", required_argument, NULL, 'm'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* The field a numeric option sets, or NULL when ch is not a numeric option. */
static long long *
smoke_num_field(struct smoke_opts *o, int ch)
{
	switch (ch) {
	case 'l':
		return &o->lease_ms;
	case 'b':
		return &o->heartbeat_ms;
	case 'x':
		return &o->idle_exit_ms;
	case 'p':
		return &o->poll_ms;
	case 'w':
		return &o->work_ms;
	case 'S':
		return &o->steps;
	case 'm':
		return &o->max_tasks;
	default:
		return NULL;
	}
}

static int
smoke_parse(struct smoke_opts *o, int argc, char **argv)
{
	enum log_level level = LOG_LEVEL_INFO;
	long long *num;
	int ch;

	while ((ch = getopt_long(argc, argv, "h", smoke_longopts, NULL)) != -1) {
		if ((num = smoke_num_field(o, ch)) != NULL) {
			if ((*num = smoke_number(optarg)) < 0)
				return -1;
			continue;
		}
		switch (ch) {
		case 's':
			o->socket = optarg;
			break;
		case 'i':
			o->id = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'L':
			if (log_parse_level(optarg, &level) == -1)
				return -1;
			break;
		case 'h':
			smoke_usage(stdout);
			exit(SMOKE_EXIT_OK);
		default:
			return -1;
		}
	}
	if (optind != argc || o->lease_ms < 1000 || o->steps < 1)
		return -1;
	if (o->heartbeat_ms == 0)
		o->heartbeat_ms = o->lease_ms / 3;
	log_init("colibri-smoke-agent", level, NULL);
	return 0;
}

/*
 * One request.  Returns 0 with *res (new reference, may be NULL if not
 * wanted), 1 when the daemon answered code `soft` (an expected refusal), -1
 * on any other failure (s->status is set).
 */
static int
smoke_call(struct smoke *s, const char *cmd, json_t *args, json_t **res, const char *soft)
{
	struct client_error err;
	json_t *r = NULL;
	int rc = client_call(s->c, cmd, args, &r, &err);

	json_decref(args);
	if (rc == 0) {
		if (res != NULL)
			*res = r;
		else
			json_decref(r);
		return 0;
	}
	if (rc == -1 && soft != NULL && strcmp(err.code, soft) == 0)
		return 1;
	log_warnx("%s: %s: %s", cmd, err.code, err.message);
	s->status = rc == -2 ? SMOKE_EXIT_UNREACHABLE : SMOKE_EXIT_REFUSED;
	return -1;
}

static int
smoke_heartbeat(struct smoke *s, const char *activity)
{
	int64_t now = mono_ms();

	if (now < s->next_beat)
		return 0;
	s->next_beat = now + s->o.heartbeat_ms;
	log_debug("heartbeat (%s)", activity);
	return smoke_call(s, CMD_AGENT_HEARTBEAT,
	                  json_pack("{s:s, s:s, s:s}", "id", s->id, "state",
	                            s->current != 0 ? "working" : "idle", "activity", activity),
	                  NULL, NULL);
}

/* Sleep ms, heartbeating when due; -1 on a failed heartbeat. */
static int
smoke_sleep(struct smoke *s, long long ms, const char *activity)
{
	int64_t until = mono_ms() + ms, left;
	struct timespec ts;

	for (;;) {
		if (smoke_heartbeat(s, activity) == -1)
			return -1;
		if (smoke_stop || (left = until - mono_ms()) <= 0)
			return 0;
		if (left > s->next_beat - mono_ms())
			left = s->next_beat - mono_ms();
		if (left > 50)
			left = 50;
		if (left < 1)
			left = 1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

static int
smoke_register(struct smoke *s)
{
	json_t *args = json_pack("{s:s, s:s, s:I}", "name", s->o.name, "provider", "smoke",
	                         "lease_ms", (json_int_t)s->o.lease_ms),
	       *r;

	if (s->o.id != NULL)
		json_object_set_new(args, "id", json_string(s->o.id));
	if (smoke_call(s, CMD_AGENT_REGISTER, args, &r, NULL) != 0)
		return -1;
	s->id = xstrdup(json_string_value(json_object_get(r, "id")));
	json_decref(r);
	s->next_beat = mono_ms() + s->o.heartbeat_ms;
	log_info("registered as %s (lease %lld ms, heartbeat every %lld ms)", s->id, s->o.lease_ms,
	         s->o.heartbeat_ms);
	return 0;
}

/* Work on the claimed task in steps, reporting progress; then complete it. */
static int
smoke_work(struct smoke *s, const char *title)
{
	char progress[64], activity[64];
	long long step;
	int rc;

	for (step = 1; step <= s->o.steps; step++) {
		snprintf(activity, sizeof activity, "task %lld step %lld/%lld", s->current, step,
		         s->o.steps);
		if (smoke_sleep(s, s->o.work_ms / s->o.steps, activity) == -1)
			return -1;
		if (smoke_stop)
			return 0;
		snprintf(progress, sizeof progress, "step %lld/%lld", step, s->o.steps);
		rc = smoke_call(s, CMD_TASK_UPDATE,
		                json_pack("{s:I, s:s, s:s}", "id", (json_int_t)s->current, "agent",
		                          s->id, "progress", progress),
		                NULL, ERR_CONFLICT);
		if (rc != 0)
			goto lost;
	}
	rc = smoke_call(s, CMD_TASK_COMPLETE,
	                json_pack("{s:I, s:s, s:{s:s, s:I, s:I}}", "id", (json_int_t)s->current,
	                          "agent", s->id, "result", "by", s->id, "steps",
	                          (json_int_t)s->o.steps, "n", (json_int_t)(s->done + 1)),
	                NULL, ERR_CONFLICT);
	if (rc != 0)
		goto lost;
	s->done++;
	log_info("completed task %lld \"%s\" (%lld done)", s->current, title, s->done);
	s->current = 0;
	return 0;
lost:
	if (rc == 1)
		log_warnx("task %lld is no longer ours (lease expired?); moving on", s->current);
	s->current = 0;
	return rc == 1 ? 0 : -1;
}

/* Claim the head of the ready queue.  1: claimed, 0: none ready, -1: failed. */
static int
smoke_claim(struct smoke *s, char *title, size_t len)
{
	json_t *t;
	int rc;

	rc = smoke_call(
	        s, CMD_TASK_CLAIM,
	        json_pack("{s:s, s:I}", "agent", s->id, "lease_ms", (json_int_t)s->o.lease_ms), &t,
	        ERR_NOT_FOUND);
	if (rc != 0)
		return rc == 1 ? 0 : -1;
	s->current = (long long)json_integer_value(json_object_get(t, "id"));
	snprintf(title, len, "%s", json_string_value(json_object_get(t, "title")));
	json_decref(t);
	log_info("claimed task %lld \"%s\"", s->current, title);
	return 1;
}

static int
smoke_loop(struct smoke *s)
{
	int64_t idle_since = mono_ms();
	char title[256];
	int rc;

	while (!smoke_stop && (s->o.max_tasks == 0 || s->done < s->o.max_tasks)) {
		if ((rc = smoke_claim(s, title, sizeof title)) == -1)
			return -1;
		if (rc == 1) {
			if (smoke_work(s, title) == -1)
				return -1;
			idle_since = mono_ms();
			continue;
		}
		if (mono_ms() - idle_since >= s->o.idle_exit_ms) {
			log_info("no ready task for %lld ms; exiting", s->o.idle_exit_ms);
			break;
		}
		if (smoke_sleep(s, s->o.poll_ms, "waiting for a task") == -1)
			return -1;
	}
	return 0;
}

/* On a signal mid-task: hand the task back rather than let its lease run out. */
static void
smoke_release(struct smoke *s)
{
	if (s->current == 0 || s->c == NULL)
		return;
	if (smoke_call(s, CMD_TASK_RELEASE,
	               json_pack("{s:I, s:s}", "id", (json_int_t)s->current, "agent", s->id), NULL,
	               ERR_CONFLICT) == 0)
		log_info("released task %lld", s->current);
	s->current = 0;
}

int
main(int argc, char **argv)
{
	struct smoke s = {.o = {.name = "smoke",
	                        .lease_ms = 30000,
	                        .idle_exit_ms = 2000,
	                        .poll_ms = 100,
	                        .steps = 3}};
	struct sigaction sa;
	const char *path;

	if (smoke_parse(&s.o, argc, argv) == -1) {
		smoke_usage(stderr);
		return SMOKE_EXIT_USAGE;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = smoke_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	path = s.o.socket != NULL ? s.o.socket : client_default_socket();
	if ((s.c = client_connect(path)) == NULL) {
		log_warn("cannot connect to %s", path);
		return SMOKE_EXIT_UNREACHABLE;
	}
	if (smoke_register(&s) == 0 && smoke_loop(&s) == 0) {
		if (smoke_stop)
			log_info("stopped by a signal");
		smoke_release(&s);
	}
	log_info("%lld task%s done; exit %d", s.done, s.done == 1 ? "" : "s", s.status);
	client_close(s.c);
	free(s.id);
	log_close();
	return s.status;
}
