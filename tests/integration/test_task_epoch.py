"""Claim epochs, repeated completions and failed tasks (issue 17, task-bound runs).

Every claim bumps a task's epoch and the claim's reply carries it.
task-update, task-complete and task-release take an optional epoch: one
that is not the task's is stale (the task was released or lost and claimed
again since) and refused with conflict, naming both epochs, and nothing
changes.  Completing a done task again with the epoch it was completed at
is the same completion: the reply is the task as it was, and no second
task.completed is emitted.  Over an agent's channel (COLIBRI_FD) the same
holds for the agent's own claims.

A failed task (status failed, after max_attempts failed runs of the
spawner's task-bound agents) is neither ready nor claimable, is listed and
counted as failed, and task-update {status: open} reopens it with its
attempts back to 0 and its last_error kept.  No command fails a task (only
the spawner does, through store_task_run_failed: tests/unit/test_store_runs.c),
so these tests mark one failed in the database while the daemon is down.

A database created at schema 2 (the old migrations' SQL, read from the
backend's source, so it is exactly what shipped) with tasks, a dependency,
a claim and a spawned agent is opened by the new daemon: migration 3 keeps
every task, dependency and agent, adds the new fields with their defaults,
and a new task's id continues after the old high-water mark.

Every test runs on SQLite and, with COLIBRI_STORE (the integration-pg
suite), on PostgreSQL.
"""
import json
import os
import re
import sqlite3
import subprocess

import pytest

from conftest import ROOT, STORE, CallError, bin_path, pg_fresh_db, pg_psql
from test_supervision_helpers import session_lines, sup_daemon, wait_gone

PY = "/usr/bin/python3"


def err(conn, cmd, **args):
    r = conn.request(cmd, args)
    assert not r["ok"], "%s %r unexpectedly succeeded: %r" % (cmd, args, r)
    return r["error"]["code"], r["error"]["message"]


# ---- epochs ----


def test_every_claim_bumps_the_epoch(daemon):
    c = daemon.connect()
    t = c.call("task-create", title="epochs")
    assert (t["epoch"], t["attempts"], t["max_attempts"], t["last_error"]) == (0, 0, None, None)
    a = c.call("task-claim", agent="a", id=t["id"])
    assert (a["status"], a["owner"], a["epoch"]) == ("claimed", "a", 1)
    r = c.call("task-release", id=t["id"], agent="a", epoch=1)
    assert (r["status"], r["owner"], r["epoch"]) == ("open", None, 1)
    b = c.call("task-claim", agent="b")  # the head of the queue: the same task
    assert (b["id"], b["owner"], b["epoch"]) == (t["id"], "b", 2)
    assert c.call("task-show", id=t["id"])["epoch"] == 2
    assert [x["epoch"] for x in c.call("task-list", owner="b")["items"]] == [2]
    # a claim that is refused bumps nothing
    assert err(c, "task-claim", agent="c", id=t["id"])[0] == "conflict"
    assert c.call("task-show", id=t["id"])["epoch"] == 2


def test_a_stale_epoch_is_a_conflict(daemon):
    c = daemon.connect()
    tid = c.call("task-create", title="stale")["id"]
    c.call("task-claim", agent="a", id=tid)
    c.call("task-release", id=tid)  # no epoch: not checked, as before
    assert c.call("task-claim", agent="b", id=tid)["epoch"] == 2
    before = c.call("task-show", id=tid)
    for cmd, args in [("task-update", {"progress": "late"}), ("task-complete", {"result": "late"}),
                      ("task-release", {})]:
        code, msg = err(c, cmd, id=tid, epoch=1, **args)
        assert code == "conflict", (cmd, msg)
        assert "epoch 1 is stale" in msg and "epoch is 2" in msg, (cmd, msg)
        # the stale epoch is refused whoever names it, the owner included
        assert err(c, cmd, id=tid, agent="b", epoch=1, **args)[0] == "conflict"
    assert c.call("task-show", id=tid) == before
    # an epoch from the future is not the task's either
    assert err(c, "task-complete", id=tid, epoch=3)[0] == "conflict"
    # the bounds: a positive integer
    for bad in (0, -1, "2", 1.5, True):
        assert err(c, "task-complete", id=tid, epoch=bad)[0] == "invalid_argument", bad
    # the current epoch goes through
    assert c.call("task-update", id=tid, agent="b", epoch=2, progress="half")["progress"] == "half"
    done = c.call("task-complete", id=tid, agent="b", epoch=2, result={"ok": True})
    assert (done["status"], done["owner"], done["epoch"], done["result"]) == \
        ("done", "b", 2, {"ok": True})


