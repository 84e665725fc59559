"""Foundation: the task board, the agent registry and the events log, driven
over the real socket of a real colibri-daemon in a temporary state dir.

Covers the whole task lifecycle with dependencies, the ready queue's order,
claim conflicts, dependency cycles, concurrent claimers (each task claimed
exactly once), lease expiry, lost agents and subscribe's resumable cursor.
"""
import json
import threading
import time

import pytest

from conftest import CallError, Conn


def err_code(conn, cmd, **args):
    r = conn.request(cmd, args)
    assert not r["ok"], "%s %r unexpectedly succeeded: %r" % (cmd, args, r)
    assert r["error"]["message"], r
    return r["error"]["code"]


def poll_event(conn, timeout):
    """The next event, or None when none arrives within timeout."""
    if conn.events:
        return conn.events.pop(0)
    try:
        return conn.read_msg(timeout)
    except (TimeoutError, OSError):
        return None


def ids(items):
    return [t["id"] for t in items]


# ---- lifecycle ----


def test_create_show_defaults(daemon):
    c = daemon.connect()
    t = c.call("task-create", title="first", body="the body", priority=3)
    assert t["title"] == "first" and t["body"] == "the body" and t["priority"] == 3
    assert t["status"] == "open" and t["owner"] is None and t["depends_on"] == []
    assert t["created_ms"] > 0 and t["claimed_ms"] is None and t["completed_ms"] is None
    assert c.call("task-show", id=t["id"]) == t
    d = c.call("task-create", title="defaults")
    assert d["priority"] == 0 and d["body"] == "" and d["id"] > t["id"]
    assert err_code(c, "task-show", id=99999) == "not_found"
    assert err_code(c, "task-create", title="") == "invalid_argument"
    assert err_code(c, "task-create", title="x", depends_on=[424242]) == "not_found"
    # a failed create leaves nothing behind
    assert len(c.call("task-list")["items"]) == 2


def test_ready_order_priority_then_age(daemon):
    c = daemon.connect()
    a = c.call("task-create", title="a low", priority=0)["id"]
    b = c.call("task-create", title="b high", priority=5)["id"]
    cc = c.call("task-create", title="c low", priority=0)["id"]
    d = c.call("task-create", title="d high", priority=5)["id"]
    e = c.call("task-create", title="e mid", priority=2)["id"]
    assert ids(c.call("task-ready")["items"]) == [b, d, e, a, cc]
    assert ids(c.call("task-ready", limit=2)["items"]) == [b, d]
    assert ids(c.call("task-list", ready=True)["items"]) == [b, d, e, a, cc]
    # claiming without an id takes the head of the queue, in order
    got = [c.call("task-claim", agent="w")["id"] for _ in range(5)]
    assert got == [b, d, e, a, cc]
    assert err_code(c, "task-claim", agent="w") == "not_found"


def test_lifecycle_with_dependencies(daemon):
    c = daemon.connect()
    other = daemon.connect()
    base = c.call("task-create", title="base")["id"]
    mid = c.call("task-create", title="mid", depends_on=[base], priority=9)["id"]
    top = c.call("task-create", title="top", depends_on=[base, mid], priority=9)["id"]
    assert c.call("task-show", id=top)["depends_on"] == sorted([base, mid])
    # only base is ready, despite the others' higher priority
    assert ids(c.call("task-ready")["items"]) == [base]
    assert err_code(c, "task-claim", agent="a1", id=mid) == "conflict"

    t = c.call("task-claim", agent="a1", id=base)
    assert t["status"] == "claimed" and t["owner"] == "a1" and t["lease_expires_ms"] > t["claimed_ms"]
    # taken: a named claim conflicts, an anonymous one finds nothing ready
    assert err_code(other, "task-claim", agent="a2", id=base) == "conflict"
    assert err_code(other, "task-claim", agent="a2") == "not_found"
    # only the owner may complete it when agent is named
    assert err_code(other, "task-complete", id=base, agent="a2") == "conflict"
    assert err_code(other, "task-update", id=base, agent="a2", progress="x") == "conflict"
    t = c.call("task-update", id=base, agent="a1", progress="half way")
    assert t["progress"] == "half way" and t["status"] == "claimed"

    t = c.call("task-complete", id=base, agent="a1", result={"answer": 42, "list": [1, "two"]})
    assert t["status"] == "done" and t["result"] == {"answer": 42, "list": [1, "two"]}
    assert t["completed_ms"] >= t["claimed_ms"]
    assert err_code(c, "task-complete", id=base) == "conflict"
    assert err_code(c, "task-release", id=base) == "conflict"
    assert err_code(c, "task-claim", agent="a1", id=base) == "conflict"

    # mid becomes ready; top still waits on mid
    assert ids(c.call("task-ready")["items"]) == [mid]
    c.call("task-claim", agent="a2", id=mid)
    assert err_code(c, "task-release", id=mid, agent="a1") == "conflict"
    t = c.call("task-release", id=mid, agent="a2")
    assert t["status"] == "open" and t["owner"] is None and t["lease_expires_ms"] is None
    c.call("task-claim", agent="a3", id=mid)
    c.call("task-complete", id=mid, result="fine")
    assert c.call("task-show", id=mid)["result"] == "fine"
    assert ids(c.call("task-ready")["items"]) == [top]


