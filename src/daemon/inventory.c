/*
 * inventory.c -- the host-status subsystem: what the host offers, from
 * colibri-runtime-inventory.
 *
 * Host status is the JSON manifest of colibri-runtime-inventory, run as a
 * child process on the job layer (so its `--version` probes never block the
 * loop) at start and every COLIBRI_INVENTORY_INTERVAL_MS (10 minutes by
 * default).  The latest manifest is kept in memory and in the store's kv
 * table (so a restarted daemon shows the last one at once) and published
 * as a host.status event; status and host-status read it from here.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/proto.h"
#include "daemon/daemon.h"
#include "daemon/inventory.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "job/job.h"
#include "store/store.h"

static json_t *host_status;
static uv_timer_t inv_timer;
static struct job inv_job;
static struct buf inv_buf;
static int inv_running; /* started, handles not yet closed */
static char *inv_binary;

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
inventory_host_status(void)
{
	return host_status;
}

int
inventory_found(void)
{
	return inv_binary != NULL;
}

int
inventory_init(char **cause)
{
	const char *v;
	char *saved;
	int64_t interval = 600000;

	(void)cause;
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
	return 0;
}

int
inventory_busy(void)
{
	return inv_running;
}

void
inventory_close(void)
{
	uv_timer_stop(&inv_timer);
	uv_close((uv_handle_t *)&inv_timer, NULL);
	json_decref(host_status);
	host_status = NULL;
	buf_free(&inv_buf);
	free(inv_binary);
	inv_binary = NULL;
}