def completed_events(c, base):
    return [e for e in c.call("events-read", after=base, topics=["task.completed"])["items"]]


def test_completing_twice_with_the_same_epoch_is_one_completion(daemon):
    c = daemon.connect()
    sub = daemon.connect()
    base = c.call("status")["last_seq"]
    sub.call("subscribe", topics=["task."], since=base)
    tid = c.call("task-create", title="once")["id"]
    epoch = c.call("task-claim", agent="a", id=tid)["epoch"]
    first = c.call("task-complete", id=tid, agent="a", epoch=epoch, result={"n": 1})
    assert first["status"] == "done"
    # again: by its owner, or naming no agent -- the task as it was, result and time included
    again = c.call("task-complete", id=tid, agent="a", epoch=epoch, result={"n": 2})
    assert again == first
    assert c.call("task-complete", id=tid, epoch=epoch, result="other") == first
    # not the same completion: another agent, another epoch, or no epoch (as before)
    assert err(c, "task-complete", id=tid, agent="b", epoch=epoch)[0] == "conflict"
    assert err(c, "task-complete", id=tid, agent="a", epoch=epoch + 1)[0] == "conflict"
    assert err(c, "task-complete", id=tid, agent="a")[0] == "conflict"
    assert c.call("task-show", id=tid) == first
    # one task.completed: in the log, and on the live stream up to a marker event
    assert [e["data"]["id"] for e in completed_events(c, base)] == [tid]
    marker = c.call("task-create", title="marker")["id"]
    seen = []
    while True:
        ev = sub.next_event(timeout=10)
        assert ev is not None, "the stream stopped before the marker: %r" % seen
        seen.append((ev["event"], ev["data"]["id"]))
        if ev["event"] == "task.created" and ev["data"]["id"] == marker:
            break
    assert seen == [("task.created", tid), ("task.claimed", tid), ("task.completed", tid),
                    ("task.created", marker)], seen


def test_the_cli_passes_the_epoch(daemon):
    tid = daemon.call("task-create", title="cli")["id"]
    daemon.call("task-claim", agent="a", id=tid)
    daemon.call("task-release", id=tid)
    daemon.call("task-claim", agent="a", id=tid)
    p = daemon.cli("task-complete", tid, "--agent", "a", "--epoch", "1")
    assert p.returncode != 0 and "stale" in p.stderr, (p.returncode, p.stdout, p.stderr)
    p = daemon.cli("task-update", tid, "--epoch", "1", "--progress", "x")
    assert p.returncode != 0 and "stale" in p.stderr, p.stderr
    p = daemon.cli("task-release", tid, "--epoch", "1")
    assert p.returncode != 0 and "stale" in p.stderr, p.stderr
    p = daemon.cli("--json", "task-complete", tid, "--agent", "a", "--epoch", "2")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "done"
    p = daemon.cli("--json", "task-complete", tid, "--agent", "a", "--epoch", "2")
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "done", p.stderr


# ---- over an agent's channel ----