def test_update_fields_and_cycles(daemon):
    c = daemon.connect()
    a = c.call("task-create", title="a")["id"]
    b = c.call("task-create", title="b", depends_on=[a])["id"]
    cc = c.call("task-create", title="c", depends_on=[b])["id"]
    t = c.call("task-update", id=a, title="A", body="new body", priority=7)
    assert (t["title"], t["body"], t["priority"]) == ("A", "new body", 7)
    assert t["updated_ms"] >= t["created_ms"]
    # a -> c closes a -> c -> b -> a; a -> a is a cycle of one
    assert err_code(c, "task-update", id=a, depends_on=[cc]) == "conflict"
    assert err_code(c, "task-update", id=a, depends_on=[a]) == "conflict"
    assert err_code(c, "task-update", id=a, depends_on=[77777]) == "not_found"
    # the refused update changed nothing, not even the other fields with it
    assert err_code(c, "task-update", id=a, title="changed", depends_on=[b]) == "conflict"
    t = c.call("task-show", id=a)
    assert t["depends_on"] == [] and t["title"] == "A"
    # re-pointing deps: c now depends on a only, so once a is done c is ready
    assert c.call("task-update", id=cc, depends_on=[a])["depends_on"] == [a]
    assert err_code(c, "task-update", id=a, status="done") == "invalid_argument"
    assert err_code(c, "task-update", id=a, status="open") == "conflict"
    assert err_code(c, "task-update", id=424242, title="x") == "not_found"


def test_cancel_and_reopen(daemon):
    c = daemon.connect()
    a = c.call("task-create", title="a")["id"]
    b = c.call("task-create", title="b")["id"]
    c.call("task-claim", agent="w", id=a)
    t = c.call("task-update", id=a, status="cancelled")
    assert t["status"] == "cancelled" and t["owner"] is None
    assert ids(c.call("task-ready")["items"]) == [b]
    assert err_code(c, "task-claim", agent="w", id=a) == "conflict"
    assert err_code(c, "task-complete", id=a) == "conflict"
    t = c.call("task-update", id=a, status="open")
    assert t["status"] == "open"
    assert ids(c.call("task-ready")["items"]) == [a, b]
    c.call("task-claim", agent="w", id=a)
    c.call("task-complete", id=a)
    assert err_code(c, "task-update", id=a, status="cancelled") == "conflict"
    assert err_code(c, "task-update", id=a, status="open") == "conflict"


