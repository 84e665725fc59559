"""Crash safety and process hygiene of colibri-daemon.

SIGKILL while several clients write: every acknowledged write survives the
restart and the database passes PRAGMA integrity_check.  Also: one daemon
per state dir (lock), a stale socket is removed, modes of socket and dir,
SIGTERM exits 0 with the database closed, SIGHUP keeps it running.
"""
import os
import signal
import sqlite3
import stat
import subprocess
import threading
import time

from conftest import Conn, bin_path

RANK = {"open": 0, "claimed": 1, "done": 2}


def integrity(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


def writer(sock, n, acked, stop):
    """create -> claim -> complete in a loop; record each acknowledged step."""
    try:
        c = Conn(sock, timeout=10)
        while not stop.is_set():
            t = c.call("task-create", title="w%d" % n, body="x" * (n * 50))
            acked[t["id"]] = "open"
            c.call("task-claim", agent="w%d" % n, id=t["id"])
            acked[t["id"]] = "claimed"
            if t["id"] % 3 != 0:
                c.call("task-complete", id=t["id"], agent="w%d" % n, result={"n": t["id"]})
                acked[t["id"]] = "done"
    except (OSError, ConnectionError, ValueError):
        pass  # the daemon died under us: expected


def test_sigkill_under_load_keeps_acknowledged_writes(make_daemon):
    d = make_daemon()
    acked = [dict() for _ in range(6)]
    stop = threading.Event()
    threads = [threading.Thread(target=writer, args=(d.socket, i, acked[i], stop))
               for i in range(6)]
    for t in threads:
        t.start()
    # let it run until enough has been acknowledged, then kill mid-load
    deadline = time.time() + 10
    while sum(len(a) for a in acked) < 600 and time.time() < deadline:
        time.sleep(0.01)
    d.kill9()
    stop.set()
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads)
    total = sum(len(a) for a in acked)
    assert total >= 600, "too little load before the kill: %d" % total
    assert os.path.exists(d.socket), "a SIGKILLed daemon leaves its socket behind"

    d.start()  # same state dir: the stale socket must go, the lock is free
    c = d.connect()
    tasks = {t["id"]: t for t in c.call("task-list", limit=100000)["items"]}
    for a in acked:
        for tid, status in a.items():
            assert tid in tasks, "acknowledged task %d lost" % tid
            assert RANK[tasks[tid]["status"]] >= RANK[status], (tid, status, tasks[tid])
            if status == "done":
                assert tasks[tid]["result"] == {"n": tid}
    # the board still works after the crash
    t = c.call("task-create", title="after")
    assert c.call("task-claim", agent="z", id=t["id"])["status"] == "claimed"
    c.close()
    assert d.stop() == 0
    assert integrity(os.path.join(d.state_dir, "colibri.sqlite")) == [("ok",)]


def test_sigterm_finishes_in_flight_and_closes_db(make_daemon):
    d = make_daemon()
    c = Conn(d.socket)
    n = 300
    c.send_raw(b"".join(b'{"id": %d, "cmd": "task-create", "args": {"title": "t%d"}}\n' % (i, i)
                        for i in range(n)))
    c.read_msg(10)  # the daemon is working through them
    d.proc.send_signal(signal.SIGTERM)
    ok_ids = []
    while True:
        try:
            m = c.read_msg(10)
        except OSError:
            break
        if m is None:
            break
        if m.get("ok"):
            ok_ids.append(m["result"]["id"])
        else:
            assert m["error"]["code"] == "unavailable", m
    assert d.proc.wait(15) == 0
    d.log.close()
    db = os.path.join(d.state_dir, "colibri.sqlite")
    # closed cleanly: the last connection checkpointed and removed the WAL
    assert not os.path.exists(db + "-wal") or os.path.getsize(db + "-wal") == 0
    assert not os.path.exists(d.socket), "socket left after a clean exit"
    assert integrity(db) == [("ok",)]
    con = sqlite3.connect(db)
    have = {r[0] for r in con.execute("SELECT id FROM tasks")}
    con.close()
    assert set(ok_ids) <= have
    assert "shut down" in d.read_log()


def test_second_daemon_refused(make_daemon):
    d = make_daemon()
    r = subprocess.run([bin_path("colibri-daemon"), "--state-dir", d.state_dir, "--foreground"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "another colibri-daemon" in r.stderr and str(d.proc.pid) in r.stderr, r.stderr
    # the first one is untouched, its socket still there
    assert d.call("status")["pid"] == d.proc.pid


def test_stale_socket_removed_and_modes(make_daemon):
    d = make_daemon()
    d.call("task-create", title="before")
    d.kill9()
    assert stat.S_ISSOCK(os.lstat(d.socket).st_mode)
    d.start()
    assert d.call("task-list")["items"][0]["title"] == "before"
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(d.state_dir).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.join(d.state_dir, "colibri.sqlite")).st_mode) == 0o600


def test_loose_state_dir_mode_is_tightened(make_daemon):
    d = make_daemon(start=False)
    os.makedirs(d.state_dir, mode=0o777)
    os.chmod(d.state_dir, 0o777)
    d.start()
    assert stat.S_IMODE(os.stat(d.state_dir).st_mode) == 0o750


def test_not_a_socket_refused(make_daemon):
    d = make_daemon(start=False)
    os.makedirs(d.state_dir, mode=0o750)
    with open(d.socket, "w") as f:
        f.write("a file where the socket goes")
    d.start(wait=False)
    assert d.proc.wait(10) != 0
    d.log.close()
    assert "not a socket" in d.read_log()
    assert open(d.socket).read() == "a file where the socket goes"


def test_sighup_keeps_running(make_daemon):
    d = make_daemon()
    c = d.connect()
    t = c.call("task-create", title="x")
    for _ in range(3):
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.05)
    assert d.proc.poll() is None
    assert c.call("task-show", id=t["id"])["title"] == "x"
    assert "log reopened" in d.read_log()
    assert d.stop() == 0


def test_sigint_exits_zero(make_daemon):
    d = make_daemon()
    d.call("task-create", title="x")
    assert d.stop(sig=signal.SIGINT) == 0


def test_wal_is_checkpointed_under_load(make_daemon):
    """Regression: single-row reads left their statements un-reset, which kept
    a read transaction open forever, so no checkpoint ever ran: the WAL grew
    without bound and the database file stayed empty."""
    d = make_daemon()
    c = Conn(d.socket, timeout=30)
    db = os.path.join(d.state_dir, "colibri.sqlite")
    body = "x" * 1000
    for k in range(8):
        c.send_raw(b"".join(
            b'{"id": %d, "cmd": "task-create", "args": {"title": "t", "body": "%s"}}\n'
            % (i, body.encode()) for i in range(1500)))
        for _ in range(1500):
            assert c.read_msg(30)["ok"]
        c.call("status")  # reads between the writes, as the sweep timer does
        time.sleep(0.15)
    # about 20 MB were written; SQLite's auto-checkpoint keeps the WAL near 4 MB
    assert os.path.getsize(db + "-wal") < 10 * 1024 * 1024
    assert os.path.getsize(db) > 8 * 1024 * 1024
