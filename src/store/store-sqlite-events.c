/*
 * store-sqlite-events.c -- the events log on SQLite: append and scan.
 *
 * Every event the daemon publishes is appended in the same transaction as
 * the change it reports, so a subscriber replaying the log after a crash
 * sees exactly the committed changes, in seq order.  The scan reads the
 * events after a seq, filtered by topic prefix, and hands each to a
 * callback.  Kept in a file of its own: the scan's filter is the
 * subscription's business (it may move to the daemon's event code), and
 * that change should touch this file alone.
 */
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/proto.h"
#include "common/xmalloc.h"
#include "store/store-rules.h"
#include "store/store-sqlite.h"

/* ---- events ---- */

long long
sqlite_store_event_append(struct sqlite_store *s, const char *topic, const char *data, int64_t ts,
                          struct store_err *e)
{
	sqlite3_stmt *q = sq_st(s, "INSERT INTO events (ts, topic, data) VALUES (?, ?, ?)");

	if (q == NULL)
		goto dberr;
	sqlite3_bind_int64(q, 1, ts);
	sqlite3_bind_text(q, 2, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, data, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto dberr;
	sqlite3_reset(q);
	return sqlite3_last_insert_rowid(s->db);
dberr:
	sq_dberr(s, e, "event");
	if (q != NULL)
		sqlite3_reset(q);
	return -1;
}

long long
sqlite_store_event_last(struct sqlite_store *s)
{
	return sq_row_int64(sq_st(s, "SELECT coalesce(max(seq), 0) FROM events"), 0);
}

int
sqlite_store_event_scan(struct sqlite_store *s, long long since, long long limit,
                        store_match_cb match, void *match_arg, store_scan_cb cb, void *arg)
{
	sqlite3_stmt *q;
	long long n = 0;

	/* A fresh statement: the callback may append events (which reuses the cache). */
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT seq, ts, topic, data FROM events WHERE seq > ? ORDER BY seq",
	                       -1, &q, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(q, 1, since);
	while (n < limit && sqlite3_step(q) == SQLITE_ROW) {
		const char *topic = (const char *)sqlite3_column_text(q, 2);
		if (match != NULL && !match(topic, match_arg))
			continue;
		n++;
		if (cb(sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1), topic,
		       (const char *)sqlite3_column_text(q, 3), arg) != 0)
			break;
	}
	sqlite3_finalize(q);
	return (int)n;
}
