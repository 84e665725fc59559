"""Bounded resources on the control socket (issue 15, "Memory and slots" and
"Large replies vanish"): each finding reproduced against a real daemon and
shown fixed.

- Clients that pipeline requests and never read get back-pressure: the
  daemon stops reading their requests instead of buffering replies without
  end, so its peak RSS stays bounded (VmHWM from /proc) while they hold their
  connections, and another client is still served.
- The output held for all clients together has a cap (--max-output-total):
  a reply that would pass it is an `unavailable` error, not a drop.
- A reply over --max-reply is an `invalid_argument` error naming the limit
  (task-list of large tasks, task-show of a task larger than a small cap),
  never a silent close; the connection goes on.
- task-list and events-read page with `after`: every task and every event
  exactly once.
- A connection that holds a partial line past --line-timeout-ms is told and
  closed; an idle connection without one is not.
- One uid cannot take every slot: a real user created with useradd fills its
  --max-clients-per-uid quota (the next connection is refused with an
  error line), then the non-admin slots (refused: kept for admins), and root
  still connects.
- subscribe {"since": 0} with a backlog larger than the per-client output
  cap answers {seq} first, then delivers every event, the backlog and the
  events committed during the replay, exactly once and in order.

Figures (latency, peak RSS under the full load) are the load script's
(tests/load/bounded.py); nothing here asserts a time.
"""
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Conn, Daemon, bin_path

TAG = "%d" % (os.getpid() % 100000)


