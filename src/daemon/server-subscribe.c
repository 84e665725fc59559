/*
 * server-subscribe.c -- subscribers: live events and the paged replay.
 *
 * A live subscriber gets each event as it is published
 * (after its commit), if its seq is past the client's cursor.  One that
 * asked for a replay (subscribe {since}) is not live: it waits in the
 * replay queue, and each loop iteration, right after the commit
 * (server_replay_run, from the loop hook, so no transaction is open
 * and the store holds every event published so far), up to REPLAY_STEPS
 * queued clients get one page: the stored events after their cursor, at
 * most REPLAY_ROWS rows looked at, written until the client's output
 * reaches the pause threshold.  A client whose output is not drained
 * leaves the queue and rejoins it when it drains (server-client.c), so a
 * subscriber that does not read costs one threshold of memory and no
 * work.  The page that reaches the end of the log makes the client live at
 * its cursor: events published while it replayed were in the store for
 * the replay to find, and later ones have a higher seq, so there is no gap
 * and no duplicate.
 *
 * Which events a subscriber gets is decided in one place (client_wants):
 * the topics its role may see (cmd_event_visible) and the topic prefixes
 * it asked for (events_topic_matches).  A live subscriber whose unread
 * events pass --max-output (or the total, --max-output-total) is dropped,
 * and resumes with subscribe {since}; so is one whose replay a compaction
 * overtook (retention deleted events after its cursor): subscribing again
 * with its cursor, it is told cursor_expired.
 */
#include <stdlib.h>

#include "common/buf.h"
#include "common/log.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/server-int.h"
#include "daemon/server.h"
#include "daemon/txn.h"
#include "store/store.h"

#define REPLAY_STEPS 8
#define REPLAY_ROWS  512

static struct client *rq_head, *rq_tail;
static uv_idle_t replay_idle;

/* Does subscriber c want events of topic? */
static int
client_wants(const struct client *c, const char *topic)
{
	return cmd_event_visible(c->role, topic) && events_topic_matches(topic, c->topics);
}

void
server_replay_enqueue(struct client *c)
{
	if (c->in_rq)
		return;
	c->in_rq = 1;
	c->next_rq = NULL;
	if (rq_tail != NULL)
		rq_tail->next_rq = c;
	else
		rq_head = c;
	rq_tail = c;
	server_replay_kick();
}

void
server_replay_remove(struct client *c)
{
	struct client **pp, *prev = NULL;

	if (!c->in_rq)
		return;
	for (pp = &rq_head; *pp != NULL; prev = *pp, pp = &(*pp)->next_rq) {
		if (*pp == c) {
			*pp = c->next_rq;
			if (rq_tail == c)
				rq_tail = prev;
			break;
		}
	}
	c->in_rq = 0;
}

static void
replay_idle_cb(uv_idle_t *h)
{
	(void)h; /* only keeps poll from blocking while a page is due */
}

/* A page is due: do not let the loop sleep in poll before the next check. */
void
server_replay_kick(void)
{
	static int ready;

	if (rq_head == NULL || server_out_total >= D.cfg.max_output_total)
		return;
	if (!ready) {
		uv_idle_init(D.loop, &replay_idle);
		ready = 1;
	}
	uv_idle_start(&replay_idle, replay_idle_cb);
}

struct replay_page {
	struct client *c;
	long long rows;
	int full;
};

static int
replay_row(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	struct replay_page *pg = arg;
	struct client *c = pg->c;
	size_t len;
	char *line;

	pg->rows++;
	c->cursor = seq;
	if (client_wants(c, topic)) {
		line = events_line(seq, ts, topic, data, &len);
		server_client_write(c, line, len);
		free(line);
	}
	if (server_client_pending(c) >= server_client_small_bytes()) {
		pg->full = 1;
		return 1;
	}
	return 0;
}

/* One page for c; at the end of the log it goes live.  0, or -1 when the store failed. */
static int
replay_step(struct client *c)
{
	struct replay_page pg = {c, 0, 0};

	if (store_event_scan(D.store, c->cursor, REPLAY_ROWS, NULL, NULL, replay_row, &pg) < 0)
		return -1;
	if (!pg.full && pg.rows < REPLAY_ROWS)
		c->replaying = 0;
	return 0;
}

void
server_replay_run(void)
{
	struct client *c;
	int steps;

	/*
	 * Never inside a transaction: a page must not carry an event that a
	 * rollback could take back (the loop hook calls this right after the commit;
	 * the clients server_client_pressure_relief resumes may open the next one).
	 */
	for (steps = 0;
	     steps < REPLAY_STEPS && rq_head != NULL && !D.shutting_down && !txn_active();
	     steps++) {
		if (server_out_total >= D.cfg.max_output_total)
			break; /* resumed by server_replay_kick when some output drains */
		c = rq_head;
		server_replay_remove(c);
		if (c->closing || !c->replaying ||
		    server_client_pending(c) >= server_client_small_bytes())
			continue; /* client_drained puts it back */
		if (store_event_floor(D.store) > c->cursor) {
			/* Compaction overtook the replay: subscribe {since} again says so. */
			log_warnx("client pid %ld: events after its cursor %lld were compacted "
			          "while it "
			          "caught up; dropping it",
			          (long)c->cred.pid, c->cursor);
			server_client_close(c, "cursor expired");
			continue;
		}
		if (replay_step(c) == -1) {
			log_warnx("client pid %ld: the event log could not be read; dropping it",
			          (long)c->cred.pid);
			server_client_close(c, "replay failed");
			continue;
		}
		if (c->replaying)
			server_replay_enqueue(c);
	}
	if (rq_head == NULL || server_out_total >= D.cfg.max_output_total || D.shutting_down)
		uv_idle_stop(&replay_idle); /* a no-op on a handle never started */
}

void
server_replay_close(void)
{
	if (replay_idle.loop != NULL)
		uv_close((uv_handle_t *)&replay_idle, NULL);
}

void
cmd_conn_subscribe(struct cmd_req *r, json_t *topics, long long cursor, int replay)
{
	struct client *c = r->client;

	if (c == NULL)
		return;
	json_decref(c->topics);
	c->topics = topics != NULL ? json_incref(topics) : NULL;
	c->cursor = cursor;
	c->subscribed = 1;
	c->replaying = replay;
	if (replay)
		server_replay_enqueue(c);
	else
		server_replay_remove(c);
}

void
cmd_conn_unsubscribe(struct cmd_req *r)
{
	struct client *c = r->client;

	if (c == NULL)
		return;
	c->subscribed = 0;
	c->replaying = 0;
	server_replay_remove(c);
}

void
server_publish(long long seq, const char *topic, const char *line, size_t len)
{
	struct client *c, *next;

	for (c = server_clients; c != NULL; c = next) {
		next = c->next;
		if (!c->subscribed || c->replaying || c->closing || seq <= c->cursor)
			continue;
		c->cursor = seq;
		if (!client_wants(c, topic))
			continue;
		if (server_client_pending(c) + len > D.cfg.max_output ||
		    server_out_total + len > D.cfg.max_output_total) {
			log_warnx("client pid %ld: %zu bytes of output unread (all clients: %zu), "
			          "dropping it",
			          (long)c->cred.pid, server_client_pending(c), server_out_total);
			server_client_close(c, "output cap");
			continue;
		}
		server_client_write(c, line, len);
	}
}
