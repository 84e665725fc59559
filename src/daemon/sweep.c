/*
 * sweep.c -- leases and liveness.
 *
 * A claimed task holds a lease; a registered agent holds one too, renewed
 * by its heartbeats.  A repeating timer (every SWEEP_MS) asks the store for
 * the earliest deadline, which is an indexed min(), and only when something
 * is due does it open a transaction: expired claims go back to the queue
 * (task.expired), agents past their lease are marked lost (agent.lost) and
 * their claims released.
 */
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/sweep.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "store/store.h"

#define SWEEP_MS 100

static uv_timer_t sweep_timer;

static void
on_task_expired(json_t *t, void *arg)
{
	(void)arg;
	events_emit(EV_TASK_EXPIRED, json_incref(t));
}

static void
on_task_released(json_t *t, void *arg)
{
	(void)arg;
	events_emit(EV_TASK_RELEASED, json_incref(t));
}

void
sweep_agent_lost(const char *id, const char *reason)
{
	struct store_err e;
	json_t *f, *a;
	int64_t now = now_ms();

	f = json_pack("{s:i, s:s, s:s, s:I}", "lost", 1, "state", "lost", "reason", reason, "since",
	              (json_int_t)now);
	a = store_agent_put(D.store, id, f, now, &e);
	json_decref(f);
	if (a == NULL) {
		log_warnx("agent %s: %s", id, e.msg);
		return;
	}
	log_info("agent %s lost: %s", id, reason);
	events_emit(EV_AGENT_LOST, a);
	store_task_release_agent(D.store, id, now, on_task_released, NULL);
}

static void
on_agent_lost(const char *id, void *arg)
{
	(void)arg;
	sweep_agent_lost(id, "missed heartbeats");
}

void
sweep_run(void)
{
	struct store_err e;
	int64_t now = now_ms(), t1, t2;

	t1 = store_task_next_expiry(D.store);
	t2 = store_agent_next_loss(D.store);
	if ((t1 < 0 || t1 > now) && (t2 < 0 || t2 > now))
		return;
	if (txn_write(&e) == -1) {
		log_warnx("sweep: %s", e.msg);
		return;
	}
	if (t2 >= 0 && t2 <= now)
		store_agent_find_lost(D.store, now, on_agent_lost, NULL);
	if (t1 >= 0 && t1 <= now)
		store_task_expire(D.store, now, on_task_expired, NULL);
}

static void
sweep_cb(uv_timer_t *t)
{
	(void)t;
	sweep_run();
}

void
sweep_init(void)
{
	uv_timer_init(D.loop, &sweep_timer);
	uv_timer_start(&sweep_timer, sweep_cb, SWEEP_MS, SWEEP_MS);
	uv_unref((uv_handle_t *)&sweep_timer);
}

void
sweep_close(void)
{
	uv_close((uv_handle_t *)&sweep_timer, NULL);
}
