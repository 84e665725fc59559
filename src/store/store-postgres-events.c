/*
 * store-postgres-events.c -- the events log on PostgreSQL, and the
 * cross-host notifications that carry other daemons' events to this one.
 *
 * Append draws seqs under the events advisory lock, so events commit in
 * seq order (store-postgres.c's head comment has the whole argument); the
 * scan reads the events after a seq, filtered by topic prefix.  The
 * notification half reads the LISTEN connection and hands the events other
 * daemons committed to the event sink.  Kept in a file of its own: the
 * scan's filter is the subscription's business (it may move to the
 * daemon's event code), and that change should touch this file alone.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-postgres.h"
#include "store/store-rules.h"

/* ---- events ---- */

long long
pg_store_event_append(struct pg_store *s, const char *topic, const char *data, int64_t ts,
                      struct store_err *e)
{
	struct pg_params p = {0};
	long long seq;

	/* Seqs are drawn under the events lock, so they commit in order (see the top). */
	if (!s->evlock) {
		if (pg_do(s, "SELECT pg_advisory_xact_lock(" EVENTS_LOCK ")", NULL) == -1)
			goto fail;
		s->evlock = 1;
	}
	pp_int(&p, ts);
	pp_text(&p, s->host != NULL ? s->host : "");
	pp_text(&p, topic);
	pp_text(&p, data);
	seq = pg_scalar(s,
	                "INSERT INTO events (ts, host, topic, data) VALUES ($1, $2, $3, $4) "
	                "RETURNING seq",
	                &p, -1);
	if (seq == -1)
		goto fail;
	if (s->own_min == 0)
		s->own_min = seq;
	s->own_max = seq;
	return seq;
fail:
	pg_dberr(s, e, "event");
	return -1;
}

long long
pg_store_event_last(struct pg_store *s)
{
	return pg_scalar(s, "SELECT coalesce(max(seq), 0) FROM events", NULL, 0);
}

int
pg_store_event_scan(struct pg_store *s, long long since, long long limit, store_match_cb match,
                    void *match_arg, store_scan_cb cb, void *arg)
{
	struct pg_params p = {0};
	long long n = 0, last = since;
	PGresult *r;
	int i, rows, stop = 0;

	do {
		p.n = 0;
		pp_int(&p, last);
		r = pg_run(s,
		           "SELECT seq, ts, topic, data FROM events WHERE seq > $1 ORDER BY seq "
		           "LIMIT 1000",
		           &p);
		if (r == NULL)
			return -1;
		rows = PQntuples(r);
		for (i = 0; i < rows && n < limit && !stop; i++) {
			last = pg_int(r, i, 0, last);
			if (match != NULL && !match(PQgetvalue(r, i, 2), match_arg))
				continue;
			n++;
			stop = cb(last, pg_int(r, i, 1, 0), PQgetvalue(r, i, 2),
			          PQgetvalue(r, i, 3), arg) != 0;
		}
		PQclear(r);
	} while (rows == 1000 && n < limit && !stop);
	return (int)n;
}

/* ---- cross-host notifications ---- */

int
pg_store_notify_fd(struct pg_store *s)
{
	return s->listen != NULL ? PQsocket(s->listen) : -1;
}

int
pg_store_notify_read(struct pg_store *s)
{
	PGnotify *nf;
	int n = 0;

	if (s->listen == NULL || s->listen_broken || PQstatus(s->listen) != CONNECTION_OK) {
		/* Reconnect; events committed meanwhile are found by the hand-over. */
		if (pg_listen_start(s) == -1)
			return -1;
		s->listen_broken = 0;
		n = 1;
	} else if (PQconsumeInput(s->listen) == 0) {
		/* Keep the descriptor open until the caller has stopped watching it. */
		s->listen_broken = 1;
		return -1;
	}
	while ((nf = PQnotifies(s->listen)) != NULL) {
		n++;
		PQfreemem(nf);
	}
	if (n == 0)
		return 0;
	if (s->txn) {
		/* Our own uncommitted events would show: hand over after the commit. */
		s->notified = 1;
		return 0;
	}
	return pg_handover(s, 0);
}