AGENT = r"""
import json, os, socket, sys
fd = int(os.environ["COLIBRI_FD"])
f = socket.socket(fileno=os.dup(fd)).makefile("rwb")
n = 0
def call(cmd, args):
    global n
    n += 1
    f.write((json.dumps({"id": n, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    r = json.loads(f.readline())
    if not r["ok"]:
        return {"error": r["error"]["code"], "message": r["error"]["message"]}
    return {k: r["result"].get(k) for k in ("status", "owner", "epoch")}
tid, other, other_epoch = (int(x) for x in sys.argv[1:4])
out = {}
out["claim1"] = call("task-claim", {"id": tid})
out["release1"] = call("task-release", {"id": tid, "epoch": 1})
out["claim2"] = call("task-claim", {"id": tid})
out["stale_update"] = call("task-update", {"id": tid, "epoch": 1, "progress": "late"})
out["stale_release"] = call("task-release", {"id": tid, "epoch": 1})
out["stale_complete"] = call("task-complete", {"id": tid, "epoch": 1, "result": "late"})
out["complete"] = call("task-complete", {"id": tid, "epoch": 2, "result": "mine"})
out["again"] = call("task-complete", {"id": tid, "epoch": 2, "result": "mine again"})
out["not_mine"] = call("task-complete", {"id": other, "epoch": other_epoch})
print(json.dumps(out), flush=True)
"""


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def test_a_stale_epoch_over_the_agent_channel_is_a_conflict(sup):
    tid = sup.call("task-create", title="the agent's")["id"]
    other = sup.call("task-create", title="someone else's")["id"]
    other_epoch = sup.call("task-claim", agent="someone-else", id=other)["epoch"]
    base = sup.call("status")["last_seq"]
    a = sup.call("spawn-local", {"binary": PY, "args": ["-c", AGENT, str(tid), str(other),
                                                        str(other_epoch)]})
    me = a["id"]
    st = wait_gone(sup, me, timeout=30)
    lines = session_lines(sup, me)
    assert (st["state"], st["exit_code"]) == ("done", 0), (st, lines)
    assert len(lines) == 1, lines
    out = json.loads(lines[0])
    assert out["claim1"] == {"status": "claimed", "owner": me, "epoch": 1}, out
    assert out["release1"]["status"] == "open", out
    assert out["claim2"] == {"status": "claimed", "owner": me, "epoch": 2}, out
    for k in ("stale_update", "stale_release", "stale_complete"):
        assert out[k]["error"] == "conflict" and "stale" in out[k]["message"], (k, out)
    assert out["complete"] == {"status": "done", "owner": me, "epoch": 2}, out
    assert out["again"] == out["complete"], out
    # the right epoch of a claim the agent does not hold: still not its task
    assert out["not_mine"]["error"] == "conflict", out
    t = sup.call("task-show", id=tid)
    assert (t["status"], t["owner"], t["epoch"], t["result"], t["progress"]) == \
        ("done", me, 2, "mine", None)
    assert (sup.call("task-show", id=other)["status"]) == "claimed"
    assert [e["data"]["id"] for e in completed_events(sup.connect(), base)] == [tid]


# ---- failed tasks ----


def db_exec(d, sql, params=()):
    """Run sql on the (stopped) daemon d's database: the SQLite file or its PostgreSQL database."""
    if STORE:
        pg_psql(pg_fresh_db(STORE, os.path.abspath(d.state_dir)), sql % params)
        return
    db = sqlite3.connect(os.path.join(d.state_dir, "colibri.sqlite"))
    with db:
        db.execute(sql.replace("%d", "?").replace("'%s'", "?"), params)
    db.close()


def mark_failed(d, tid, attempts, max_attempts, why):
    """What the spawner's store_task_run_failed leaves after max_attempts failed runs."""
    assert d.stop() == 0
    db_exec(d, "UPDATE tasks SET status = 'failed', owner = NULL, lease_expires = NULL, "
               "attempts = %d, max_attempts = %d, last_error = '%s' WHERE id = %d",
            (attempts, max_attempts, why, tid))
    d.start()


