/*
 * txn.c -- group commit: one transaction per loop iteration.  See txn.h.
 *
 * Two libuv handles serve it.  An idle handle runs while a transaction is
 * open, only so that the loop does not sleep in poll with a commit due: the
 * server's check handle, which commits, runs right after the poll phase.
 * A timer bounds the store's shared read snapshot (see store-sqlite.c, st)
 * to SNAPSHOT_MS, so it never holds back a checkpoint for long.
 */
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/txn.h"
#include "store/store.h"

static uv_idle_t txn_idle;
static uv_timer_t snapshot_timer;

/* How long the store's read snapshot may stay open (see store-sqlite.c, st). */
#define SNAPSHOT_MS 100

static void
snapshot_timer_cb(uv_timer_t *h)
{
	(void)h;
	store_idle(D.store);
}

static void
txn_idle_cb(uv_idle_t *h)
{
	(void)h; /* only keeps poll from blocking while a transaction is open */
}

void
txn_init(void)
{
	uv_idle_init(D.loop, &txn_idle);
	uv_timer_init(D.loop, &snapshot_timer);
	uv_unref((uv_handle_t *)&snapshot_timer);
}

void
txn_close(void)
{
	struct store_err e;

	if (txn_commit(&e) == -1)
		log_warnx("commit at shutdown failed: %s", e.msg);
	uv_close((uv_handle_t *)&txn_idle, NULL);
	uv_close((uv_handle_t *)&snapshot_timer, NULL);
	if (D.store != NULL)
		store_idle(D.store);
}

int
txn_active(void)
{
	return D.store != NULL && store_in_txn(D.store);
}

int
txn_write(struct store_err *e)
{
	if (store_in_txn(D.store))
		return 0;
	if (store_begin(D.store, e) == -1)
		return -1;
	uv_idle_start(&txn_idle, txn_idle_cb);
	return 0;
}

void
txn_abort(void)
{
	if (store_in_txn(D.store)) {
		store_rollback(D.store);
		uv_idle_stop(&txn_idle);
	}
}

int
txn_commit(struct store_err *e)
{
	if (!txn_active())
		return 0;
	uv_idle_stop(&txn_idle);
	return store_commit(D.store, e);
}

void
txn_snapshot_watch(void)
{
	if (D.store != NULL && store_snapshot_open(D.store) &&
	    !uv_is_active((uv_handle_t *)&snapshot_timer))
		uv_timer_start(&snapshot_timer, snapshot_timer_cb, SNAPSHOT_MS, 0);
}
