/*
 * test_tui.c -- colibri-glasspane's model: rows from agent objects, events
 * applied once (resume after a reconnect neither loses nor doubles), the
 * snapshot boundary, resync, filter and sort, and the narrow-column formats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/model.h"

static json_t *
agent_obj(const char *id, const char *state, double cost)
{
	return json_pack(
	        "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:{s:i, s:i, s:i, s:i, s:i, "
	        "s:f}, s:b, s:{s:s}}",
	        "id", id, "kind", "spawned", "provider", "local", "state", state, "reason",
	        "run started", "activity", "tool bash", "since_ms", (json_int_t)1000,
	        "last_event_ms", (json_int_t)2000, "turns", 3, "usage", "input", 100, "output", 10,
	        "cache_read", 300, "cache_write", 0, "total_tokens", 410, "cost", cost, "live", 1,
	        "jail", "name", "jail-a");
}

static json_t *
state_event(long long seq, const char *id, const char *from, const char *to)
{
	return json_pack("{s:s, s:I, s:I, s:{s:s, s:s, s:s, s:s, s:s, s:I}}", "event",
	                 "agent.state", "seq", (json_int_t)seq, "ts", (json_int_t)5000, "data",
	                 "id", id, "from", from, "to", to, "reason", "because", "cause", "test",
	                 "at_ms", (json_int_t)5000);
}

static void
apply_new(struct tui_model *m, json_t *ev, int want)
{
	assert_int_equal(tui_model_apply_event(m, ev), want);
	json_decref(ev);
}

static void
test_agent_row(void **state)
{
	struct tui_model m;
	struct tui_agent *a;
	json_t *o = agent_obj("a1", "working", 0.25);

	tui_model_init(&m);
	a = tui_model_apply_agent(&m, o, 7);
	assert_non_null(a);
	assert_ptr_equal(tui_model_find(&m, "a1"), a);
	assert_null(tui_model_find(&m, "a2"));
	assert_string_equal(a->state, "working");
	assert_string_equal(a->place, "jail-a");
	assert_int_equal(a->turns, 3);
	assert_int_equal(a->total_tokens, 410);
	assert_int_equal(tui_agent_hit_pct(a), 75);
	assert_true(a->live && a->dirty && !a->stale);
	assert_int_equal(a->refreshed_ms, 7);
	json_decref(o);
	o = json_pack("{s:s}", "state", "idle");
	assert_null(tui_model_apply_agent(&m, o, 0));
	json_decref(o);
	tui_model_free(&m);
}

static void
test_events_once(void **state)
{
	struct tui_model m;
	struct tui_agent *a;
	json_t *o = agent_obj("a1", "idle", 0);

	tui_model_init(&m);
	tui_model_apply_agent(&m, o, 0);
	json_decref(o);
	a = tui_model_find(&m, "a1");
	a->stale = 0;
	apply_new(&m, state_event(5, "a1", "idle", "working"), 1);
	assert_string_equal(a->state, "working");
	assert_string_equal(a->reason, "because");
	assert_int_equal(a->since_ms, 5000);
	assert_true(a->stale);
	/* The same seq again, or an older one (a resumed stream): dropped. */
	apply_new(&m, state_event(5, "a1", "idle", "working"), 0);
	apply_new(&m, state_event(4, "a1", "working", "done"), 0);
	assert_string_equal(a->state, "working");
	assert_int_equal(m.last_seq, 5);
	assert_int_equal(m.events_seen, 1);
	apply_new(&m, state_event(6, "a1", "working", "done"), 1);
	assert_string_equal(a->state, "done");
	assert_string_equal(tui_model_log_get(&m, 0)->text, "agent.state a1 working->done because");
	assert_int_equal(tui_agent_event_get(a, 1)->seq, 5);
	assert_null(tui_agent_event_get(a, 2));
	/* Not an event at all. */
	o = json_pack("{s:i, s:b}", "id", 3, "ok", 1);
	assert_int_equal(tui_model_apply_event(&m, o), -1);
	json_decref(o);
	tui_model_free(&m);
}

static void
test_snapshot_and_resync(void **state)
{
	struct tui_model m;
	json_t *list = json_pack("{s:[o, o]}", "items", agent_obj("a1", "done", 0),
	                         agent_obj("a2", "working", 0));

	tui_model_init(&m);
	assert_int_equal(tui_model_resync(&m, list, 10, 0), 2);
	json_decref(list);
	/* Older than the snapshot: logged, rows untouched. */
	apply_new(&m, state_event(9, "a1", "working", "error"), 1);
	assert_string_equal(tui_model_find(&m, "a1")->state, "done");
	assert_int_equal(tui_model_find(&m, "a1")->nev, 1);
	assert_int_equal(m.nlog, 1);
	/* An event for an agent not yet listed adds its row, stale. */
	apply_new(&m, state_event(11, "a3", "idle", "working"), 1);
	assert_non_null(tui_model_find(&m, "a3"));
	assert_true(tui_model_find(&m, "a3")->stale);
	/* A resync drops rows the daemon no longer lists. */
	list = json_pack("{s:[o]}", "items", agent_obj("a2", "idle", 0));
	assert_int_equal(tui_model_resync(&m, list, 11, 0), 1);
	json_decref(list);
	assert_null(tui_model_find(&m, "a1"));
	assert_null(tui_model_find(&m, "a3"));
	assert_string_equal(tui_model_find(&m, "a2")->state, "idle");
	list = json_object();
	assert_int_equal(tui_model_resync(&m, list, 0, 0), -1);
	json_decref(list);
	tui_model_free(&m);
}

