/*
 * store-sqlite-retention.c -- what retention asks of the SQLite backend:
 * delete the oldest events a batch at a time, say how far the log was
 * compacted, measure the file and hand free pages back.
 *
 * Compaction deletes a prefix of the log, by seq, never a hole: so "every
 * event with seq <= floor is gone" is the whole truth a reader needs, and
 * the floor (kv events.compacted_through, raised in the transaction that
 * deletes) tells a cursor that lost events from one that did not.  A batch
 * walks at most `batch` rows of the primary key, so a large backlog costs
 * many short transactions, never one long one.  The row cap counts seqs
 * (last - keep_rows): SQLite's AUTOINCREMENT leaves no gaps but those the
 * compaction made below the floor.  The newest event always stays, so the
 * last seq (store_event_last: max(seq)) is never lost.
 *
 * Space: a database created by this daemon has auto_vacuum=incremental
 * (store-sqlite.c sets it before the first table), so freed pages can be
 * given back to the file system in steps.  Free pages are also what the
 * next inserts reuse, so a steady load needs no reclaim at all; reclaim
 * runs only when over a quarter of the file is free, and stops at an
 * eighth, keeping room for tomorrow's rows without moving pages twice.
 * A database created before (auto_vacuum none) is never vacuumed here: a
 * full VACUUM rewrites the whole file under the one writer's lock.
 */
#include <stdint.h>
#include <stdio.h>

#include "store/store-sqlite.h"

#define FLOOR_KEY "events.compacted_through"

static long long
bound_row(struct sqlite_store *s, const char *sql, long long a, long long b, long long c,
          long long dflt)
{
	sqlite3_stmt *q = sq_st(s, sql);

	if (q == NULL)
		return -2;
	sqlite3_bind_int64(q, 1, a);
	if (sqlite3_bind_parameter_count(q) > 1)
		sqlite3_bind_int64(q, 2, b);
	if (sqlite3_bind_parameter_count(q) > 2)
		sqlite3_bind_int64(q, 3, c);
	return sq_row_int64(q, dflt);
}

/* The last seq of the next batch's prefix: 0 when nothing may go, -2 on error. */
static long long
compact_upto(struct sqlite_store *s, int64_t before, long long keep_rows, long long batch)
{
	long long last = sqlite_store_event_last(s), over = keep_rows > 0 ? last - keep_rows : 0;
	long long wend, blocker, upto;

	/* The batch's window: the batch-th oldest event, or the whole log. */
	wend = bound_row(s, "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET ?", batch - 1, 0, 0,
	                 last);
	if (wend == -2)
		return -2;
	/* The first event in it that must stay: within the row cap and young enough. */
	blocker = bound_row(s,
	                    "SELECT seq FROM events WHERE seq > ? AND seq <= ? AND ts >= ? "
	                    "ORDER BY seq LIMIT 1",
	                    over, wend, before > 0 ? before : INT64_MIN, 0);
	if (blocker == -2)
		return -2;
	upto = blocker > 0 ? blocker - 1 : wend;
	/* The newest event always stays: the last seq is never lost, nor reused. */
	return upto < last ? upto : last - 1;
}

long long
sqlite_store_event_compact(struct sqlite_store *s, int64_t before, long long keep_rows,
                           long long batch, struct store_err *e)
{
	long long upto, n;
	sqlite3_stmt *q;
	char v[32];

	if ((before <= 0 && keep_rows <= 0) || batch <= 0)
		return 0;
	if ((upto = compact_upto(s, before, keep_rows, batch)) == -2)
		goto dberr;
	if (upto <= 0)
		return 0;
	if ((q = sq_st(s, "DELETE FROM events WHERE seq <= ?")) == NULL)
		goto dberr;
	sqlite3_bind_int64(q, 1, upto);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sqlite3_reset(q);
		goto dberr;
	}
	sqlite3_reset(q);
	n = sqlite3_changes(s->db);
	/* Rows went, and none was at or below the floor: upto is above it. */
	snprintf(v, sizeof v, "%lld", upto);
	if (n > 0 && sqlite_store_kv_set(s, FLOOR_KEY, v, e) == -1)
		return -1;
	return n;
dberr:
	sq_dberr(s, e, "events compaction");
	return -1;
}

long long
sqlite_store_event_floor(struct sqlite_store *s)
{
	return sq_row_int64(
	        sq_st(s, "SELECT CAST(value AS INTEGER) FROM kv WHERE key = '" FLOOR_KEY "'"), 0);
}

long long
sqlite_store_event_oldest(struct sqlite_store *s)
{
	return sq_row_int64(sq_st(s, "SELECT coalesce(min(seq), 0) FROM events"), 0);
}

long long
sqlite_store_db_bytes(struct sqlite_store *s)
{
	return sq_row_int64(sq_st(s,
	                          "SELECT p.page_count * z.page_size FROM pragma_page_count() p, "
	                          "pragma_page_size() z"),
	                    0);
}

long long
sqlite_store_reclaim(struct sqlite_store *s, long long max_pages, struct store_err *e)
{
	long long mode, pages, free_pages, n;
	char sql[64];

	mode = sq_row_int64(sq_st(s, "SELECT auto_vacuum FROM pragma_auto_vacuum()"), 0);
	pages = sq_row_int64(sq_st(s, "SELECT page_count FROM pragma_page_count()"), 0);
	free_pages =
	        sq_row_int64(sq_st(s, "SELECT freelist_count FROM pragma_freelist_count()"), 0);
	if (mode != 2 || free_pages * 4 <= pages)
		return 0;
	n = free_pages - pages / 8;
	if (n > max_pages)
		n = max_pages;
	if (n <= 0)
		return 0;
	snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%lld)", n);
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		sq_dberr(s, e, "incremental vacuum");
		return -1;
	}
	return n;
}
