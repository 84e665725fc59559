"""Lifecycle and retention (issue 18): agent-forget, retention.json, gc, compaction.

The daemon runs with COLIBRI_TEST_CLOCK_OFFSET_FILE (man colibri-daemon,
TEST FACILITIES): a file whose integer is added to the daemon's wall clock,
so a test moves a day ahead by rewriting it instead of waiting.  What is
pinned here:

- agent-forget takes an ended agent's row and session logs (and nothing
  else), refuses a running one (conflict) and a member acting on someone
  else's agent (permission_denied, a real user); gc is for admins only.
- gc forgets agents ended for agents_days and deletes events older than
  events_days or beyond events_rows, and reports what went.
- a cursor below the compacted events: events-read refuses it with
  cursor_expired naming the oldest kept seq; subscribe says cursor_expired
  with oldest_seq and then streams from the oldest kept event, no gap.
- a week of simulated load keeps the database in a steady state: after day
  7 no more rows and no more bytes than after day 3, plus a margin.
- retention.json's strictness (a bad file stops the start, a bad reload
  keeps the old policy) and the periodic run.
"""
import glob
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

import pytest

from conftest import STORE, CallError, Daemon, bin_path
from test_supervision_helpers import sup_env, wait_gone

DAY = 24 * 3600 * 1000


class Clock:
    """The daemon's clock offset file: ahead(ms) moves the daemon's now_ms on."""

    def __init__(self, path):
        self.path = str(path)
        self.offset = 0
        self.set(0)

    def set(self, ms):
        self.offset = ms
        # Rewritten in place: the daemon keeps the file open and reads a whole line.
        with open(self.path, "r+" if os.path.exists(self.path) else "w") as f:
            f.seek(0)
            f.write("%d\n" % ms)
            f.truncate()

    def ahead(self, ms):
        self.set(self.offset + ms)


def write_policy(conf_dir, policy):
    os.makedirs(conf_dir, exist_ok=True)
    p = os.path.join(conf_dir, "retention.json")
    with open(p, "w") as f:
        json.dump(policy, f)
    os.chmod(p, 0o644)
    return p


@pytest.fixture
def ret(make_daemon, tmp_path):
    """A daemon with a test clock and a retention policy: ret(policy) -> (daemon, clock)."""

    def make(policy, name="state"):
        clock = Clock(tmp_path / (name + ".clock"))
        conf = str(tmp_path / (name + ".conf"))
        write_policy(conf, policy)
        d = make_daemon(name=name, extra_args=["--config-dir", conf],
                        env=sup_env({"COLIBRI_TEST_CLOCK_OFFSET_FILE": clock.path}))
        d.conf = conf
        # The start's host inventory (a host.status event) first, so counts below are exact.
        deadline = time.time() + 15
        while d.call("status")["host_status"] is None and time.time() < deadline:
            time.sleep(0.05)
        return d, clock

    return make


def tasks(d, n, prefix="t"):
    c = d.connect()
    ids = [c.call("task-create", title="%s%d" % (prefix, i))["id"] for i in range(n)]
    c.close()
    return ids


def expired(call):
    with pytest.raises(CallError) as ei:
        call()
    assert ei.value.code == "cursor_expired", ei.value
    m = re.search(r"oldest_seq (\d+)", ei.value.message)
    assert m, ei.value.message
    return int(m.group(1)), ei.value.message


def test_gc_compacts_events_and_reports(ret):
    d, clock = ret({"agents_days": 1, "events_days": 1, "interval_ms": 0})
    tasks(d, 20, "old")
    old_last = d.call("events-read", limit=1)["last_seq"]
    assert old_last >= 20
    # Nothing is old yet: gc deletes nothing and says so.
    r = d.call("gc")
    assert (r["events_deleted"], r["agents_forgotten"], r["compacted_through"]) == (0, 0, 0)
    assert r["oldest_seq"] == 1 and r["db_bytes_before"] > 0 and r["db_bytes_after"] > 0
    clock.ahead(2 * DAY)
    tasks(d, 5, "new")
    r = d.call("gc")
    assert r["events_deleted"] == old_last, r
    assert r["compacted_through"] == old_last
    assert r["oldest_seq"] == old_last + 1
    # An explicit cursor below the floor is refused, naming the oldest kept seq.
    oldest, msg = expired(lambda: d.call("events-read", after=0))
    assert oldest == old_last + 1 and "after=%d" % old_last in msg
    assert expired(lambda: d.call("events-read", since=old_last - 1))[0] == old_last + 1
    # At the floor, above it, or without a cursor: the kept events, nothing refused.
    page = d.call("events-read", after=old_last)
    assert [e["seq"] for e in page["items"]] == list(range(old_last + 1, page["last_seq"] + 1))
    assert [e["seq"] for e in d.call("events-read")["items"]] == \
        [e["seq"] for e in page["items"]]
    assert len(d.call("events-read", after=old_last + 2)["items"]) == len(page["items"]) - 2
    # The old tasks themselves stay: retention compacts the log, not the board.
    assert len(d.call("task-list", limit=100)["items"]) == 25
    # The CLI prints the report; --json is the result.
    p = d.cli("gc")
    assert p.returncode == 0, p.stderr
    for k in ("agents_forgotten", "sessions_removed", "events_deleted", "oldest_seq",
              "db_bytes_before", "db_bytes_after"):
        assert k in p.stdout, p.stdout
    p = d.cli("--json", "gc")
    assert p.returncode == 0 and json.loads(p.stdout)["compacted_through"] == old_last


