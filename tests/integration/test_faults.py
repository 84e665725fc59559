"""Faults across the whole daemon (issue 10): killed at random points of a
write load, a state directory on a full filesystem, 1000 idle connections,
a subscriber that never reads.  COLIBRI_FAULT_ROUNDS sets the number of kill
rounds (3 in make test; make load runs 20)."""
import json
import os
import random
import resource
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import CallError, Conn, Daemon

ROUNDS = int(os.environ.get("COLIBRI_FAULT_ROUNDS", "3"))


def writer(sock, idx, acked, stop):
    """Create, claim and complete tasks; record what the daemon acknowledged."""
    try:
        c = Conn(sock, timeout=5)
        n = 0
        while not stop.is_set():
            n += 1
            r = c.request("task-create", {"title": "w%d-%d" % (idx, n), "body": "x" * random.randint(0, 2000)})
            if not r["ok"]:
                continue
            tid = r["result"]["id"]
            acked.append(("created", tid, r["result"]["title"]))
            r = c.request("task-claim", {"agent": "w%d" % idx, "id": tid})
            if r["ok"]:
                acked.append(("claimed", tid, None))
                r = c.request("task-complete", {"id": tid, "agent": "w%d" % idx, "result": n})
                if r["ok"]:
                    acked.append(("done", tid, None))
    except (OSError, ConnectionError, ValueError):
        pass  # the daemon was killed under us: expected


def check_db(path):
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, title, status FROM tasks")}
    finally:
        db.close()


def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path):
    rank = {"open": 0, "claimed": 1, "done": 2}
    d = Daemon(tmp_path / "state")
    all_acked = []
    for rnd in range(ROUNDS):
        d.start()
        acked = []
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(d.socket, i, acked, stop)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.1, 0.6))
        d.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        all_acked.extend(acked)
        tasks = check_db(os.path.join(d.state_dir, "colibri.sqlite"))
        for kind, tid, title in all_acked:
            assert tid in tasks, "round %d: acknowledged task %d missing" % (rnd, tid)
            if kind == "created":
                assert tasks[tid][0] == title
            want = {"claimed": 1, "done": 2}.get(kind, 0)
            assert rank[tasks[tid][1]] >= want, "round %d: task %d lost its %s" % (rnd, tid, kind)
    assert len(all_acked) > 0
    # and it starts cleanly once more, with everything there
    d.start()
    assert d.call("status")["counts"]["tasks"]["done"] >= sum(1 for a in all_acked if a[0] == "done")
    assert d.stop() == 0


@pytest.fixture
def tiny_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_filesystem_gives_clean_errors_and_no_corruption(tiny_fs, make_daemon):
    d = Daemon(tiny_fs / "state").start()
    try:
        c = d.connect()
        created = []
        errors = []
        for i in range(2000):
            r = c.request("task-create", {"title": "t%d" % i, "body": "y" * 20000})
            if r["ok"]:
                created.append(r["result"]["id"])
            else:
                errors.append(r["error"])
                if len(errors) >= 5:
                    break
        assert errors, "the filesystem never filled"
        assert all(e["code"] in ("unavailable", "internal") for e in errors), errors
        assert any("full" in e["message"].lower() or "disk" in e["message"].lower() for e in errors), errors
        # reads still work, and the daemon still serves others
        assert c.call("task-show", id=created[0])["id"] == created[0]
        assert d.call("status")["counts"]["tasks"]["open"] >= 1
    finally:
        rc = d.stop()
    assert rc == 0, d.read_log()
    tasks = check_db(os.path.join(d.state_dir, "colibri.sqlite"))
    for tid in created:
        assert tid in tasks


def test_writes_resume_after_space_is_freed(tiny_fs):
    filler = tiny_fs / "filler"
    d = Daemon(tiny_fs / "state").start()
    try:
        c = d.connect()
        c.call("task-create", title="before")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        r = c.request("task-create", {"title": "while full", "body": "z" * 200000})
        assert not r["ok"] and r["error"]["code"] in ("unavailable", "internal")
        filler.unlink()
        assert c.call("task-create", title="after")["title"] == "after"
    finally:
        assert d.stop() == 0


def test_1000_idle_connections_do_not_stop_others(daemon):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    try:
        for _ in range(1000):
            s = socket.socket(socket.AF_UNIX)
            s.connect(daemon.socket)
            idle.append(s)
        c = Conn(daemon.socket)
        t0 = time.time()
        for i in range(50):
            c.call("task-create", title="busy %d" % i)
        assert time.time() - t0 < 10
        assert c.call("status")["clients"] >= 1001
    finally:
        for s in idle:
            s.close()


def test_subscriber_that_never_reads_is_dropped_alone(make_daemon):
    d = make_daemon(extra_args=["--max-output", "65536"])
    lazy = socket.socket(socket.AF_UNIX)
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.connect(d.socket)
    lazy.sendall(b'{"id":1,"cmd":"subscribe","args":{}}\n')
    time.sleep(0.1)
    good = d.connect()
    good.call("subscribe")
    seen = []

    def read_good():
        deadline = time.time() + 20
        while len(seen) < 600 and time.time() < deadline:
            m = good.next_event(timeout=5)
            if m is not None and m.get("event") == "task.created":
                seen.append(m["seq"])

    reader = threading.Thread(target=read_good)
    reader.start()
    w = d.connect()
    for i in range(600):
        w.call("task-create", title="e%d" % i, body="b" * 1000)
    reader.join(30)
    assert len(seen) == 600, "the reading subscriber missed events"
    assert seen == sorted(seen)
    assert "dropping it" in d.read_log()
    # the lazy one's connection is gone: reading drains what was sent, then EOF
    lazy.settimeout(5)
    total = 0
    while True:
        chunk = lazy.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    assert total < 600 * 1000
    assert d.call("status")["counts"]["tasks"]["open"] == 600
