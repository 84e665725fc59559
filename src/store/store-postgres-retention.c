/*
 * store-postgres-retention.c -- what retention asks of the PostgreSQL
 * backend: the same compaction as store-sqlite-retention.c (read its head
 * comment: a prefix of the log by seq, a batch at a time, the floor in kv
 * in the same transaction), the database's size, and no reclaim.
 *
 * The row cap counts seqs (last - keep_rows); a sequence leaves gaps where
 * transactions rolled back, so it may keep a few rows fewer than the cap,
 * never more; the newest event always stays (store_event_last is max(seq)).  Several daemons may
 * share the log: each compacts with the same rules, and the floor only rises.  Space is
 * PostgreSQL's business: its autovacuum marks deleted rows' space for reuse, and a VACUUM cannot
 * run inside the transaction each batch is, so reclaim returns 0.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "store/store-postgres.h"

#define FLOOR_KEY "events.compacted_through"

/* The last seq of the next batch's prefix: 0 when nothing may go, -2 on error. */
static long long
compact_upto(struct pg_store *s, int64_t before, long long keep_rows, long long batch)
{
	struct pg_params p = {0};
	long long last = pg_store_event_last(s), over = keep_rows > 0 ? last - keep_rows : 0;
	long long wend, blocker, upto;

	pp_int(&p, batch - 1);
	wend = pg_scalar(s, "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET $1", &p, -3);
	if (wend == -3)
		wend = last; /* fewer rows than a batch (or an error: the next query says) */
	p.n = 0;
	pp_int(&p, over);
	pp_int(&p, wend);
	pp_int(&p, before > 0 ? before : INT64_MIN);
	blocker = pg_scalar(s,
	                    "SELECT coalesce((SELECT seq FROM events WHERE seq > $1 AND seq <= $2 "
	                    "AND ts >= $3 ORDER BY seq LIMIT 1), 0)",
	                    &p, -2);
	if (blocker == -2)
		return -2;
	upto = blocker > 0 ? blocker - 1 : wend;
	/* The newest event always stays: the last seq is never lost, nor reused. */
	return upto < last ? upto : last - 1;
}

long long
pg_store_event_compact(struct pg_store *s, int64_t before, long long keep_rows, long long batch,
                       struct store_err *e)
{
	struct pg_params p = {0};
	long long upto, n;
	PGresult *r;
	char v[32];

	if ((before <= 0 && keep_rows <= 0) || batch <= 0)
		return 0;
	if ((upto = compact_upto(s, before, keep_rows, batch)) == -2)
		goto dberr;
	if (upto <= 0)
		return 0;
	pp_int(&p, upto);
	if ((r = pg_run(s, "DELETE FROM events WHERE seq <= $1", &p)) == NULL)
		goto dberr;
	n = pg_changes(r);
	PQclear(r);
	snprintf(v, sizeof v, "%lld", upto);
	if (n > 0 && pg_store_kv_set(s, FLOOR_KEY, v, e) == -1)
		return -1;
	return n;
dberr:
	pg_dberr(s, e, "events compaction");
	return -1;
}

long long
pg_store_event_floor(struct pg_store *s)
{
	return pg_scalar(
	        s, "SELECT coalesce((SELECT value::bigint FROM kv WHERE key = '" FLOOR_KEY "'), 0)",
	        NULL, 0);
}

long long
pg_store_event_oldest(struct pg_store *s)
{
	return pg_scalar(s, "SELECT coalesce(min(seq), 0) FROM events", NULL, 0);
}

long long
pg_store_db_bytes(struct pg_store *s)
{
	return pg_scalar(s, "SELECT pg_database_size(current_database())", NULL, 0);
}

long long
pg_store_reclaim(struct pg_store *s, long long max_pages, struct store_err *e)
{
	(void)s;
	(void)max_pages;
	(void)e;
	return 0;
}