def test_a_failed_task_waits_until_reopened(make_daemon):
    d = make_daemon()
    c = d.connect()
    tid = c.call("task-create", title="flaky", priority=5)["id"]
    later = c.call("task-create", title="after it", depends_on=[tid])["id"]
    assert c.call("task-claim", agent="a", id=tid)["epoch"] == 1
    mark_failed(d, tid, 2, 2, "HTTP 400 from the model")
    c = d.connect()
    t = c.call("task-show", id=tid)
    assert (t["status"], t["attempts"], t["max_attempts"], t["last_error"], t["owner"]) == \
        ("failed", 2, 2, "HTTP 400 from the model", None)
    # not ready, not claimable, and what depends on it waits
    assert c.call("task-ready")["items"] == []
    code, msg = err(c, "task-claim", agent="b", id=tid)
    assert code == "conflict" and "failed" in msg, msg
    assert err(c, "task-claim", agent="b")[0] == "not_found"
    assert err(c, "task-claim", agent="b", id=later)[0] == "conflict"
    # listed and counted as failed
    assert [x["id"] for x in c.call("task-list", status="failed")["items"]] == [tid]
    assert c.call("status")["counts"]["tasks"]["failed"] == 1
    p = d.cli("task-list", "--status", "failed")
    assert p.returncode == 0 and "failed" in p.stdout and "flaky" in p.stdout, p.stdout + p.stderr
    # only task-update reopens it, and it cannot set failed itself
    code, msg = err(c, "task-update", id=tid, status="failed")
    assert code == "invalid_argument", msg
    assert err(c, "task-complete", id=tid)[0] == "conflict"
    assert err(c, "task-release", id=tid)[0] == "conflict"
    t = c.call("task-update", id=tid, status="open")
    assert (t["status"], t["attempts"], t["last_error"], t["max_attempts"], t["epoch"]) == \
        ("open", 0, "HTTP 400 from the model", 2, 1)
    assert [x["id"] for x in c.call("task-ready")["items"]] == [tid]
    assert c.call("status")["counts"]["tasks"]["failed"] == 0
    assert c.call("task-claim", agent="b")["epoch"] == 2
    # a failed task can be cancelled as well
    mark_failed(d, later, 1, 1, "gone")
    c = d.connect()
    assert c.call("task-update", id=later, status="cancelled")["status"] == "cancelled"


def test_task_list_status_filter_names_failed(daemon):
    c = daemon.connect()
    assert c.call("task-list", status="failed")["items"] == []
    code, msg = err(c, "task-list", status="lost")
    assert code == "invalid_argument" and "failed" in msg, msg


# ---- migration from schema 2 ----


def old_migrations(path, n):
    """The first n entries of migrations[] in a backend's source, as the SQL they hold."""
    text = open(os.path.join(ROOT, path)).read()
    body = text[text.index("migrations[] = {"):]
    body = re.sub(r"/\*.*?\*/", "", body[:body.index("\n};")], flags=re.S)
    entries, cur = [], ""
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|(,)', body):
        if m.group(2):
            entries.append(cur)
            cur = ""
        else:
            cur += m.group(1).encode().decode("unicode_escape")
    if cur:
        entries.append(cur)
    assert len(entries) >= 3 and all(e.strip() for e in entries), entries
    return entries[:n]


OLD_ROWS = [
    "INSERT INTO tasks (id, title, body, status, priority, owner, lease_ms, lease_expires, result,"
    " progress, created, updated, claimed, completed) VALUES"
    " (1, 'base', 'lay it', 'done', 0, 'w1', 1000, NULL, '{\"n\": 1}', NULL, 1, 5, 2, 5),"
    " (2, 'walls', '', 'open', 3, NULL, NULL, NULL, NULL, 'half', 1, 1, NULL, NULL),"
    " (3, 'roof', '', 'open', 9, NULL, NULL, NULL, NULL, NULL, 1, 1, NULL, NULL),"
    " (4, 'held', '', 'claimed', 0, 'w2', 600000, 9999999999999, NULL, NULL, 1, 1, 1, NULL),"
    " (5, 'dropped', '', 'cancelled', 0, NULL, NULL, NULL, NULL, NULL, 1, 1, NULL, NULL)",
    "INSERT INTO task_deps (task, dep) VALUES (2, 1), (3, 1), (3, 2)",
    "INSERT INTO agents (id, kind, name, provider, state, created, updated, owner_uid)"
    " VALUES ('old-agent', 'spawned', 'old', 'local', 'done', 1, 1, 1234)",
]


