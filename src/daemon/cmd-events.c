/*
 * cmd-events.c -- subscribe, unsubscribe and events-read.
 *
 * subscribe runs after a commit of whatever is pending (CMD_CONN), answers
 * {seq} (the last stored event) at once, and then hands the connection to
 * the server: with `since`, as a subscriber that catches up from the store a
 * page at a time, only while its output drains, and goes live when it reaches
 * the end of the log (server-subscribe.c: no gap, no duplicate, and a backlog
 * of any length costs neither memory nor anyone else's time); without it,
 * live at once.
 *
 * Compaction (retention.c) deletes a prefix of the log: every event up to
 * the store's floor is gone.  A cursor below the floor has lost events:
 * subscribe says so in its reply (cursor_expired, oldest_seq) and streams
 * from the floor on; events-read refuses it (cursor_expired, naming the
 * oldest kept seq), so no reader mistakes a gap for a quiet log.  A
 * cursor at or above the floor, or events-read without one, is unaffected.
 *
 * events-read pages: the events after `after` (or `since`, the older name
 * of the same cursor), at most `limit`, with `next` (the cursor for the next
 * page) and `more`.  The page is written as text straight from the store
 * and refused, naming the limit, as soon as it passes --max-reply.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/proto.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "store/store.h"

static int
topics_ok(struct cmd_req *r, json_t *topics)
{
	size_t i;
	json_t *v;

	json_array_foreach(topics, i, v)
	{
		if (!json_is_string(v)) {
			cmd_fail(r, ERR_INVALID_ARGUMENT, "topics must be strings");
			return 0;
		}
	}
	return 1;
}

/* The oldest event a reader can still get: the oldest kept, or the next to come. */
static long long
oldest_kept(long long floor)
{
	long long oldest = store_event_oldest(D.store);

	return oldest > 0 ? oldest : floor + 1;
}

static void
cmd_subscribe(struct cmd_req *r)
{
	json_t *topics = cmd_arg(r, "topics"), *res;
	long long since = -1, last, floor;

	if (topics != NULL && !topics_ok(r, topics))
		return;
	last = store_event_last(D.store);
	if (cmd_arg_int(r, "since", &since) == 0 && since > last) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "since must be between 0 and %lld", last);
		return;
	}
	res = json_pack("{s:I}", "seq", (json_int_t)last);
	if (since >= 0 && since < (floor = store_event_floor(D.store))) {
		/* Events after the cursor were compacted: say so, and go on from the oldest kept.
		 */
		json_object_set_new(res, "cursor_expired", json_true());
		json_object_set_new(res, "oldest_seq", json_integer(oldest_kept(floor)));
		since = floor;
	}
	/* The reply goes first, then the replay (later loop iterations), then live events. */
	cmd_ok(r, res);
	if (r->client != NULL)
		cmd_conn_subscribe(r, topics, since >= 0 ? since : last,
		                   since >= 0 && since < last);
}

static void
cmd_unsubscribe(struct cmd_req *r)
{
	if (r->client != NULL)
		cmd_conn_unsubscribe(r);
	cmd_ok(r, json_object());
}

struct page {
	struct buf *out;
	size_t start;
	long long limit, count, next;
	int more, over;
	int role; /* events the role may not see are skipped (cmd_event_visible) */
};

static int
page_row(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	struct page *pg = arg;
	struct buf *b = pg->out;

	if (!cmd_event_visible(pg->role, topic))
		return 0; /* hidden: not on the page, and not counted */
	if (pg->count == pg->limit) {
		pg->more = 1; /* a matching event follows the page */
		return 1;
	}
	if (pg->count++ > 0)
		buf_addc(b, ',');
	/* The event line's bytes (events_line), data spliced in as stored. */
	buf_add(b, "{\"event\":", 9);
	jsonw_str(b, topic, strlen(topic));
	buf_add(b, ",\"seq\":", 7);
	jsonw_int(b, seq);
	buf_add(b, ",\"ts\":", 6);
	jsonw_int(b, ts);
	buf_add(b, ",\"data\":", 8);
	buf_adds(b, data);
	buf_addc(b, '}');
	pg->next = seq;
	if (b->len - pg->start > D.cfg.max_reply) {
		pg->over = 1;
		return 1;
	}
	return 0;
}

static int
cursor_arg(struct cmd_req *r, long long *cursor)
{
	long long since, after, floor;
	int have_since = cmd_arg_int(r, "since", &since) == 0,
	    have_after = cmd_arg_int(r, "after", &after) == 0;

	if (have_since && have_after) {
		cmd_fail(r, ERR_INVALID_ARGUMENT,
		         "give after or since (the same cursor), not both");
		return -1;
	}
	*cursor = have_after ? after : have_since ? since : 0;
	if ((have_after || have_since) && *cursor < (floor = store_event_floor(D.store))) {
		cmd_fail(
		        r, ERR_CURSOR_EXPIRED,
		        "cursor %lld is older than the oldest kept event (oldest_seq %lld): events "
		        "up to seq %lld were compacted; read on with after=%lld",
		        *cursor, oldest_kept(floor), floor, floor);
		return -1;
	}
	return 0;
}

static void
cmd_events_read(struct cmd_req *r)
{
	static struct buf out;
	json_t *topics = cmd_arg(r, "topics");
	long long limit = cmd_arg_int_or(r, "limit", 1000), cursor;
	struct page pg = {&out, 0, 0, 0, 0, 0, 0, r->role};

	if ((topics != NULL && !topics_ok(r, topics)) || cursor_arg(r, &cursor) == -1)
		return;
	buf_reset(&out);
	buf_add(&out, "{\"items\":[", 10);
	pg.start = out.len;
	pg.limit = limit;
	pg.next = cursor;
	/*
	 * No row limit for the scan: page_row stops it after limit visible
	 * events and one more (which says there is more), so events hidden from
	 * the role (cmd_event_visible) count towards nothing.
	 */
	if (store_event_scan(D.store, cursor, LLONG_MAX, events_topic_matches, topics, page_row,
	                     &pg) < 0)
		cmd_fail(r, ERR_INTERNAL, "the event log could not be read");
	else if (pg.over)
		cmd_fail_too_big(r, "events", "a smaller limit, or pages with after");
	else {
		buf_printf(&out, "],\"last_seq\":%lld,\"next\":%lld,\"more\":%s}",
		           store_event_last(D.store), pg.next, pg.more ? "true" : "false");
		cmd_ok_raw(r, buf_head(&out), buf_used(&out));
	}
	if (out.cap > 65536)
		buf_free(&out);
}

static const struct cmd_arg subscribe_args[] = {
        {"topics", ARG_ARR, 0, 0, 0}, {"since", ARG_INT, 0, 0, LLONG_MAX}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};
static const struct cmd_arg read_args[] = {{"since", ARG_INT, 0, 0, LLONG_MAX},
                                           {"after", ARG_INT, 0, 0, LLONG_MAX},
                                           {"limit", ARG_INT, 0, 1, 100000},
                                           {"topics", ARG_ARR, 0, 0, 0},
                                           {NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_events_entries[] = {
        {CMD_SUBSCRIBE, CMD_CONN, CMD_R_ALL, subscribe_args, cmd_subscribe},
        {CMD_UNSUBSCRIBE, CMD_CONN, CMD_R_ALL, no_args, cmd_unsubscribe},
        {CMD_EVENTS_READ, CMD_READ, CMD_R_ALL, read_args, cmd_events_read},
        {NULL, 0, 0, NULL, NULL},
};
