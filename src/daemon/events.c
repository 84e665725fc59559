/*
 * events.c -- the event log: append in the transaction, publish after it.
 *
 * events_emit writes the event into the store in the current transaction
 * (txn_write opens one if need be) and keeps its wire line pending.  The
 * pending list is what the commit hands to the server to publish, and
 * what a savepoint rollback cuts back (events_mark, events_rollback_to):
 * a subscriber never sees an event whose writes were taken back.  Nothing
 * here writes to a client; see events.h for the order of calls.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "store/store.h"

static struct event_out *pev;
static size_t npev, cappev;

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
	size_t i;

	for (i = mark; i < npev; i++) {
		free(pev[i].topic);
		free(pev[i].line);
	}
	npev = mark;
}

const struct event_out *
events_pending(size_t *n)
{
	*n = npev;
	return pev;
}

void
events_forget(void)
{
	events_rollback_to(0);
}

void
events_close(void)
{
	events_forget();
	free(pev);
	pev = NULL;
	cappev = 0;
}

int
events_topic_matches(const char *topic, void *topics)
{
	const json_t *t = topics;
	size_t i;
	json_t *v;

	if (t == NULL || json_array_size(t) == 0)
		return 1;
	json_array_foreach(t, i, v)
	{
		const char *pfx = json_string_value(v);
		if (pfx != NULL && strncmp(topic, pfx, strlen(pfx)) == 0)
			return 1;
	}
	return 0;
}