def test_list_filters_and_status_counts(daemon):
    c = daemon.connect()
    t = [c.call("task-create", title="t%d" % i)["id"] for i in range(6)]
    c.call("task-create", title="blocked", depends_on=[t[5]])
    c.call("task-claim", agent="x", id=t[0])
    c.call("task-claim", agent="y", id=t[1])
    c.call("task-claim", agent="y", id=t[2])
    c.call("task-complete", id=t[2])
    c.call("task-update", id=t[3], status="cancelled")
    assert ids(c.call("task-list", status="claimed")["items"]) == [t[0], t[1]]
    assert ids(c.call("task-list", owner="y")["items"]) == [t[1], t[2]]
    assert ids(c.call("task-list", status="claimed", owner="y")["items"]) == [t[1]]
    assert ids(c.call("task-list", status="done")["items"]) == [t[2]]
    assert ids(c.call("task-list", status="cancelled")["items"]) == [t[3]]
    assert len(c.call("task-list")["items"]) == 7
    assert len(c.call("task-list", limit=3)["items"]) == 3
    assert ids(c.call("task-list", ready=True)["items"]) == [t[4], t[5]]
    assert err_code(c, "task-list", status="bogus") == "invalid_argument"
    assert err_code(c, "task-list", limit=0) == "invalid_argument"
    s = c.call("status")
    assert s["counts"]["tasks"] == {"open": 3, "claimed": 2, "done": 1, "cancelled": 1, "failed": 0,
                                   "ready": 2, "stale_claims": 0}
    assert s["protocol"] == 1 and s["pid"] == daemon.proc.pid and s["uptime_ms"] >= 0
    assert s["db_path"].endswith("colibri.sqlite") and s["state_dir"] == daemon.state_dir
    assert s["counts"]["events"] == s["last_seq"] > 0


# ---- concurrency ----


def test_eight_claimers_over_500_tasks(daemon):
    c = daemon.connect()
    for i in range(500):
        c.request("task-create", {"title": "job %d" % i, "priority": i % 7})
    assert len(c.call("task-ready", limit=1000)["items"]) == 500
    claims = {}
    errors = []
    lock = threading.Lock()

    def worker(n):
        try:
            w = Conn(daemon.socket, timeout=30)
            mine = []
            while True:
                r = w.request("task-claim", {"agent": "w%d" % n})
                if not r["ok"]:
                    assert r["error"]["code"] == "not_found", r
                    break
                assert r["result"]["owner"] == "w%d" % n
                mine.append(r["result"]["id"])
                # complete every other one, so writes of both kinds interleave
                if len(mine) % 2 == 0:
                    done = w.call("task-complete", id=mine[-1], agent="w%d" % n)
                    assert done["status"] == "done"
            w.close()
            with lock:
                claims[n] = mine
        except Exception as ex:  # noqa: BLE001 -- reported below
            with lock:
                errors.append(repr(ex))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a claimer hung"
    assert errors == []
    all_claims = [i for m in claims.values() for i in m]
    assert len(all_claims) == 500
    assert len(set(all_claims)) == 500
    # the store agrees with what each claimer was told
    for n, mine in claims.items():
        owned = {t["id"] for t in c.call("task-list", owner="w%d" % n, limit=1000)["items"]}
        assert owned == set(mine)
    s = c.call("status")["counts"]["tasks"]
    assert s["open"] == 0 and s["claimed"] + s["done"] == 500 and s["ready"] == 0
    # every claim was announced exactly once
    ev = c.call("events-read", topics=["task.claimed"], limit=100000)["items"]
    assert sorted(e["data"]["id"] for e in ev) == sorted(all_claims)


def test_pipelined_writes_keep_order(daemon):
    """Many requests in one write: each answered once, in order, ids echoed."""
    c = daemon.connect()
    lines = "".join('{"id": %d, "cmd": "task-create", "args": {"title": "p%d"}}\n' % (i, i)
                    for i in range(200))
    c.send_raw(lines.encode())
    got = [c.read_msg(timeout=10) for _ in range(200)]
    assert [m["id"] for m in got] == list(range(200))
    assert all(m["ok"] for m in got)
    created = [m["result"]["id"] for m in got]
    assert created == sorted(created) and len(set(created)) == 200


