"""Bad input on the control socket: every malformed request is answered with
a clear error, costs its sender nothing more (except an over-long line,
which costs the connection), and never disturbs other clients.
"""
import json
import os
import resource
import socket
import time

import pytest

from conftest import Conn


def raw_reply(conn, data, timeout=5):
    conn.send_raw(data)
    return conn.read_msg(timeout)


def assert_error(m, code, rid=None, words=()):
    assert m is not None, "no reply"
    assert m["ok"] is False and m["id"] == rid, m
    assert m["error"]["code"] == code, m
    msg = m["error"]["message"]
    assert isinstance(msg, str) and len(msg) > 5
    for w in words:
        assert w in msg, (w, msg)


def still_serving(daemon, conn=None):
    c = conn or Conn(daemon.socket)
    t = c.call("task-create", title="still here")
    assert c.call("task-show", id=t["id"])["title"] == "still here"
    if conn is None:
        c.close()


@pytest.mark.parametrize("line,code,words", [
    (b"{not json", "bad_request", ["JSON"]),
    (b"[1, 2, 3]", "bad_request", ["object"]),
    (b"\"just a string\"", "bad_request", []),
    (b"42", "bad_request", []),
    (b"{}", "bad_request", ["cmd"]),
    (b'{"cmd": 7}', "bad_request", ["cmd"]),
    (b'{"id": 1.5, "cmd": "status"}', "bad_request", ["id"]),
    (b'{"id": [1], "cmd": "status"}', "bad_request", ["id"]),
    (b'{"cmd": "status", "args": [1]}', "bad_request", ["args"]),
    (b'{"cmd": "status", "args": "x"}', "bad_request", ["args"]),
    (b'{"cmd": "status"} trailing', "bad_request", []),
])
def test_malformed_envelope(daemon, line, code, words):
    c = daemon.connect()
    assert_error(raw_reply(c, line + b"\n"), code, None, words)
    # the same connection keeps working
    still_serving(daemon, c)


@pytest.mark.parametrize("rid", [7, "req-7", None, 0, -3, "", "ünï"])
def test_id_echoed(daemon, rid):
    c = daemon.connect()
    m = raw_reply(c, (json.dumps({"id": rid, "cmd": "status"}) + "\n").encode())
    assert m["ok"] is True and m["id"] == rid and "id" in m
    m = raw_reply(c, (json.dumps({"id": rid, "cmd": "no-such-thing"}) + "\n").encode())
    assert_error(m, "unknown_command", rid, ["no-such-thing"])
    m = raw_reply(c, (json.dumps({"id": rid, "cmd": "task-show", "args": {"id": "x"}}) + "\n").encode())
    assert_error(m, "invalid_argument", rid, ["id"])


def test_missing_id_gives_null(daemon):
    c = daemon.connect()
    m = raw_reply(c, b'{"cmd": "status"}\n')
    assert m["ok"] is True and m["id"] is None


@pytest.mark.parametrize("cmd,args,words", [
    ("task-create", {}, ["missing", "title"]),
    ("task-create", {"title": 5}, ["title", "string"]),
    ("task-create", {"title": "x", "priority": "high"}, ["priority", "integer"]),
    ("task-create", {"title": "x", "priority": 1.5}, ["priority"]),
    ("task-create", {"title": "x", "depends_on": 3}, ["depends_on", "array"]),
    ("task-create", {"title": "x", "depends_on": ["a"]}, ["depends_on"]),
    ("task-create", {"title": "x", "titel": "typo"}, ["unknown", "titel"]),
    ("task-show", {"id": "1"}, ["id"]),
    ("task-show", {"id": True}, ["id"]),
    ("task-show", {"id": -1}, ["id"]),
    ("task-claim", {"agent": ["a"]}, ["agent"]),
    ("task-claim", {"agent": "a", "lease_ms": 1}, ["lease_ms"]),
    ("task-list", {"ready": "yes"}, ["ready", "boolean"]),
    ("task-list", {"limit": -5}, ["limit"]),
    ("subscribe", {"since": "0"}, ["since"]),
    ("agent-heartbeat", {}, ["missing", "id"]),
    ("status", {"verbose": True}, ["unknown", "verbose"]),
])
def test_bad_arguments(daemon, cmd, args, words):
    c = daemon.connect()
    m = c.request(cmd, args)
    assert_error(m, "invalid_argument", m["id"], words)
    still_serving(daemon, c)


def test_unknown_command(daemon):
    c = daemon.connect()
    m = c.request("task-explode", {})
    assert_error(m, "unknown_command", m["id"], ["task-explode"])
    # a very long command name is quoted, not echoed whole
    m = c.request("x" * 5000, {})
    assert_error(m, "unknown_command", m["id"])
    assert len(m["error"]["message"]) < 300


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x00",
    b"\xff\xfe\xfd binary \x80\x81",
    b'{"cmd": "status", "args": {"x": "\xc3\x28"}}',
    b'{"cmd": "sta\x00tus"}',
    b'{"id": "\xed\xa0\x80", "cmd": "status"}',
    bytes(range(256)).replace(b"\n", b""),
    b'{"cmd": "task-create", "args": {"title": "a\\u0000b"}}',
])
def test_binary_garbage(daemon, garbage):
    c = daemon.connect()
    m = raw_reply(c, garbage + b"\n")
    assert m is not None and m["ok"] is False, m
    assert m["error"]["code"] in ("bad_request", "invalid_argument", "unknown_command"), m
    still_serving(daemon, c)