def test_events_rows_cap(ret):
    d, clock = ret({"events_days": 0, "events_rows": 10, "interval_ms": 0})
    tasks(d, 30)
    before = d.call("events-read", limit=1)["last_seq"]
    r = d.call("gc")
    after = d.call("events-read", limit=1)["last_seq"]  # (host.status may come meanwhile)
    floor = r["compacted_through"]
    assert before - 10 <= floor <= after - 10, (before, after, r)
    assert r["events_deleted"] == floor and r["oldest_seq"] == floor + 1, r
    assert [e["seq"] for e in d.call("events-read")["items"]] == list(range(floor + 1, after + 1))


def test_the_newest_event_always_stays(ret):
    """A quiet log past events_days keeps its newest event: the last seq is never lost."""
    d, clock = ret({"events_days": 1, "interval_ms": 0})
    tasks(d, 5)
    last = d.call("events-read", limit=1)["last_seq"]
    clock.ahead(2 * DAY)
    r = d.call("gc")
    assert (r["compacted_through"], r["oldest_seq"]) == (last - 1, last), r
    c = d.connect()
    rep = c.call("subscribe", since=0)
    assert rep == {"seq": last, "cursor_expired": True, "oldest_seq": last}
    assert c.next_event(10)["seq"] == last
    d.call("task-create", title="after")
    assert c.next_event(10)["seq"] == last + 1