def test_failed_write_in_a_batch_leaves_nothing(daemon):
    """A write that fails after writing (a task whose dependency does not exist is inserted,
    then refused) leaves no task and no event, whether it opens the loop's transaction (the
    first of a pipelined batch: the transaction is rolled back) or comes later (its savepoint
    is); the batch's other writes all land."""
    last = daemon.call("events-read", since=0, limit=1)["last_seq"]
    c = daemon.connect()
    reqs = [("bad0", [999999]), ("good1", []), ("bad2", [999998]), ("good3", []), ("bad4", [1 << 40])]
    c.send_raw("".join(json.dumps({"id": i, "cmd": "task-create",
                                   "args": {"title": t, "depends_on": deps}}) + "\n"
                       for i, (t, deps) in enumerate(reqs)).encode())
    got = [c.read_msg(timeout=10) for _ in reqs]
    assert [m["id"] for m in got] == list(range(len(reqs)))
    assert [m["ok"] for m in got] == [False, True, False, True, False], got
    titles = sorted(t["title"] for t in daemon.call("task-list")["items"])
    assert titles == ["good1", "good3"]
    ev = daemon.call("events-read", since=last, limit=1000)["items"]
    created = [e["data"]["title"] for e in ev if e["event"] == "task.created"]
    assert created == ["good1", "good3"], ev
    # and a batch whose only write fails, then a lone good one
    c.send_raw(b'{"id": 7, "cmd": "task-create", "args": {"title": "bad7", "depends_on": [424242]}}\n')
    assert not c.read_msg(timeout=10)["ok"]
    assert c.call("task-create", title="good8")["title"] == "good8"
    titles = sorted(t["title"] for t in daemon.call("task-list")["items"])
    assert titles == ["good1", "good3", "good8"]


# ---- leases and lost agents ----