static void
test_many_agents_and_ring(void **state)
{
	struct tui_model m;
	char id[32];
	int i;

	tui_model_init(&m);
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "bench-%04d", i);
		apply_new(&m, state_event(i + 1, id, "idle", "working"), 1);
	}
	assert_int_equal(m.n, 1000);
	for (i = 0; i < 1000; i += 97) {
		snprintf(id, sizeof id, "bench-%04d", i);
		assert_non_null(tui_model_find(&m, id));
		assert_string_equal(tui_model_find(&m, id)->id, id);
	}
	assert_int_equal(tui_model_log_get(&m, 0)->seq, 1000);
	assert_int_equal(tui_model_log_get(&m, TUI_LOG_EVENTS - 1)->seq, 1000 - TUI_LOG_EVENTS + 1);
	assert_null(tui_model_log_get(&m, TUI_LOG_EVENTS));
	tui_model_free(&m);
}

static void
test_view_filter_sort(void **state)
{
	struct tui_model m;
	struct tui_agent **v;
	json_t *list = json_pack("{s:[o, o, o]}", "items", agent_obj("c", "done", 1.0),
	                         agent_obj("a", "working", 3.0), agent_obj("b", "error", 2.0));
	size_t n;

	tui_model_init(&m);
	tui_model_resync(&m, list, 0, 0);
	json_decref(list);
	n = tui_model_view(&m, NULL, TUI_SORT_ID, &v);
	assert_int_equal(n, 3);
	assert_string_equal(v[0]->id, "a");
	assert_string_equal(v[2]->id, "c");
	free(v);
	n = tui_model_view(&m, "", TUI_SORT_STATE, &v);
	assert_string_equal(v[0]->state, "error");
	assert_string_equal(v[1]->state, "working");
	assert_string_equal(v[2]->state, "done");
	free(v);
	n = tui_model_view(&m, NULL, TUI_SORT_COST, &v);
	assert_string_equal(v[0]->id, "a");
	assert_string_equal(v[2]->id, "c");
	free(v);
	n = tui_model_view(&m, "DON", TUI_SORT_ID, &v);
	assert_int_equal(n, 1);
	assert_string_equal(v[0]->id, "c");
	free(v);
	n = tui_model_view(&m, "nothing", TUI_SORT_ID, &v);
	assert_int_equal(n, 0);
	free(v);
	assert_string_equal(tui_sort_name(TUI_SORT_LAST_EVENT), "last event");
	tui_model_free(&m);
}

static void
test_status_and_formats(void **state)
{
	struct tui_model m;
	struct tui_agent a;
	char s[32];
	json_t *st = json_pack("{s:s, s:s, s:{s:{s:i, s:i, s:i, s:i, s:i}}}", "host", "vm",
	                       "version", "0.1.0", "counts", "tasks", "open", 4, "ready", 2,
	                       "claimed", 1, "done", 9, "stale_claims", 3);

	tui_model_init(&m);
	m.tasks_stale = 1;
	tui_model_apply_status(&m, st);
	json_decref(st);
	assert_string_equal(m.host, "vm");
	assert_int_equal(m.tasks_open, 4);
	assert_int_equal(m.tasks_done, 9);
	assert_int_equal(m.stale_claims, 3);
	assert_false(m.tasks_stale);
	tui_model_free(&m);
	memset(&a, 0, sizeof a);
	assert_int_equal(tui_agent_hit_pct(&a), -1);
	a.input = 1;
	assert_int_equal(tui_agent_hit_pct(&a), 0);
	tui_fmt_age(s, sizeof s, 59999);
	assert_string_equal(s, "59s");
	tui_fmt_age(s, sizeof s, 3600000);
	assert_string_equal(s, "1h");
	tui_fmt_age(s, sizeof s, -1);
	assert_string_equal(s, "-");
	tui_fmt_count(s, sizeof s, 9999);
	assert_string_equal(s, "9999");
	tui_fmt_count(s, sizeof s, 123456);
	assert_string_equal(s, "123k");
	tui_fmt_count(s, sizeof s, 45000000);
	assert_string_equal(s, "45M");
	tui_fmt_cost(s, sizeof s, 0.01234);
	assert_string_equal(s, "$0.0123");
	tui_fmt_cost(s, sizeof s, 123.456);
	assert_string_equal(s, "$123.46");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_agent_row),
	        cmocka_unit_test(test_events_once),
	        cmocka_unit_test(test_snapshot_and_resync),
	        cmocka_unit_test(test_many_agents_and_ring),
	        cmocka_unit_test(test_view_filter_sort),
	        cmocka_unit_test(test_status_and_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
