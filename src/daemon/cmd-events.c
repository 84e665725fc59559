/*
 * cmd-events.c -- subscribe, unsubscribe and events-read.
 *
 * subscribe first commits whatever is pending (so the replay sees only
 * committed events), replays stored events after `since`, then marks the
 * connection as a subscriber with its cursor at the last replayed seq:
 * live events with a higher seq follow, so there is no gap and no
 * duplicate across the replay/live boundary.
 */
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/server.h"
#include "daemon/txn.h"
#include "store/store.h"

#define REPLAY_MAX 1000000

struct replay {
	struct client *client;
	json_t *items; /* events-read: collect instead of sending */
	long long last;
	int role; /* events the role may not see are skipped (cmd_event_visible) */
};

static int replay_one(long long seq, int64_t ts, const char *topic, const char *data, void *arg)
{
	struct replay *rp = arg;
	size_t len;
	char *line;

	rp->last = seq;
	if (!cmd_event_visible(rp->role, topic))
		return 0;
	if (rp->items != NULL) {
		json_t *d = json_loads(data, JSON_DECODE_ANY, NULL);
		json_array_append_new(rp->items,
		                      json_pack("{s:s, s:I, s:I, s:o}", "event", topic, "seq",
		                                (json_int_t)seq, "ts", (json_int_t)ts, "data",
		                                d != NULL ? d : json_null()));
		return 0;
	}
	line = events_line(seq, ts, topic, data, &len);
	server_client_write(rp->client, line, len);
	free(line);
	return 0;
}

static int topics_ok(struct cmd_req *r, json_t *topics)
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

static void cmd_subscribe(struct cmd_req *r)
{
	json_t *topics = cmd_arg(r, "topics");
	long long since = -1, last;
	struct replay rp = {r->client, NULL, 0, r->role};

	if (topics != NULL && !topics_ok(r, topics))
		return;
	txn_flush();
	last = store_event_last(D.store);
	if (cmd_arg_int(r, "since", &since) == 0 && (since < 0 || since > last)) {
		cmd_fail(r, ERR_INVALID_ARGUMENT, "since must be between 0 and %lld", last);
		return;
	}
	/* The reply goes first, then the replay, then live events. */
	cmd_ok(r, json_pack("{s:I}", "seq", (json_int_t)last));
	if (r->client == NULL)
		return;
	if (since >= 0)
		store_event_scan(D.store, since, REPLAY_MAX, topics, replay_one, &rp);
	server_client_subscribe(r->client, topics, last);
}

static void cmd_unsubscribe(struct cmd_req *r)
{
	if (r->client != NULL)
		server_client_unsubscribe(r->client);
	cmd_ok(r, json_object());
}

static void cmd_events_read(struct cmd_req *r)
{
	json_t *topics = cmd_arg(r, "topics");
	long long since = cmd_arg_int_or(r, "since", 0), limit = cmd_arg_int_or(r, "limit", 1000);
	struct replay rp = {NULL, json_array(), since, r->role};
	long long want;
	int n;

	if (topics != NULL && !topics_ok(r, topics)) {
		json_decref(rp.items);
		return;
	}
	if (limit <= 0 || limit > 100000) {
		json_decref(rp.items);
		cmd_fail(r, ERR_INVALID_ARGUMENT, "limit must be between 1 and 100000");
		return;
	}
	/* Events the role may not see do not count: scan on until limit or the end. */
	do {
		want = limit - (long long)json_array_size(rp.items);
		n = store_event_scan(D.store, rp.last, want, topics, replay_one, &rp);
	} while (n == want && (long long)json_array_size(rp.items) < limit);
	cmd_ok(r, json_pack("{s:o, s:I}", "items", rp.items, "last_seq",
	                    (json_int_t)store_event_last(D.store)));
}

static const struct cmd_arg subscribe_args[] = {
    {"topics", ARG_ARR, 0}, {"since", ARG_INT, 0}, {NULL, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0}};
static const struct cmd_arg read_args[] = {
    {"since", ARG_INT, 0}, {"limit", ARG_INT, 0}, {"topics", ARG_ARR, 0}, {NULL, 0, 0}};

const struct cmd_entry cmd_events_entries[] = {
    {"subscribe", "subscribe {topics?, since?}", CMD_CONN, CMD_R_ALL, subscribe_args,
     cmd_subscribe},
    {"unsubscribe", "unsubscribe", CMD_CONN, CMD_R_ALL, no_args, cmd_unsubscribe},
    {"events-read", "events-read {since?, limit?, topics?}", CMD_READ, CMD_R_ALL, read_args,
     cmd_events_read},
    {NULL, NULL, 0, 0, NULL, NULL},
};