def sanitized():
    """Is the daemon an ASan build?  Its quarantine holds freed memory, so RSS bounds do not apply."""
    p = subprocess.run(["ldd", bin_path("colibri-daemon")], capture_output=True, text=True)
    return "libasan" in p.stdout


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def raw_socket(path, rcvbuf=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(path)
    return s


def push(s, data, seconds=2.0):
    """Send as much of data as the daemon takes within seconds (it may stop reading)."""
    s.setblocking(False)
    sent, deadline = 0, time.time() + seconds
    while sent < len(data) and time.time() < deadline:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    return sent


def read_until_eof(s, timeout=10.0):
    s.setblocking(True)
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def make_tasks(c, n, body_bytes, title="t"):
    """n tasks (pipelined in batches); their ids."""
    ids = []
    body = "b" * body_bytes
    for start in range(0, n, 500):
        k = min(500, n - start)
        c.send_raw(b"".join(
            (json.dumps({"id": "mk%d" % (start + i), "cmd": "task-create",
                         "args": {"title": "%s%d" % (title, start + i), "body": body}}) + "\n").encode()
            for i in range(k)))
        for _ in range(k):
            m = c.read_msg(30)
            assert m["ok"], m
            ids.append(m["result"]["id"])
    return ids


# ---- memory: pipelining clients that never read ----


def test_pipelining_clients_that_never_read_keep_memory_bounded(make_daemon):
    """Finding: 20 clients that pipeline and never read took the daemon from
    4 MB to 178 MB (each could hold --max-output, 8 MiB, of replies).  Now
    their requests stop being read: peak RSS grows by far less, every one of
    them keeps its connection, and another client is served meanwhile."""
    d = make_daemon()
    c = d.connect()
    ids = make_tasks(c, 8, 256 * 1024)  # task-show replies of 256 KiB each
    c.call("status")
    base = vm_kib(d.proc.pid, "VmRSS")
    line = b"".join(b'{"id":%d,"cmd":"task-show","args":{"id":%d}}\n' % (i, ids[i % 8])
                    for i in range(1000))  # 256 MB of replies each, if buffered
    lazy, sent = [], []
    for _ in range(20):
        s = raw_socket(d.socket, rcvbuf=4096)
        sent.append(line[:push(s, line, seconds=0.5)].count(b"\n"))
        lazy.append(s)
    time.sleep(1.0)
    st = c.call("status")  # another client is served
    assert st["clients"] == 21, "a non-reading client was dropped: %s" % st["clients"]
    peak = vm_kib(d.proc.pid, "VmHWM")
    if not sanitized():
        assert peak - base < 48 * 1024, "peak RSS grew by %d KiB (base %d KiB)" % (peak - base, base)
    # Once it reads, a client gets a reply to every request it sent: back-pressure
    # delays, never loses.
    s = lazy[0]
    s.setblocking(True)
    s.settimeout(30)
    f = s.makefile("rb")
    for i in range(sent[0]):
        m = json.loads(f.readline())
        assert m["ok"] and m["id"] == i, m
    for s in lazy:
        s.close()


def test_total_output_cap_turns_replies_into_unavailable(make_daemon):
    """With the output of all clients at --max-output-total, a reply that
    would pass it is an unavailable error naming the limit (the client keeps
    its connection); once the non-readers go, the same request succeeds."""
    d = make_daemon(extra_args=["--max-output-total", str(1 << 20), "--max-output", str(1 << 20)])
    c = d.connect()
    (tid,) = make_tasks(c, 1, 200 * 1024)
    line = b"".join(b'{"id":%d,"cmd":"task-show","args":{"id":%d}}\n' % (i, tid)
                    for i in range(200))
    lazy = []
    deadline = time.time() + 60
    r = {"ok": True}
    while r["ok"] and len(lazy) < 400 and time.time() < deadline:
        # Another non-reader, then a few looks while the daemon works through
        # its requests, until their unread replies fill the total.
        s = raw_socket(d.socket, rcvbuf=4096)
        push(s, line, seconds=0.2)
        lazy.append(s)
        for _ in range(5):
            r = c.request("task-show", id=tid)
            if not r["ok"]:
                break
            time.sleep(0.05)
    assert not r["ok"] and r["error"]["code"] == "unavailable", r
    assert "--max-output-total" in r["error"]["message"]
    assert c.call("status")["clients"] == len(lazy) + 1  # nobody was dropped
    for s in lazy:
        s.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        r = c.request("task-show", id=tid)
        if r["ok"]:
            break
        time.sleep(0.1)
    assert r["ok"], r


# ---- replies over the cap: an error naming the limit ----


def test_task_list_over_the_reply_cap_is_an_error_naming_the_limit(make_daemon):
    """Finding: task-list {"limit":100000} over large tasks built a 250 MB
    reply before dropping it.  Now the reply is built only up to --max-reply
    and refused with invalid_argument naming the limit; the connection goes
    on, and pages under the cap work."""
    d = make_daemon(extra_args=["--max-reply", str(1 << 20)])
    c = d.connect()
    make_tasks(c, 40, 64 * 1024)  # 2.6 MB of tasks
    base = vm_kib(d.proc.pid, "VmRSS")
    r = c.request("task-list", limit=100000)
    assert not r["ok"], "a 2.6 MB task-list passed a 1 MiB cap"
    assert r["error"]["code"] == "invalid_argument"
    msg = r["error"]["message"]
    assert "1048576" in msg and "--max-reply" in msg and "after" in msg, msg
    assert sanitized() or vm_kib(d.proc.pid, "VmHWM") - base < 16 * 1024
    page = c.call("task-list", limit=10)
    assert len(page["items"]) == 10 and page["more"] is True
    ev = c.request("events-read", limit=100000)
    assert not ev["ok"] and ev["error"]["code"] == "invalid_argument"
    assert "--max-reply" in ev["error"]["message"]
    assert c.call("status")["clients"] == 1


def test_a_reply_over_the_output_cap_is_an_error_not_a_silent_close(make_daemon):
    """Finding: a reply over the output cap closed the client without a word."""
    d = make_daemon()
    (tid,) = make_tasks(d.connect(), 1, 100 * 1024)
    d.stop()
    d = make_daemon(extra_args=["--max-output", "65536"])  # the same state, a smaller cap
    c = d.connect()
    r = c.request("task-show", id=tid)
    assert not r["ok"] and r["error"]["code"] == "invalid_argument", r
    assert "65536" in r["error"]["message"] and "--max-reply" in r["error"]["message"]
    assert c.call("task-list", limit=1, after=tid)["items"] == []  # still connected
    assert c.call("status")["clients"] == 1


def test_an_oversize_write_reply_changes_nothing(make_daemon):
    """The reply to a write is refused with the write: a task-update whose
    reply passes the cap leaves the task as it was (nothing half done)."""
    d = make_daemon(extra_args=["--max-output", "65536"])
    c = d.connect()
    t = c.call("task-create", title="small")
    r = c.request("task-update", id=t["id"], body="x" * 70000)
    assert not r["ok"] and r["error"]["code"] == "invalid_argument", r
    assert c.call("task-show", id=t["id"])["body"] == ""


# ---- paging ----


def test_task_list_pages_return_every_task_once(make_daemon):
    d = make_daemon()
    c = d.connect()
    ids = make_tasks(c, 1234, 10)
    c.call("task-update", id=ids[5], status="cancelled")
    seen, after, pages = [], 0, 0
    while True:
        p = c.call("task-list", after=after, limit=100)
        seen += [t["id"] for t in p["items"]]
        pages += 1
        if not p["more"]:
            break
        assert p["next"] == p["items"][-1]["id"]
        after = p["next"]
    assert seen == sorted(ids) and pages == 13
    # with a filter: the cancelled one is not among the open ones
    opened, after = [], 0
    while True:
        p = c.call("task-list", status="open", after=after, limit=500)
        opened += [t["id"] for t in p["items"]]
        if not p["more"]:
            break
        after = p["next"]
    assert opened == [i for i in sorted(ids) if i != ids[5]]
    last = c.call("task-list", after=max(ids))
    assert last == {"items": [], "next": max(ids), "more": False}
    r = c.request("task-list", after=0, ready=True)
    assert r["ok"]  # after 0 is no cursor
    r = c.request("task-list", after=3, ready=True)
    assert r["error"]["code"] == "invalid_argument" and "ready" in r["error"]["message"]
    assert c.request("task-list", after=-1)["error"]["code"] == "invalid_argument"


def test_events_read_pages_return_every_event_once(make_daemon):
    d = make_daemon()
    c = d.connect()
    make_tasks(c, 1500, 10)
    last = c.call("status")["last_seq"]
    seen, after = [], 0
    while True:
        p = c.call("events-read", after=after, limit=128)
        seen += [e["seq"] for e in p["items"]]
        if not p["more"]:
            break
        assert p["next"] == p["items"][-1]["seq"]
        after = p["next"]
    assert seen == list(range(1, last + 1))
    # since is the older name of the same cursor
    assert c.call("events-read", since=10, limit=5)["items"] == \
        c.call("events-read", after=10, limit=5)["items"]
    r = c.request("events-read", since=1, after=1)
    assert r["error"]["code"] == "invalid_argument"
    # a topic filter: more is exact (no empty last page)
    tc, after = [], 0
    while True:
        p = c.call("events-read", after=after, limit=1000, topics=["task.created"])
        tc += p["items"]
        if not p["more"]:
            break
        after = p["next"]
    assert len(tc) == 1500 and len({e["seq"] for e in tc}) == 1500


# ---- the partial-line timeout ----


def test_a_partial_line_times_out_with_an_error(make_daemon):
    d = make_daemon(extra_args=["--line-timeout-ms", "500"])
    idle = d.connect()  # holds no partial line: left alone
    s = raw_socket(d.socket)
    s.sendall(b'{"id": 1, "cmd": "sta')
    data = read_until_eof(s, timeout=10)
    m = json.loads(data.splitlines()[0])
    assert m["ok"] is False and m["error"]["code"] == "bad_request"
    assert "--line-timeout-ms" in m["error"]["message"]
    time.sleep(0.8)
    assert idle.call("status")["clients"] == 1
    assert "partial line" in d.read_log()


def test_a_client_that_keeps_its_line_short_is_not_timed_out(make_daemon):
    d = make_daemon(extra_args=["--line-timeout-ms", "400"])
    c = d.connect()
    for _ in range(6):  # each line completes well within the timeout
        c.send_raw(b'{"id": 1, "cmd": ')
        time.sleep(0.1)
        c.send_raw(b'"status"}\n')
        assert c.read_msg(5)["ok"]
        time.sleep(0.2)


# ---- connection slots: per-uid quota, admin slots ----

HOLDER = r"""
import json, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    try:
        s.sendall(b'{"id": 1, "cmd": "status"}\n')
    except OSError:
        pass  # refused: the daemon may have closed it already, after its error line
    f = s.makefile("rb")
    line = f.readline()
    print(json.dumps(json.loads(line) if line else None), flush=True)
    held.append((s, f))
sys.stdin.readline()  # hold the connections until told
"""

needs_users = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                                 or shutil.which("setpriv") is None,
                                 reason="needs root, useradd and setpriv")