def make_schema2(d):
    if STORE:
        url = pg_fresh_db(STORE, os.path.abspath(d.state_dir))
        sql = old_migrations("src/store/store-postgres.c", 2)
        pg_psql(url, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                     "applied BIGINT NOT NULL)")
        for i, m in enumerate(sql):
            pg_psql(url, "BEGIN; %s; INSERT INTO schema_migrations VALUES (%d, 0); COMMIT"
                    % (m, i + 1))
        pg_psql(url, "; ".join(OLD_ROWS) + "; SELECT setval('tasks_id_seq', 10)")
        return
    os.makedirs(d.state_dir, mode=0o700)
    db = sqlite3.connect(os.path.join(d.state_dir, "colibri.sqlite"))
    db.execute("PRAGMA foreign_keys = ON")
    for m in old_migrations("src/store/store-sqlite.c", 2):
        db.executescript(m)
    with db:
        for row in OLD_ROWS:
            db.execute(row)
        # tasks 6..10 came and went: ids continue after 10, as AUTOINCREMENT promises
        db.execute("UPDATE sqlite_sequence SET seq = 10 WHERE name = 'tasks'")
    db.execute("PRAGMA user_version = 2")
    db.close()


def test_a_schema_2_database_keeps_its_tasks_and_dependencies(make_daemon):
    d = make_daemon(start=False)
    make_schema2(d)
    d.start()
    c = d.connect()
    st = c.call("status")
    assert st["schema_version"] == 5  # 3 (task-bound runs), 4 (tags), 5 (kept counts)
    # the counts kept since migration 5 are seeded from the rows already there
    counts = lambda: {k: v for k, v in c.call("status")["counts"]["tasks"].items()
                      if k != "stale_claims"}
    assert counts() == {"open": 2, "claimed": 1, "done": 1, "cancelled": 1, "failed": 0,
                        "ready": 1}
    assert (st["counts"]["agents"], st["counts"]["tenants"]) == (1, 0)
    tasks = {t["id"]: t for t in c.call("task-list")["items"]}
    assert sorted(tasks) == [1, 2, 3, 4, 5]
    assert [tasks[i]["depends_on"] for i in (1, 2, 3)] == [[], [1], [1, 2]]
    assert (tasks[1]["status"], tasks[1]["owner"], tasks[1]["result"]) == ("done", "w1", {"n": 1})
    assert (tasks[2]["progress"], tasks[3]["priority"], tasks[5]["status"]) == \
        ("half", 9, "cancelled")
    for t in tasks.values():
        assert (t["epoch"], t["attempts"], t["max_attempts"], t["last_error"], t["tags"]) == \
            (0, 0, None, None, []), t
    # the dependencies still order the queue: 2 (its dependency 1 is done), then 3 after 2
    assert [t["id"] for t in c.call("task-ready")["items"]] == [2]
    # the claim made before the migration completes as before (no epoch to check)
    assert c.call("task-complete", id=4, agent="w2")["status"] == "done"
    # a new task after the old high-water mark; claims count epochs from 1
    new = c.call("task-create", title="new", depends_on=[2])
    assert new["id"] == 11 and new["depends_on"] == [2]
    assert c.call("task-claim", agent="w3", id=2)["epoch"] == 1
    # and kept with every change: 4 done, 11 created waiting on 2, 2 claimed (3 and 11 wait)
    assert counts() == {"open": 2, "claimed": 1, "done": 2, "cancelled": 1, "failed": 0,
                        "ready": 0}
    a = {x["id"]: x for x in c.call("list-agents")["items"]}["old-agent"]
    assert (a["owner_uid"], a["task"], a["epoch"], a["last_message"]) == (1234, None, None, None)
    assert d.stop() == 0
    if STORE:
        url = pg_fresh_db(STORE, os.path.abspath(d.state_dir))
        assert pg_psql(url, "SELECT count(*) FROM task_deps").strip() == "4"
        return
    db = sqlite3.connect(os.path.join(d.state_dir, "colibri.sqlite"))
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM task_deps").fetchone() == (4,)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                     "AND tbl_name = 'tasks'")} >= \
        {"tasks_ready", "tasks_owner", "tasks_lease"}  # 5: tasks_ready replaced tasks_queue
    assert "'failed'" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'tasks'").fetchone()[0]
    # the foreign keys still hold: a dependency on a missing task is refused
    db.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO task_deps (task, dep) VALUES (2, 999)")
    db.close()