def test_subscriber_with_expired_cursor_catches_up(ret):
    d, clock = ret({"events_days": 1, "interval_ms": 0})
    tasks(d, 10, "old")
    clock.ahead(2 * DAY)
    tasks(d, 3000, "new")  # more than one replay page, and more than one compaction batch
    r = d.call("gc")
    floor, oldest = r["compacted_through"], r["oldest_seq"]
    assert floor >= 10 and oldest == floor + 1
    c = d.connect()
    rep = c.call("subscribe", since=3)
    assert rep["cursor_expired"] is True and rep["oldest_seq"] == oldest, rep
    last = rep["seq"]
    seen = []
    while len(seen) < last - floor:
        m = c.next_event(10)
        assert m is not None and "event" in m, m
        seen.append(m["seq"])
    # From the oldest kept event on, every seq once, in order: no gap after the cursor moved.
    assert seen == list(range(oldest, last + 1))
    # Then live.
    d.call("task-create", title="live")
    m = c.next_event(10)
    assert m["seq"] == last + 1 and m["event"] == "task.created"
    # A cursor at the floor is unaffected: no cursor_expired in the reply.
    c2 = d.connect()
    rep2 = c2.call("subscribe", since=floor)
    assert "cursor_expired" not in rep2 and "oldest_seq" not in rep2
    assert c2.next_event(10)["seq"] == oldest
    # colibri watch --since below the floor says so on stderr, then prints from the oldest.
    env = dict(d.env, COLIBRI_SOCKET=d.socket)
    p = subprocess.Popen([bin_path("colibri"), "--json", "watch", "--since", "1"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        assert first["seq"] == oldest, first
    finally:
        p.terminate()
        p.wait(10)
    err = p.stderr.read()
    assert "cursor expired" in err and "from seq %d" % oldest in err, err


def test_replay_overtaken_by_compaction_is_dropped(ret):
    """A subscriber that stops reading mid-replay while gc compacts past its cursor is dropped
    (the connection closes); subscribing again from the last seq it read, it is told."""
    d, clock = ret({"events_days": 1, "interval_ms": 0})
    c = d.connect()
    big = "x" * 2000
    for i in range(1500):  # ~3 MB of events: far more than the socket buffers hold
        c.call("task-create", title="old%d" % i, body=big)
    clock.ahead(2 * DAY)
    tasks(d, 3, "new")
    sub = d.connect()
    sub.sock.sendall(b'{"id": 1, "cmd": "subscribe", "args": {"since": 0}}\n')
    rep = sub.read_msg()  # the reply comes first, then the replay
    assert rep["result"]["seq"] >= 1500 and "cursor_expired" not in rep["result"], rep
    time.sleep(1.0)  # the replay fills the socket and pauses on the unread output
    r = d.call("gc")
    assert r["events_deleted"] > 1000, r
    seen = []
    sub.sock.settimeout(10)
    while True:
        m = sub.read_msg()
        if m is None:
            break
        assert "event" in m, m
        seen.append(m["seq"])
    # What it got is whole from seq 1 on, and stops short of the compacted end: then EOF.
    assert seen == list(range(1, len(seen) + 1)) and len(seen) < r["compacted_through"], \
        (len(seen), r)
    assert "were compacted while it caught up; dropping it" in d.read_log()
    again = d.connect()
    rep = again.call("subscribe", since=seen[-1] if seen else 0)
    assert rep["cursor_expired"] is True and rep["oldest_seq"] == r["oldest_seq"], rep
    assert again.next_event(10)["seq"] == r["oldest_seq"]


def spawn_ended(d):
    a = d.call("spawn-agent", {"provider": "local", "args": ["--scenario", "text"]})
    wait_gone(d, a["id"])
    return d.call("agent-status", id=a["id"])


def session_files(d, sid):
    return sorted(glob.glob(os.path.join(d.state_dir, "sessions", sid + ".*")))


def test_agent_forget(ret):
    d, clock = ret({"interval_ms": 0})
    a = spawn_ended(d)
    sid = a["session_id"]
    assert session_files(d, sid), "the run wrote no session log"
    w = d.connect()
    w.call("subscribe", topics=["agent.forgotten"])
    r = d.call("agent-forget", id=a["id"])
    assert r == {"id": a["id"], "sessions_removed": True}
    assert session_files(d, sid) == []
    with pytest.raises(CallError) as ei:
        d.call("agent-status", id=a["id"])
    assert ei.value.code == "not_found"
    ev = w.next_event(10)
    assert ev["event"] == "agent.forgotten" and ev["data"]["id"] == a["id"]
    assert ev["data"]["by"] == "agent-forget" and ev["data"]["sessions_removed"] is True
    # Again: not_found.
    with pytest.raises(CallError) as ei:
        d.call("agent-forget", id=a["id"])
    assert ei.value.code == "not_found"
    # A running agent is refused, and keeps its row and logs.
    b = d.call("spawn-agent", {"provider": "local", "args": ["--scenario", "hang"]})
    with pytest.raises(CallError) as ei:
        d.call("agent-forget", id=b["id"])
    assert ei.value.code == "conflict" and "kill-agent" in ei.value.message
    assert d.call("agent-status", id=b["id"])["id"] == b["id"]
    d.call("kill-agent", id=b["id"], grace_ms=100)
    wait_gone(d, b["id"])
    assert d.call("agent-forget", id=b["id"])["sessions_removed"] is True
    # Two agents on one session: forgetting one keeps the logs the other's row names.
    c1 = d.call("spawn-agent", {"provider": "local", "session_id": "shared-%d" % os.getpid(),
                                 "args": ["--scenario", "text"]})
    wait_gone(d, c1["id"])
    c2 = d.call("spawn-agent", {"provider": "local", "session_id": c1["session_id"],
                                 "args": ["--scenario", "text"]})
    wait_gone(d, c2["id"])
    files = session_files(d, c1["session_id"])
    assert files
    assert d.call("agent-forget", id=c1["id"])["sessions_removed"] is False
    assert session_files(d, c1["session_id"]) == files
    assert d.call("agent-forget", id=c2["id"])["sessions_removed"] is True
    assert session_files(d, c1["session_id"]) == []
    # A registered agent may be forgotten whatever its state.
    d.call("agent-register", id="reg-1", lease_ms=60000)
    assert d.call("agent-forget", id="reg-1") == {"id": "reg-1", "sessions_removed": False}
    # (the events, each checked against schemas/events/agent.forgotten.json as it is read)
    seen = []
    while not seen or seen[-1]["data"]["id"] != "reg-1":
        seen.append(w.next_event(10))
    assert seen[-1]["data"] == {"id": "reg-1", "kind": "registered", "sessions_removed": False,
                                "by": "agent-forget"}


def test_retention_forgets_old_agents(ret):
    d, clock = ret({"agents_days": 2, "events_days": 30, "interval_ms": 0})
    old = spawn_ended(d)
    d.call("agent-register", id="reg-old", lease_ms=60000)
    # Its lease lapses: the sweep marks it lost (its last change), an hour in.
    clock.ahead(3600 * 1000)
    deadline = time.time() + 10
    while d.call("agent-status", id="reg-old")["state"] != "lost" and time.time() < deadline:
        time.sleep(0.05)
    assert d.call("agent-status", id="reg-old")["state"] == "lost"
    clock.ahead(1 * DAY)
    d.call("agent-register", id="reg-beating", lease_ms=3 * DAY)
    clock.ahead(DAY + 3600 * 1000)
    d.call("agent-heartbeat", id="reg-beating")
    young = spawn_ended(d)
    live = d.call("spawn-agent", {"provider": "local", "args": ["--scenario", "hang"]})
    clock.ahead(3600 * 1000)
    r = d.call("gc")
    assert (r["agents_forgotten"], r["sessions_removed"]) == (2, 1), r
    left = {a["id"] for a in d.call("list-agents")["items"]}
    assert old["id"] not in left and "reg-old" not in left
    assert {young["id"], live["id"], "reg-beating"} <= left
    assert session_files(d, old["session_id"]) == []
    assert session_files(d, young["session_id"])
    # The running agent is never forgotten, however old.
    clock.ahead(10 * DAY)
    r = d.call("gc")
    left = {a["id"] for a in d.call("list-agents")["items"]}
    assert live["id"] in left and young["id"] not in left
    d.call("kill-agent", id=live["id"], grace_ms=100)


def count_events(d):
    n, after = 0, None
    while True:
        args = {"limit": 5000}
        if after is not None:
            args["after"] = after
        p = d.call("events-read", args)
        n += len(p["items"])
        if not p["more"]:
            return n
        after = p["next"]


def free_bytes(d):
    """The bytes of the database's free pages: the file keeps up to a quarter of it free
    between reclaims (sqlite_store_reclaim), so the bound below is on the pages in use."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.state_dir, "colibri.sqlite"),
                         uri=True)
    try:
        return db.execute("PRAGMA freelist_count").fetchone()[0] * \
            db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()


TASKS_A_DAY = 300
TASK_ROW_BYTES = 256  # a task row and its index entries, generously


@pytest.mark.skipif(bool(STORE), reason="measures the SQLite file's pages")
def test_week_of_load_stays_bounded(ret):
    """Seven simulated days, each: the clock a day on, 300 tasks created, claimed and
    completed (about 900 events), a registered agent and a spawned one, then gc; with
    agents_days=1 and events_days=2.

    The bound stated: from day 3 on the state is steady.  After day 7 the events kept
    and the agent rows are no more than after day 3, and the database's bytes no more
    than after day 3 plus the task rows of the four days between (the board is the
    operator's record: retention keeps every task) -- without retention the events
    alone would add over 250 KiB a day."""
    d, clock = ret({"agents_days": 1, "events_days": 2, "interval_ms": 0})
    c = d.connect()
    stats = []
    for day in range(7):
        clock.ahead(DAY)
        for i in range(TASKS_A_DAY):
            t = c.call("task-create", title="d%d-%d" % (day, i))
            c.call("task-claim", agent="worker-%d" % day, id=t["id"])
            c.call("task-complete", id=t["id"], agent="worker-%d" % day)
        c.call("agent-register", id="reg-%d" % day, lease_ms=60000)
        spawn_ended(d)
        r = c.call("gc")
        stats.append((count_events(d), len(d.call("list-agents")["items"]),
                      r["db_bytes_after"] - free_bytes(d), r))
    ev3, ag3, by3, _ = stats[2]
    ev7, ag7, by7, r7 = stats[6]
    print("day: events, agents, bytes:", [s[:3] for s in stats])
    assert r7["events_deleted"] >= 3 * TASKS_A_DAY and r7["agents_forgotten"] == 2, r7
    # (a few events not of the load -- host.status -- come and go with the days)
    assert ev7 <= ev3 + 10 and ag7 <= ag3, stats
    assert by7 <= by3 + 4 * TASKS_A_DAY * TASK_ROW_BYTES, stats
    # Each day's gc forgot the agents of the day before, with their session logs.
    assert sum(s[3]["sessions_removed"] for s in stats) == 6, stats


def test_test_clock_file_must_be_the_daemons_alone(tmp_path):
    """A clock file others may write would let them expire leases and delete history."""
    clock = Clock(tmp_path / "open.clock")
    os.chmod(clock.path, 0o666)
    d = Daemon(tmp_path / "clk", env=dict(os.environ, COLIBRI_TEST_CLOCK_OFFSET_FILE=clock.path))
    with pytest.raises(RuntimeError) as ei:
        d.start()
    assert "COLIBRI_TEST_CLOCK_OFFSET_FILE" in str(ei.value)
    os.chmod(clock.path, 0o644)
    clock.set(5 * DAY)
    d = Daemon(tmp_path / "clk2", env=dict(os.environ, COLIBRI_TEST_CLOCK_OFFSET_FILE=clock.path))
    d.start()
    try:
        t = d.call("task-create", title="later")
        assert t["created_ms"] >= int(time.time() * 1000) + 5 * DAY - 60000
        assert "test clock on" in d.read_log()
        # A half-written line (no newline yet) keeps the last offset.
        with open(clock.path, "r+") as f:
            f.write("1")
            f.truncate()
        t = d.call("task-create", title="still later")
        assert t["created_ms"] >= int(time.time() * 1000) + 5 * DAY - 60000
    finally:
        d.stop()


def test_bad_policy_refused_at_start_and_kept_on_reload(ret, tmp_path):
    conf = str(tmp_path / "bad.conf")
    write_policy(conf, {"agents_days": 14, "events_dayz": 3})
    d = Daemon(tmp_path / "bad", ["--config-dir", conf])
    with pytest.raises(RuntimeError) as ei:
        d.start()
    assert "unknown key \"events_dayz\"" in str(ei.value)
    write_policy(conf, {"interval_ms": 5})
    d = Daemon(tmp_path / "bad2", ["--config-dir", conf])
    with pytest.raises(RuntimeError) as ei:
        d.start()
    assert "interval_ms" in str(ei.value)
    # A good policy, then a bad reload: the old policy stays (and says why).
    d, clock = ret({"events_days": 1, "interval_ms": 1000})
    tasks(d, 5)
    write_policy(d.conf, {"events_days": "one"})
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "retention not reloaded" not in d.read_log() and time.time() < deadline:
        time.sleep(0.05)
    assert "the old policy stays" in d.read_log()
    # The periodic run (every second) compacts once the events are old, unasked.
    before = d.call("events-read", limit=1)["last_seq"]
    clock.ahead(2 * DAY)
    tasks(d, 1, "new")
    deadline = time.time() + 15
    while time.time() < deadline and d.call("events-read")["items"][0]["seq"] <= before:
        time.sleep(0.1)
    items = d.call("events-read")["items"]
    assert items[0]["seq"] == before + 1 and items[0]["event"] == "task.created", items
    assert "retention: " in d.read_log() and "event(s) deleted" in d.read_log()


# ---- least privilege, with a real user ----

MEMBER_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for i, (cmd, args) in enumerate(json.loads(sys.argv[2]), 1):
    f.write((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            print(json.dumps(m))
            break
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                    or shutil.which("setpriv") is None,
                    reason="needs root, useradd, groupadd and setpriv")
def test_member_may_not_forget_anothers_agent_nor_gc(tmp_path):
    tag = "%d" % (os.getpid() % 100000)
    group, user = "colibri-rg" + tag, "colibri-rm" + tag
    world = tempfile.mkdtemp(prefix="colibri-retention-")
    os.chmod(world, 0o755)
    made = []
    d = None
    try:
        subprocess.run(["groupadd", "--system", group], check=True, capture_output=True)
        made.append(("groupdel", group))
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", "--user-group", "--groups", group, user],
                       check=True, capture_output=True)
        made.insert(0, ("userdel", user))
        made.insert(1, ("groupdel", user))
        d = Daemon(os.path.join(world, "state"), ["--group", group], env=sup_env()).start()
        a = spawn_ended(d)  # root's agent
        u = pwd.getpwnam(user)
        p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                            "--init-groups", "/usr/bin/python3", "-c", MEMBER_CLIENT, d.socket,
                            json.dumps([["status", {}], ["agent-forget", {"id": a["id"]}],
                                        ["gc", {}]])],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        st, forget, gc = [json.loads(line) for line in p.stdout.splitlines()]
        assert st["result"]["role"] == "member"
        assert forget["error"]["code"] == "permission_denied", forget
        assert "owner" in forget["error"]["message"]
        assert gc["error"]["code"] == "permission_denied", gc
        # Nothing happened: the row and the logs are there; root (admin) may forget it.
        assert d.call("agent-status", id=a["id"])["id"] == a["id"]
        assert session_files(d, a["session_id"])
        assert d.call("agent-forget", id=a["id"])["sessions_removed"] is True
    finally:
        if d is not None:
            d.stop()
        for cmd, name in made:
            subprocess.run([cmd, name], capture_output=True)
        shutil.rmtree(world, ignore_errors=True)