@pytest.fixture(scope="module")
def user():
    """A real user and a group holding it (the socket's --group)."""
    g, name = "colibri-bg" + TAG, "colibri-bu" + TAG
    subprocess.run(["groupadd", "--system", g], check=True, capture_output=True)
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", "--groups", g, name], check=True, capture_output=True)
        try:
            yield {"group": g, "pw": pwd.getpwnam(name)}
        finally:
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)
    finally:
        subprocess.run(["groupdel", g], capture_output=True)


@pytest.fixture
def world_dir():
    d = tempfile.mkdtemp(prefix="colibri-bounded-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Holder:
    """n connections opened as user u, each answering one status; held until stop()."""

    def __init__(self, u, sock, n):
        self.p = subprocess.Popen(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                                   "--init-groups", "/usr/bin/python3", "-c", HOLDER, sock, str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.replies = [json.loads(self.p.stdout.readline()) for _ in range(n)]

    def stop(self):
        self.p.stdin.write("\n")
        self.p.stdin.close()
        self.p.wait(10)


def start_daemon(world_dir, *args):
    return Daemon(os.path.join(world_dir, "state"), list(args)).start()


@needs_users
def test_one_uid_cannot_hold_every_slot(user, world_dir):
    """Finding: holding every connection slot locked out root.  A user's
    connections past --max-clients-per-uid are refused with an error line;
    root still connects."""
    d = start_daemon(world_dir, "--group", user["group"], "--max-clients", "20",
                     "--max-clients-per-uid", "3")
    try:
        h = Holder(user["pw"], d.socket, 4)
        try:
            assert all(r["ok"] for r in h.replies[:3]), h.replies
            r = h.replies[3]
            assert r["ok"] is False and r["error"]["code"] == "unavailable"
            assert "uid %d" % user["pw"].pw_uid in r["error"]["message"]
            assert "--max-clients-per-uid" in r["error"]["message"]
            root = d.connect()
            assert root.call("status")["clients"] == 4
        finally:
            h.stop()
    finally:
        d.stop()


@needs_users
def test_admin_slots_keep_root_in(user, world_dir):
    """The last --admin-slots of --max-clients are for admins: a user who
    takes every other slot is refused the next one, root gets it."""
    d = start_daemon(world_dir, "--group", user["group"], "--max-clients", "6",
                     "--admin-slots", "2", "--max-clients-per-uid", "10")
    try:
        h = Holder(user["pw"], d.socket, 5)
        try:
            assert all(r["ok"] for r in h.replies[:4]), h.replies
            r = h.replies[4]
            assert r["ok"] is False and r["error"]["code"] == "unavailable"
            assert "kept for admins" in r["error"]["message"]
            a, b = d.connect(), d.connect()  # root: the two admin slots
            assert a.call("status")["clients"] == 6
            b.call("status")
            over = Conn(d.socket)
            m = over.read_msg(5)
            assert m["error"]["code"] == "unavailable" and "--max-clients" in m["error"]["message"]
            over.close()
        finally:
            h.stop()
    finally:
        d.stop()


def test_admin_slots_must_leave_room():
    d = tempfile.mkdtemp(prefix="colibri-bounded-")
    try:
        p = subprocess.run([bin_path("colibri-daemon"), "--state-dir", os.path.join(d, "s"),
                            "--foreground", "--max-clients", "4", "--admin-slots", "4"],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode != 0 and "--admin-slots" in p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- subscribe since 0 over a long backlog ----


def test_subscribe_since_zero_over_a_large_backlog(make_daemon):
    """Finding: subscribe {"since":0} with a backlog over the 8 MiB output cap
    returned nothing, not even {seq}.  Now {seq} comes first, then every
    stored event and every event committed during the replay, exactly once
    and in order, and then live events."""
    d = make_daemon()
    w = d.connect()
    make_tasks(w, 20000, 400)  # ~11 MB of task.created events
    sub = Conn(d.socket, timeout=30)
    sub.send_raw(b'{"id": "s", "cmd": "subscribe", "args": {"since": 0}}\n')
    first = sub.read_msg(30)
    assert first.get("id") == "s" and first["ok"], "the first message is not the reply: %r" % first
    backlog_last = first["result"]["seq"]
    assert backlog_last >= 20000
    done = threading.Event()

    def write_more():
        c = Conn(d.socket)
        for i in range(300):  # commits while the subscriber is still catching up
            c.call("task-create", title="during%d" % i)
        c.close()
        done.set()

    t = threading.Thread(target=write_more)
    t.start()
    seqs, deadline, final = [], time.time() + 120, None
    while time.time() < deadline:
        if final is None and done.is_set():
            final = d.call("status")["last_seq"]  # the writer is done: nothing later but host.*
        if final is not None and seqs and seqs[-1] >= final:
            break
        try:
            m = sub.read_msg(1.0)
        except socket.timeout:
            continue
        assert m is not None and "event" in m, m
        seqs.append(m["seq"])
    t.join(30)
    assert final >= backlog_last + 300
    assert seqs == list(range(1, final + 1)), "gap or duplicate"
    # and live from there on
    w.call("task-create", title="after")
    m = sub.read_msg(10)
    assert m["event"] == "task.created" and m["seq"] == final + 1


def test_subscribers_that_do_not_read_their_backlog_cost_little(make_daemon):
    """Subscribers replaying a long backlog without reading hold one small
    page each; others are still served and a reading subscriber catches up."""
    d = make_daemon()
    w = d.connect()
    make_tasks(w, 6000, 400)
    base = vm_kib(d.proc.pid, "VmRSS")
    lazy = []
    for _ in range(30):
        s = raw_socket(d.socket, rcvbuf=4096)
        s.sendall(b'{"id": 1, "cmd": "subscribe", "args": {"since": 0}}\n')
        lazy.append(s)
    time.sleep(1.0)
    assert w.call("status")["clients"] == 31
    assert sanitized() or vm_kib(d.proc.pid, "VmHWM") - base < 32 * 1024
    reader = Conn(d.socket, timeout=30)
    last = reader.call("subscribe", topics=["task.created"], since=0)["seq"]
    got = []
    while len(got) < 6000:
        got.append(reader.next_event(30)["data"]["title"])
    assert got == ["t%d" % i for i in range(6000)]
    assert last >= 6000
    for s in lazy:
        s.close()


def test_a_subscriber_that_leaves_mid_replay_stops_it(make_daemon):
    d = make_daemon()
    w = d.connect()
    make_tasks(w, 3000, 100)
    s = raw_socket(d.socket, rcvbuf=4096)
    s.sendall(b'{"id": 1, "cmd": "subscribe", "args": {"since": 0}}\n')
    time.sleep(0.3)
    s.close()
    deadline = time.time() + 10
    while w.call("status")["clients"] != 1 and time.time() < deadline:
        time.sleep(0.05)
    assert w.call("status")["clients"] == 1
    assert w.call("task-create", title="still")["title"] == "still"
