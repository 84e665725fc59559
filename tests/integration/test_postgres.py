"""Several daemons on one PostgreSQL database (issue 11).

Two daemons (host ids host-a and host-b, each its own state directory and
socket) share one fresh database.  2,000 tasks, 4 claimer threads per
daemon, each on its own connection: every task is claimed exactly once.  A
subscriber on daemon A sees the claims made through daemon B, in seq order,
and the events table says B appended them.  Agents registered through each
daemon carry that daemon's host.

The server is COLIBRI_STORE's (see conftest) or, without it, one that
tests/pg/start.sh starts for this module and tests/pg/stop.sh removes.
Skipped when there is no PostgreSQL server to start or the daemon was built
without the backend.
"""
import glob
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import ROOT, CallError, Conn, bin_path, pg_fresh_db, pg_psql

TASKS = 2000
CLAIMERS = 4


def daemon_has_postgres():
    out = subprocess.run([bin_path("colibri-daemon"), "--version"], capture_output=True,
                         text=True).stdout
    return "postgres" in out.split("stores:", 1)[-1]


@pytest.fixture(scope="module")
def pg_server():
    if not daemon_has_postgres():
        # The default build leaves libpq out (it triples the idle RSS); make test runs
        # this file again in the integration-pg suite, against build-pg (-Dpostgres=enabled).
        pytest.skip("this colibri-daemon was built without the PostgreSQL backend")
    url = os.environ.get("COLIBRI_STORE", "")
    if url:
        yield url
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("no PostgreSQL server installed (Debian's postgresql)")
    p = subprocess.run([os.path.join(ROOT, "tests", "pg", "start.sh")], capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        pytest.fail("tests/pg/start.sh failed:\n" + p.stderr)
    url = p.stdout.strip()
    try:
        yield url
    finally:
        subprocess.run([os.path.join(ROOT, "tests", "pg", "stop.sh"), url], timeout=60)


@pytest.fixture
def shared_db(pg_server):
    return pg_fresh_db(pg_server)


def two_daemons(make_daemon, url):
    a = make_daemon("a", extra_args=["--store", url, "--host-id", "host-a"], start=False)
    b = make_daemon("b", extra_args=["--store", url, "--host-id", "host-b"], start=False)
    a.start(wait=False)
    try:
        a.wait_ready()
    except RuntimeError as e:
        if "no PostgreSQL backend" in str(e):
            pytest.skip("colibri-daemon built without the PostgreSQL backend")
        raise
    b.start()
    return a, b


def pipeline(conn, cmd, args_list):
    """Send every request at once, then read the replies in order."""
    lines = []
    for i, args in enumerate(args_list):
        lines.append('{"id": %d, "cmd": "%s", "args": %s}' % (i + 1, cmd, json.dumps(args)))
    conn.send_raw(("\n".join(lines) + "\n").encode())
    out = []
    while len(out) < len(args_list):
        m = conn.read_msg(30)
        assert m is not None, "daemon closed the connection"
        if "event" in m:
            continue
        assert m["ok"], m
        out.append(m["result"])
    return out


def claimer(sock, agent, got, errors):
    try:
        c = Conn(sock, timeout=30)
        while True:
            try:
                t = c.call("task-claim", agent=agent)
            except CallError as e:
                if e.code == "not_found":
                    break
                raise
            got.append((agent, t["id"]))
        c.close()
    except Exception as e:  # reported by the test, not lost in the thread
        errors.append("%s: %r" % (agent, e))


def test_two_daemons_share_the_board_and_the_events(make_daemon, shared_db):
    a, b = two_daemons(make_daemon, shared_db)
    sub = a.connect()
    sub.call("subscribe", topics=["task.claimed"])
    c = b.connect()
    created = pipeline(c, "task-create", [{"title": "t%d" % i, "priority": i % 5} for i in range(TASKS)])
    assert len({t["id"] for t in created}) == TASKS
    # Both daemons see the same ready queue.
    assert a.call("status")["counts"]["tasks"]["ready"] == TASKS
    assert b.call("status")["counts"]["tasks"]["ready"] == TASKS

    got, errors, threads = [], [], []
    for d, name in ((a, "A"), (b, "B")):
        for k in range(CLAIMERS):
            threads.append(threading.Thread(target=claimer, args=(d.socket, "c-%s-%d" % (name, k), got, errors)))
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.time() - t0
    assert not errors, errors
    ids = [tid for _, tid in got]
    assert len(ids) == TASKS and len(set(ids)) == TASKS, "claimed %d, distinct %d" % (len(ids), len(set(ids)))
    by_b = {tid for agent, tid in got if agent.startswith("c-B-")}
    assert by_b and len(by_b) < TASKS, "both daemons claimed (B: %d)" % len(by_b)
    for d in (a, b):
        counts = d.call("status")["counts"]["tasks"]
        assert counts["claimed"] == TASKS and counts["open"] == 0 and counts["ready"] == 0

    # The subscriber on A sees every claim, B's included, in seq order.
    seen, deadline = [], time.time() + 30
    while len(seen) < TASKS and time.time() < deadline:
        m = sub.next_event(timeout=max(0.1, deadline - time.time()))
        assert m is not None
        seen.append(m)
    assert len(seen) == TASKS, "A's subscriber saw %d of %d claims" % (len(seen), TASKS)
    seqs = [m["seq"] for m in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == TASKS
    assert {m["data"]["id"] for m in seen} == set(ids)
    from_b = [m["seq"] for m in seen if m["data"]["owner"].startswith("c-B-")]
    assert {m["data"]["id"] for m in seen if m["data"]["owner"].startswith("c-B-")} == by_b
    hosts = dict(line.split("|") for line in pg_psql(
        shared_db, "SELECT seq, host FROM events WHERE topic = 'task.claimed'").split())
    assert all(hosts[str(s)] == "host-b" for s in from_b)
    assert all(hosts[str(m["seq"])] == "host-a" for m in seen if m["data"]["owner"].startswith("c-A-"))
    print("%d claims through two daemons in %.2f s (%.0f/s)" % (TASKS, elapsed, TASKS / elapsed))


def test_events_from_b_reach_a_without_polling(make_daemon, shared_db):
    a, b = two_daemons(make_daemon, shared_db)
    sub = a.connect()
    sub.call("subscribe", topics=["task."])
    t0 = time.time()
    t = b.call("task-create", title="made on b")
    m = sub.next_event(timeout=5)
    assert m["event"] == "task.created" and m["data"]["id"] == t["id"]
    assert time.time() - t0 < 2
    # A's own events and B's interleave in one increasing sequence.
    seqs = []
    for i in range(20):
        (a if i % 2 else b).call("task-create", title="n%d" % i)
    while len(seqs) < 20:
        seqs.append(sub.next_event(timeout=5)["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 20


def test_agents_show_their_host(make_daemon, shared_db):
    a, b = two_daemons(make_daemon, shared_db)
    a.call("agent-register", id="worker-a")
    b.call("agent-register", id="worker-b")
    for d in (a, b):
        hosts = {x["id"]: x["host"] for x in d.call("list-agents")["items"]}
        assert hosts == {"worker-a": "host-a", "worker-b": "host-b"}
    # a claim through one daemon is renewed by a heartbeat through the other
    t = a.call("task-create", title="x")
    a.call("task-claim", agent="worker-b", id=t["id"])
    b.call("agent-heartbeat", id="worker-b")
    assert a.call("task-show", id=t["id"])["owner"] == "worker-b"
    out = a.cli("list-agents", "--json")
    assert out.returncode == 0 and '"host-b"' in out.stdout


def test_spawned_agents_stay_with_their_host(make_daemon, shared_db):
    a, b = two_daemons(make_daemon, shared_db)
    ag = a.call("spawn-agent", {"provider": "local", "args": ["--scenario", "hang"]})
    assert a.call("agent-status", id=ag["id"])["host"] == "host-a"
    # Restarting B must not touch A's running agent (B recovers only its own).
    b.stop()
    b.start()
    st = a.call("agent-status", id=ag["id"])
    assert st["state"] != "error", st
    assert [x["id"] for x in b.call("list-agents", kind="spawned")["items"]] == []
    assert ag["id"] in [x["id"] for x in b.call("list-agents")["items"]]
    a.call("kill-agent", id=ag["id"])


def board_scan(url):
    """The counts a scan of the board gives (status by status, and ready by its definition)."""
    rows = dict(line.split("|") for line in pg_psql(
        url, "SELECT status, count(*) FROM tasks GROUP BY status").split())
    counts = {k: int(rows.get(k, 0)) for k in ("open", "claimed", "done", "cancelled", "failed")}
    counts["ready"] = int(pg_psql(
        url, "SELECT count(*) FROM tasks t WHERE t.status = 'open' AND NOT EXISTS (SELECT 1 "
             "FROM task_deps d JOIN tasks u ON u.id = d.dep WHERE d.task = t.id AND "
             "u.status <> 'done')").strip())
    return counts


def test_kept_counts_match_the_board_with_two_daemons(make_daemon, shared_db):
    """Issue 19: status reads counts the triggers keep (migration 5), each backend in rows
    of its own; with two daemons changing the board at once (dependencies added on A while
    B completes the tasks they name) they still equal a scan, and every task's
    unfinished_deps its dependencies that are not done.  A daemon that opens the store folds
    the rows of backends that are gone into one."""
    a, b = two_daemons(make_daemon, shared_db)
    base = [t["id"] for t in pipeline(b.connect(), "task-create",
                                      [{"title": "base %d" % i} for i in range(200)])]
    errors = []

    def complete_all():
        try:
            c = Conn(b.socket, timeout=30)
            for tid in base:
                t = c.call("task-claim", agent="w", id=tid)
                c.call("task-complete", id=tid, agent="w", epoch=t["epoch"])
        except Exception as e:
            errors.append("completer: %r" % e)

    def add_dependents():
        try:
            c = Conn(a.socket, timeout=30)
            for i in range(200):
                c.call("task-create", title="after %d" % i,
                       depends_on=[base[i], base[(i * 7 + 3) % 200]])
        except Exception as e:
            errors.append("creator: %r" % e)

    threads = [threading.Thread(target=complete_all), threading.Thread(target=add_dependents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    scan = board_scan(shared_db)
    assert scan["done"] == 200 and scan["open"] == 200 and scan["ready"] == 200, scan
    for d in (a, b):
        counts = d.call("status")["counts"]["tasks"]
        assert {k: counts[k] for k in scan} == scan
    assert pg_psql(shared_db, "SELECT count(*) FROM tasks t WHERE unfinished_deps <> (SELECT "
                              "count(*) FROM task_deps d JOIN tasks u ON u.id = d.dep WHERE "
                              "d.task = t.id AND u.status <> 'done')").strip() == "0"
    # a dependent cancelled leaves the open and ready counts
    c = a.connect()
    c.call("task-update", id=base[-1] + 1, status="cancelled")
    assert a.call("status")["counts"]["tasks"] == dict(board_scan(shared_db), stale_claims=0)
    slots_before = int(pg_psql(shared_db, "SELECT count(DISTINCT slot) FROM counts").strip())
    assert slots_before >= 2  # slot 0 and the backends that wrote
    assert a.stop() == 0 and b.stop() == 0
    a.start()
    # b's and a's old backends are gone: their rows are folded into slot 0 (the new
    # backend of a may have rows of its own already)
    assert pg_psql(shared_db, "SELECT count(*) FROM counts WHERE slot <> 0 AND slot NOT IN "
                              "(SELECT pid FROM pg_stat_activity)").strip() == "0"
    assert int(pg_psql(shared_db, "SELECT count(DISTINCT slot) FROM counts").strip()) <= 2
    assert a.call("status")["counts"]["tasks"] == dict(board_scan(shared_db), stale_claims=0)