def wait_for(pred, timeout=5.0, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def test_lease_expiry_returns_claim(daemon):
    c = daemon.connect()
    sub = daemon.connect()
    sub.call("subscribe", topics=["task.expired"])
    tid = c.call("task-create", title="leased")["id"]
    keep = c.call("task-create", title="long lease")["id"]
    t0 = time.time()
    t = c.call("task-claim", agent="slow", id=tid, lease_ms=300)
    c.call("task-claim", agent="slow", id=keep, lease_ms=60000)
    assert t["lease_expires_ms"] - t["claimed_ms"] == 300
    ev = sub.next_event(timeout=5)
    assert ev is not None and ev["event"] == "task.expired", ev
    assert time.time() - t0 >= 0.25
    assert ev["data"]["id"] == tid and ev["data"]["status"] == "open"
    t = c.call("task-show", id=tid)
    assert t["status"] == "open" and t["owner"] is None
    assert c.call("task-show", id=keep)["status"] == "claimed"
    assert err_code(c, "task-complete", id=tid, agent="slow") == "conflict"
    assert c.call("task-claim", agent="fast")["id"] == tid
    assert err_code(c, "task-claim", agent="x", lease_ms=5) == "invalid_argument"


def test_lost_agent_releases_claims_and_heartbeat_renews(daemon):
    c = daemon.connect()
    sub = daemon.connect()
    sub.call("subscribe", topics=["agent.lost", "task.released", "task.expired"])
    a = c.call("agent-register", id="alive", name="keeper", lease_ms=400)
    assert a["kind"] == "registered" and a["lost"] is False and a["lease_ms"] == 400
    c.call("agent-register", id="quiet", lease_ms=400)
    t1 = c.call("task-create", title="kept")["id"]
    t2 = c.call("task-create", title="dropped")["id"]
    # both claims have leases shorter than the test; only heartbeats keep t1
    c.call("task-claim", agent="alive", id=t1, lease_ms=500)
    c.call("task-claim", agent="quiet", id=t2, lease_ms=60000)
    deadline = time.time() + 1.5
    seen = []
    while time.time() < deadline:
        hb = c.call("agent-heartbeat", id="alive", activity="working")
        assert hb["lost"] is False and hb["activity"] == "working"
        time.sleep(0.1)
    while True:
        ev = poll_event(sub, 0.2)
        if ev is None:
            break
        seen.append(ev)
    topics = [(e["event"], e["data"].get("id")) for e in seen]
    assert ("agent.lost", "quiet") in topics, topics
    assert ("task.released", t2) in topics, topics
    assert ("agent.lost", "alive") not in topics
    assert all(tid != t1 for _, tid in topics), topics
    assert c.call("task-show", id=t1)["status"] == "claimed"
    t = c.call("task-show", id=t2)
    assert t["status"] == "open" and t["owner"] is None
    quiet = c.call("agent-status", id="quiet")
    assert quiet["lost"] is True and quiet["state"] == "lost"
    agents = {a["id"]: a for a in c.call("list-agents")["items"]}
    assert agents["alive"]["lost"] is False and agents["quiet"]["lost"] is True
    # a lost agent that heartbeats again comes back
    back = c.call("agent-heartbeat", id="quiet")
    assert back["lost"] is False and back["state"] == "active"
    assert err_code(c, "agent-heartbeat", id="nobody") == "not_found"
    assert err_code(c, "agent-register", id="", lease_ms=1000) == "invalid_argument"
    assert err_code(c, "agent-register", id="z", lease_ms=10) == "invalid_argument"
    gen = c.call("agent-register")
    assert gen["id"] and gen["lease_ms"] == 30000


# ---- events: resumable subscribe ----


def test_subscribe_resumes_without_gap_or_duplicate(daemon):
    prod = daemon.connect()
    base = prod.call("status")["last_seq"]
    sub = Conn(daemon.socket)
    assert sub.call("subscribe", topics=["task."], since=base)["seq"] >= base  # host.* may land
    seen = []

    def produce(n, tag):
        for i in range(n):
            t = prod.call("task-create", title="%s%d" % (tag, i))
            if i % 3 == 0:
                prod.call("task-claim", agent="p", id=t["id"])

    produce(30, "a")
    # read part of the stream, then drop the connection midway
    while len(seen) < 20:
        ev = sub.next_event(timeout=5)
        assert ev is not None
        seen.append(ev)
    sub.close()
    produce(30, "b")  # produced while nobody listens
    sub = Conn(daemon.socket)
    last = seen[-1]["seq"]
    r = sub.call("subscribe", topics=["task."], since=last)
    produce(30, "c")  # produced after the resubscribe: live
    # other subsystems log events of their own (skills.*, host.*): the
    # stream must equal the stored task.* events, whatever their seqs
    stored = prod.call("events-read", since=base, limit=100000, topics=["task."])["items"]
    final = stored[-1]["seq"]
    while seen[-1]["seq"] < final:
        ev = sub.next_event(timeout=5)
        assert ev is not None, "stream stopped at %d of %d" % (seen[-1]["seq"], final)
        seen.append(ev)
    assert r["seq"] >= last
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(set(seqs)), "duplicate or out of order"
    assert len(stored) == 30 + 10 + 30 + 10 + 30 + 10
    assert [(e["seq"], e["event"], e["data"]) for e in stored] == \
        [(e["seq"], e["event"], e["data"]) for e in seen], "gap or duplicate"
    assert {e["event"] for e in seen} == {"task.created", "task.claimed"}
    # nothing more arrives: no duplicate tail
    assert poll_event(sub, 0.3) is None


def test_subscribe_topic_prefixes_and_unsubscribe(daemon):
    c = daemon.connect()
    sub = daemon.connect()
    sub.call("subscribe", topics=["agent.registered", "task.completed"])
    c.call("agent-register", id="ag1")
    tid = c.call("task-create", title="x")["id"]
    c.call("task-claim", agent="ag1", id=tid)
    c.call("task-complete", id=tid)
    e1 = sub.next_event(timeout=5)
    e2 = sub.next_event(timeout=5)
    assert (e1["event"], e2["event"]) == ("agent.registered", "task.completed")
    assert e2["seq"] > e1["seq"] and e2["data"]["id"] == tid and e1["data"]["id"] == "ag1"
    assert sub.call("unsubscribe") == {}
    c.call("agent-register", id="ag2")
    # status round trip proves the daemon has processed it; no event came
    sub.call("status")
    assert sub.events == []
    assert err_code(c, "subscribe", since=10 ** 9) == "invalid_argument"
    assert err_code(c, "subscribe", topics=[1]) == "invalid_argument"


def test_revived_agent_is_registered_with_its_full_object(daemon):
    c = daemon.connect()
    c.call("agent-register", id="phoenix", lease_ms=200)
    deadline = time.time() + 10
    while not c.call("agent-status", id="phoenix")["lost"]:
        assert time.time() < deadline
        time.sleep(0.05)
    base = c.call("status")["last_seq"]
    a = c.call("agent-heartbeat", id="phoenix")
    assert a["lost"] is False and a["state"] == "active"
    ev = c.call("events-read", since=base, topics=["agent.registered"])["items"]
    assert len(ev) == 1 and ev[0]["data"]["id"] == "phoenix"
    assert ev[0]["data"]["kind"] == "registered" and ev[0]["data"]["lost"] is False