def test_utf8_round_trip(daemon):
    c = daemon.connect()
    title = "Tâche «ünïcødé» \u2603 \U0001F426"
    t = c.call("task-create", title=title, body="line1\nline2\ttab \"quoted\" \\")
    again = c.call("task-show", id=t["id"])
    assert again["title"] == title and again["body"] == "line1\nline2\ttab \"quoted\" \\"


def test_blank_lines_and_crlf(daemon):
    c = daemon.connect()
    m = raw_reply(c, b"\n\n\r\n" + b'{"id": 1, "cmd": "status"}\r\n')
    assert m["ok"] is True and m["id"] == 1


def test_line_over_limit_closes_connection(make_daemon):
    d = make_daemon(extra_args=["--max-line", "4096"])
    other = d.connect()
    c = d.connect()
    # exactly at the limit is fine
    pad = 4096 - len(json.dumps({"id": 1, "cmd": "task-create", "args": {"title": ""}}))
    line = json.dumps({"id": 1, "cmd": "task-create", "args": {"title": "x" * pad}})
    assert len(line) == 4096
    m = raw_reply(c, line.encode() + b"\n")
    assert m["ok"] is True, m
    # one byte over (no newline in sight) costs the connection
    c.send_raw(b'{"id": 2, "cmd": "task-create", "args": {"title": "' + b"y" * 8192)
    m = c.read_msg(5)
    assert_error(m, "bad_request", None, ["4096"])
    # then EOF: the daemon closed it
    try:
        assert c.read_msg(5) is None
    except ConnectionResetError:
        pass
    still_serving(d, other)
    still_serving(d)


def test_client_disconnects_mid_line(daemon):
    for i in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(daemon.socket)
        s.sendall(b'{"id": 1, "cmd": "task-create", "args": {"title": "half')
        if i % 2:
            s.shutdown(socket.SHUT_WR)
        s.close()
    still_serving(daemon)
    # nothing half-read was executed
    titles = [t["title"] for t in daemon.call("task-list")["items"]]
    assert titles == ["still here"]


def test_client_gone_before_reply(daemon):
    """Requests whose sender left before the reply: executed, nobody hurt."""
    for i in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(daemon.socket)
        s.sendall(b''.join(b'{"id": %d, "cmd": "task-create", "args": {"title": "gone"}}\n' % j
                           for j in range(50)))
        s.close()
    still_serving(daemon)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_500_idle_connections(daemon):
    if raise_nofile(2048) < 700:
        pytest.skip("cannot raise RLIMIT_NOFILE")
    idle = []
    try:
        for i in range(500):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.socket)
            idle.append(s)
        # a few of them have sent half a request and stay silent
        for s in idle[::50]:
            s.sendall(b'{"id": 1, "cmd": "sta')
        c = Conn(daemon.socket)
        t0 = time.time()
        for i in range(50):
            still_serving(daemon, c)
        assert time.time() - t0 < 5
        assert c.call("status")["clients"] >= 501
        # the idle ones still work when they speak
        for s in idle[1::100]:
            s.sendall(b'{"id": 9, "cmd": "status"}\n')
            buf = b""
            s.settimeout(5)
            while b"\n" not in buf:
                buf += s.recv(65536)
            assert json.loads(buf.split(b"\n")[0])["ok"] is True
        c.close()
    finally:
        for s in idle:
            s.close()
    deadline = time.time() + 5
    while time.time() < deadline and daemon.call("status")["clients"] > 1:
        time.sleep(0.05)
    assert daemon.call("status")["clients"] == 1


def test_max_clients(make_daemon):
    d = make_daemon(extra_args=["--max-clients", "4"])
    held = [d.connect() for _ in range(3)]
    for c in held:
        c.call("status")
    extra = Conn(d.socket)  # the 4th is fine
    extra.call("status")
    over = Conn(d.socket)  # the 5th is refused
    m = over.read_msg(5)
    assert_error(m, "unavailable", None, ["clients"])
    extra.close()
    over.close()
    held[0].call("status")


def test_slow_reader_does_not_block_others(make_daemon):
    """A subscriber that never reads is dropped at the output cap."""
    d = make_daemon(extra_args=["--max-output", "65536"])
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.connect(d.socket)
    lazy.sendall(b'{"id": 1, "cmd": "subscribe", "args": {}}\n')
    c = d.connect()
    body = "b" * 2000
    for i in range(300):
        c.call("task-create", title="t%d" % i, body=body)
    assert c.call("status")["clients"] == 1
    assert "dropping" in d.read_log()
    lazy.close()


def test_clients_beyond_the_limit_get_unavailable_with_a_low_nofile(make_daemon):
    """Regression: started with the common soft RLIMIT_NOFILE of 1024, the
    daemon ran out of descriptors before --max-clients (1024 by default), so
    connections beyond ~1010 were closed without a word.  It now raises its
    soft limit (to the hard one) at start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1400:
        pytest.skip("hard RLIMIT_NOFILE below 1400")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        d = make_daemon()  # inherits the soft limit of 1024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    conns = []
    refused = served = 0
    try:
        for i in range(1100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            conns.append(s)
        for s in conns:
            s.settimeout(5)
            buf = b""
            try:
                s.sendall(b'{"id": 1, "cmd": "status"}\n')
            except OSError:
                pass  # refused ones may be closed already; their error line waits
            try:
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            except OSError:
                pass
            assert buf, "a connection closed without a word"
            m = json.loads(buf.split(b"\n")[0])
            if m["ok"]:
                served += 1
            else:
                assert m["error"]["code"] == "unavailable", m
                refused += 1
    finally:
        for s in conns:
            s.close()
    assert served == 1024 and refused == 76, (served, refused)
    still_serving(d)
