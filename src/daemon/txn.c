/*
 * txn.c -- group commit: one transaction per loop iteration, replies held
 * until it commits, events published after it.  See txn.h.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/server.h"
#include "daemon/txn.h"
#include "store/store.h"

struct held {
	struct client *client;
	char *line;
	size_t len;
};

struct pending_event {
	long long seq;
	char *topic;
	char *line;
	size_t len;
};

static uv_check_t txn_check;
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
static struct held *held;
static size_t nheld, capheld;
static struct pending_event *pev;
static size_t npev, cappev;

static void
txn_check_cb(uv_check_t *h)
{
	(void)h;
	txn_flush();
	server_replay_run();
	server_flush_all();
	if (D.store != NULL && store_snapshot_open(D.store) &&
	    !uv_is_active((uv_handle_t *)&snapshot_timer))
		uv_timer_start(&snapshot_timer, snapshot_timer_cb, SNAPSHOT_MS, 0);
}

static void
txn_idle_cb(uv_idle_t *h)
{
	(void)h; /* only keeps poll from blocking while a transaction is open */
}

void
txn_init(void)
{
	uv_check_init(D.loop, &txn_check);
	uv_check_start(&txn_check, txn_check_cb);
	uv_unref((uv_handle_t *)&txn_check);
	uv_idle_init(D.loop, &txn_idle);
	uv_timer_init(D.loop, &snapshot_timer);
	uv_unref((uv_handle_t *)&snapshot_timer);
}

void
txn_close(void)
{
	txn_flush();
	uv_close((uv_handle_t *)&txn_check, NULL);
	uv_close((uv_handle_t *)&txn_idle, NULL);
	uv_close((uv_handle_t *)&snapshot_timer, NULL);
	if (D.store != NULL)
		store_idle(D.store);
	free(held);
	free(pev);
	held = NULL;
	pev = NULL;
}

int
txn_open(void)
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

static void
drop_events(size_t from)
{
	size_t i;

	for (i = from; i < npev; i++) {
		free(pev[i].topic);
		free(pev[i].line);
	}
	npev = from;
}

void
txn_flush(void)
{
	struct store_err e;
	size_t i;
	int ok = 1;

	if (store_in_txn(D.store)) {
		uv_idle_stop(&txn_idle);
		if (store_commit(D.store, &e) == -1) {
			log_warnx("commit failed, %zu replies turned into errors: %s", nheld,
			          e.msg);
			ok = 0;
		}
	}
	for (i = 0; i < nheld; i++) {
		if (held[i].client != NULL) {
			if (ok)
				server_client_release(held[i].client, held[i].line, held[i].len);
			else
				server_client_fail_held(held[i].client, held[i].line, held[i].len,
				                        e.msg);
		}
		free(held[i].line);
	}
	nheld = 0;
	if (ok)
		for (i = 0; i < npev; i++)
			server_publish(pev[i].seq, pev[i].topic, pev[i].line, pev[i].len);
	drop_events(0);
}

void
txn_reply(struct client *c, const char *line, size_t len)
{
	if (!store_in_txn(D.store)) {
		server_client_write(c, line, len);
		return;
	}
	if (nheld == capheld)
		held = xreallocarray(held, capheld = capheld ? capheld * 2 : 64, sizeof *held);
	held[nheld].client = c;
	server_client_hold(c, len);
	held[nheld].line = xmalloc(len);
	memcpy(held[nheld].line, line, len);
	held[nheld].len = len;
	nheld++;
}

void
txn_forget_client(struct client *c)
{
	size_t i;

	for (i = 0; i < nheld; i++)
		if (held[i].client == c)
			held[i].client = NULL;
}

char *
events_line(long long seq, long long ts, const char *topic, const char *data, size_t *len)
{
	size_t n = strlen(data);
	struct buf b;

	buf_init(&b);
	buf_reserve(&b, n + strlen(topic) + 64);
	/* data is already serialised JSON: splice it in rather than parse it again. */
	buf_add(&b, "{\"event\":", 9);
	jsonw_str(&b, topic, strlen(topic));
	buf_add(&b, ",\"seq\":", 7);
	jsonw_int(&b, seq);
	buf_add(&b, ",\"ts\":", 6);
	jsonw_int(&b, ts);
	buf_add(&b, ",\"data\":", 8);
	buf_add(&b, data, n);
	buf_add(&b, "}\n", 2);
	*len = b.len;
	return b.data;
}

long long
events_emit_raw(const char *topic, const char *data)
{
	struct store_err e;
	long long seq;
	int64_t ts = now_ms();

	if (txn_write(&e) == -1) {
		log_warnx("event %s lost: %s", topic, e.msg);
		return -1;
	}
	if ((seq = store_event_append(D.store, topic, data, ts, &e)) == -1) {
		log_warnx("event %s lost: %s", topic, e.msg);
		return -1;
	}
	if (npev == cappev)
		pev = xreallocarray(pev, cappev = cappev ? cappev * 2 : 64, sizeof *pev);
	pev[npev].seq = seq;
	pev[npev].topic = xstrdup(topic);
	pev[npev].line = events_line(seq, ts, topic, data, &pev[npev].len);
	npev++;
	return seq;
}

long long
events_emit(const char *topic, json_t *data)
{
	long long seq;
	char *d;

	d = jsonw_dumps(data);
	json_decref(data);
	if (d == NULL) {
		log_warnx("event %s lost: its data could not be encoded", topic);
		return -1;
	}
	seq = events_emit_raw(topic, d);
	free(d);
	return seq;
}

size_t
events_mark(void)
{
	return npev;
}

void
events_rollback_to(size_t mark)
{
	drop_events(mark);
}
