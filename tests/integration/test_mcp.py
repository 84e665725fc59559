"""colibri-mcp as an MCP stdio server, driven with raw JSON-RPC lines.

Every JSON-RPC error the transport defines, the lifecycle (version
negotiation, ping, notifications without replies, ids echoed exactly), the
daemon being down and coming back, over-long lines, and that the process
survives all of it: each test ends by checking a ping still round-trips.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import Daemon, bin_path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mcp"))
from mcp_helpers import McpProc, result_text  # noqa: E402

VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]


@pytest.fixture
def mcp_factory(tmp_path):
    made = []

    def make(socket, *args):
        m = McpProc(bin_path("colibri-mcp"), ["--socket", str(socket)] + list(args),
                    log_path=str(tmp_path / ("mcp%d.log" % len(made))))
        made.append(m)
        return m

    yield make
    for m in made:
        if m.proc.poll() is None:
            m.close()


@pytest.fixture
def mcp(daemon, mcp_factory):
    return mcp_factory(daemon.socket)


@pytest.fixture
def mcp_nodaemon(tmp_path, mcp_factory):
    return mcp_factory(tmp_path / "absent.sock")


# ---- lifecycle --------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_initialize_echoes_known_versions(mcp_nodaemon, version):
    r = mcp_nodaemon.initialize(version)["result"]
    assert r["protocolVersion"] == version
    assert r["serverInfo"]["name"] == "colibri-mcp"
    assert r["serverInfo"]["version"]
    assert "tools" in r["capabilities"]


@pytest.mark.parametrize("version", ["1999-01-01", "2025-12-31", ""])
def test_initialize_answers_latest_for_unknown_versions(mcp_nodaemon, version):
    assert mcp_nodaemon.initialize(version)["result"]["protocolVersion"] == "2025-11-25"
    assert mcp_nodaemon.alive()


def test_ping(mcp_nodaemon):
    r = mcp_nodaemon.request("ping", rid=7)
    assert r == {"jsonrpc": "2.0", "id": 7, "result": {}}


def test_ids_are_echoed_exactly(mcp_nodaemon):
    m = mcp_nodaemon
    for rid in ["abc", "", "ü-✓", 0, -5, 9007199254740993, "9"]:
        m.send({"jsonrpc": "2.0", "id": rid, "method": "ping"})
        line = m.recv_line()
        assert json.loads(line)["id"] == rid
        assert type(json.loads(line)["id"]) is type(rid)
    m.send_raw(b'{"jsonrpc":"2.0","id":9223372036854775807,"method":"ping"}\n')
    assert b'"id":9223372036854775807' in m.recv_line()


def test_notifications_get_no_reply(mcp_nodaemon):
    m = mcp_nodaemon
    for method in ["notifications/initialized", "notifications/cancelled", "notifications/progress",
                   "notifications/roots/list_changed", "notifications/whatever", "not/a/notification"]:
        m.send({"jsonrpc": "2.0", "method": method, "params": {"requestId": 12345}})
    m.send({"jsonrpc": "2.0", "method": "notifications/cancelled"})
    m.send({"jsonrpc": "2.0", "id": "after", "method": "ping"})
    assert m.recv()["id"] == "after"  # nothing was sent before this


def test_meta_and_unknown_fields_are_accepted(mcp, daemon):
    m = mcp
    m.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "extra": [1, 2],
            "params": {"protocolVersion": "2025-06-18", "capabilities": {"x-custom": {}},
                       "clientInfo": {"name": "t", "version": "1", "extra": True}, "_meta": {"a": 1}}})
    assert m.reply(1)["result"]["protocolVersion"] == "2025-06-18"
    r = m.request("tools/list", {"_meta": {"progressToken": "t"}, "cursor": None, "unknown": 1})
    assert len(r["result"]["tools"]) == 12  # no spawn_local without --allow-spawn
    r = m.request("tools/call", {"name": "task_create", "arguments": {"title": "t"},
                                 "_meta": {"progressToken": 5}, "zzz": 1})
    assert r["result"]["structuredContent"]["title"] == "t"
    assert m.alive()


def test_requests_before_initialize_are_served(mcp_nodaemon):
    assert "tools" in mcp_nodaemon.request("tools/list")["result"]


def test_exits_zero_on_eof(mcp_nodaemon):
    mcp_nodaemon.initialize()
    assert mcp_nodaemon.close() == 0


def test_exits_zero_on_eof_without_trailing_newline(mcp_nodaemon):
    mcp_nodaemon.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
    mcp_nodaemon.proc.stdin.close()
    assert mcp_nodaemon.recv()["id"] == 1
    assert mcp_nodaemon.close() == 0


def test_exits_zero_on_sigterm(mcp_nodaemon):
    assert mcp_nodaemon.alive()
    mcp_nodaemon.proc.send_signal(signal.SIGTERM)
    assert mcp_nodaemon.proc.wait(10) == 0


def test_crlf_lines_and_blank_lines(mcp_nodaemon):
    mcp_nodaemon.send_raw(b'\n   \n{"jsonrpc":"2.0","id":3,"method":"ping"}\r\n')
    assert mcp_nodaemon.recv() == {"jsonrpc": "2.0", "id": 3, "result": {}}


# ---- JSON-RPC errors ------------------------------------------------------------

def expect_error(m, raw, code, rid=None):
    m.send_raw(raw if raw.endswith(b"\n") else raw + b"\n")
    r = m.recv()
    assert r is not None, "no answer to %r" % raw
    assert "error" in r, r
    assert r["error"]["code"] == code, (raw, r)
    assert isinstance(r["error"]["message"], str) and r["error"]["message"]
    assert r["id"] == rid, (raw, r)
    assert "result" not in r
    return r


@pytest.mark.parametrize("raw", [b"not json", b'{"jsonrpc":"2.0",', b"{'a':1}", b'{"jsonrpc":"2.0","id":1,"method":"ping"',
                                 b"\xff\xfe garbage", b'{"a":1}{"b":2}'])
def test_parse_error(mcp_nodaemon, raw):
    expect_error(mcp_nodaemon, raw, -32700, None)
    assert mcp_nodaemon.alive()


@pytest.mark.parametrize("raw,rid", [
    (b'{"jsonrpc":"1.0","id":5,"method":"ping"}', 5),
    (b'{"id":6,"method":"ping"}', 6),
    (b'{"jsonrpc":2.0,"id":"s","method":"ping"}', "s"),
    (b'{"jsonrpc":"2.0","id":7,"method":42}', 7),
    (b'{"jsonrpc":"2.0","id":8}', 8),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', None),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', None),
    (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', None),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', None),
    (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', None),
    (b'{"jsonrpc":"2.0","id":9,"method":"ping","params":"str"}', 9),
    (b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]', None),
    (b"[]", None),
    (b'"a string"', None),
    (b"42", None),
    (b"null", None),
])
def test_invalid_request(mcp_nodaemon, raw, rid):
    expect_error(mcp_nodaemon, raw, -32600, rid)
    assert mcp_nodaemon.alive()


def test_batch_is_refused_whatever_the_version(mcp_nodaemon):
    mcp_nodaemon.initialize("2025-03-26")
    r = expect_error(mcp_nodaemon, b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600)
    assert "batch" in r["error"]["message"]
    assert mcp_nodaemon.alive()


def test_server_discover_before_initialize_is_method_not_found(mcp_nodaemon):
    expect_error(mcp_nodaemon, b'{"jsonrpc":"2.0","id":1,"method":"server/discover"}', -32601, 1)
    assert mcp_nodaemon.initialize()["result"]["protocolVersion"] == "2025-11-25"


@pytest.mark.parametrize("method", ["server/discover", "resources/list", "prompts/list", "logging/setLevel",
                                    "tools/unknown", "", "PING"])
def test_method_not_found(mcp_nodaemon, method):
    mcp_nodaemon.initialize()
    raw = json.dumps({"jsonrpc": "2.0", "id": "m", "method": method, "params": {}}).encode()
    expect_error(mcp_nodaemon, raw, -32601, "m")
    assert mcp_nodaemon.alive()


@pytest.mark.parametrize("params", [
    {},
    {"name": 42},
    {"name": "no_such_tool"},
    {"name": "task_list", "arguments": "x"},
    {"name": "task_list", "arguments": [1]},
    {"name": "everything__echo"},
    {"name": "task_list__x"},
])
def test_tools_call_bad_params(mcp_nodaemon, params):
    mcp_nodaemon.initialize()
    raw = json.dumps({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": params}).encode()
    expect_error(mcp_nodaemon, raw, -32602, 11)
    assert mcp_nodaemon.alive()


@pytest.mark.parametrize("raw", [
    b'{"jsonrpc":"2.0","id":12,"method":"initialize","params":{}}',
    b'{"jsonrpc":"2.0","id":12,"method":"initialize","params":{"protocolVersion":20250618}}',
    b'{"jsonrpc":"2.0","id":12,"method":"initialize"}',
    b'{"jsonrpc":"2.0","id":12,"method":"tools/call","params":[1,2]}',
    b'{"jsonrpc":"2.0","id":12,"method":"tools/call"}',
    b'{"jsonrpc":"2.0","id":12,"method":"tools/list","params":[]}',
])
def test_other_bad_params(mcp_nodaemon, raw):
    expect_error(mcp_nodaemon, raw, -32602, 12)
    assert mcp_nodaemon.alive()


def test_line_over_the_limit(mcp_factory, tmp_path):
    m = mcp_factory(tmp_path / "absent.sock", "--max-line", "1024")
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 5000}}).encode()
    r = expect_error(m, big, -32600, None)
    assert "too long" in r["error"]["message"] and "1024" in r["error"]["message"]
    m.send_raw(b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"' + b"y" * 900 + b'"}}\n')
    assert m.recv()["id"] == 2


def test_line_over_the_default_limit_of_4_mib(mcp_nodaemon):
    big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * (5 << 20) + b'"}}'
    r = expect_error(mcp_nodaemon, big, -32600, None)
    assert str(4 << 20) in r["error"]["message"]
    big_ok = b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"' + b"x" * (3 << 20) + b'"}}\n'
    mcp_nodaemon.send_raw(big_ok)
    assert mcp_nodaemon.recv()["id"] == 2


def test_survives_a_storm_of_bad_lines(mcp_nodaemon):
    m = mcp_nodaemon
    bad = [b"{", b"[]", b"1", b'{"jsonrpc":"2.0","id":1,"method":7}', b"\x00\x01", b'{"jsonrpc":"2.0","id":2,"method":"x"}']
    for i in range(200):
        m.send_raw(bad[i % len(bad)] + b"\n")
    for i in range(200):
        assert "error" in m.recv()
    assert m.alive()


# ---- tools over the daemon ------------------------------------------------------

OWN_TOOLS = {"task_create", "task_list", "task_show", "task_ready", "task_claim", "task_update",
             "task_complete", "task_release", "agents_list", "agent_status", "skills_list", "skill_show"}


@pytest.mark.parametrize("allow_spawn", [False, True])
def test_tools_list_is_small_and_complete(tmp_path, mcp_factory, allow_spawn):
    """The spawning tool (spawn_local) is listed only with --allow-spawn."""
    flag = ["--allow-spawn"] if allow_spawn else []
    line_size = int(subprocess.run([bin_path("colibri-mcp")] + flag + ["--list-size"],
                                   capture_output=True, text=True, check=True).stdout)
    m = mcp_factory(tmp_path / "absent.sock", *flag)
    m.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    line = m.recv_line()
    tools = json.loads(line)["result"]["tools"]
    assert len(line) == line_size
    assert len(line) < 6 * 1024, "tools/list answer is %d bytes" % len(line)
    assert {t["name"] for t in tools} == OWN_TOOLS | ({"spawn_local"} if allow_spawn else set())
    for t in tools:
        assert t["inputSchema"]["type"] == "object"
        assert t["outputSchema"]["type"] == "object"
        assert 0 < len(t["description"]) <= 60


def test_tool_result_shape(mcp):
    r = mcp.call("task_create", {"title": "shape", "body": "b", "priority": 2, "depends_on": None})["result"]
    sc = r["structuredContent"]
    assert sc["title"] == "shape" and sc["priority"] == 2 and sc["status"] == "open"
    assert "isError" not in r or r["isError"] is False
    assert json.loads(result_text(r)) == sc
    lst = mcp.call("task_list")["result"]["structuredContent"]
    assert [t["id"] for t in lst["items"]] == [sc["id"]]


def test_daemon_refusal_is_an_iserror_result(mcp):
    r = mcp.call("task_show", {"id": 424242})["result"]
    assert r["isError"] is True and "not_found" in result_text(r)
    r = mcp.call("task_create", {"title": "x", "bogus": 1})["result"]
    assert r["isError"] is True and "invalid_argument" in result_text(r)
    r = mcp.call("task_create", {})["result"]
    assert r["isError"] is True
    assert mcp.alive()


def test_daemon_down_then_up_then_restarted(tmp_path, mcp_factory):
    d = Daemon(tmp_path / "late")
    m = mcp_factory(d.socket)
    m.initialize()
    r = m.call("task_list")["result"]
    assert r["isError"] is True
    assert "not reachable" in result_text(r) and d.socket in result_text(r)
    assert m.alive()
    d.start()
    try:
        r = m.call("task_create", {"title": "after start"})["result"]
        assert r["structuredContent"]["title"] == "after start"
        assert d.stop() == 0
        r = m.call("task_list")["result"]
        assert r["isError"] is True and "not reachable" in result_text(r)
        d.start()
        r = m.call("task_list")["result"]
        assert not r.get("isError"), result_text(r)
        assert [t["title"] for t in r["structuredContent"]["items"]] == ["after start"]
    finally:
        d.stop()
    assert m.alive()
    assert m.close() == 0


def test_calls_may_be_pipelined(mcp):
    for i in range(20):
        mcp.send({"jsonrpc": "2.0", "id": "p%d" % i, "method": "tools/call",
                  "params": {"name": "task_create", "arguments": {"title": "t%d" % i}}})
    mcp.send({"jsonrpc": "2.0", "id": "ping", "method": "ping"})
    seen = {}
    for _ in range(21):
        r = mcp.recv()
        seen[r["id"]] = r
    assert "ping" in seen
    assert sorted(seen["p%d" % i]["result"]["structuredContent"]["title"] for i in range(20)) == \
        sorted("t%d" % i for i in range(20))


def test_logs_name_duration_outcome_and_hide_arguments(mcp, mcp_factory, daemon):
    mcp.call("task_create", {"title": "secret-title-value"})
    mcp.close()
    log = mcp.log()
    assert "call task_create: ok in" in log
    assert "secret-title-value" not in log
    dbg = mcp_factory(daemon.socket, "--log-level", "debug")
    dbg.call("task_create", {"title": "visible-at-debug"})
    dbg.close()
    assert "visible-at-debug" in dbg.log()


def test_socket_from_environment(daemon, tmp_path):
    env = dict(os.environ)
    env["COLIBRI_SOCKET"] = daemon.socket
    m = McpProc(bin_path("colibri-mcp"), [], env=env, log_path=str(tmp_path / "env.log"))
    try:
        r = m.call("task_create", {"title": "via env"})["result"]
        assert r["structuredContent"]["title"] == "via env"
    finally:
        assert m.close() == 0


def test_hung_daemon_costs_the_call_not_the_bridge(tmp_path, mcp_factory):
    """A daemon that accepts but never answers: the call times out, pings are served meanwhile."""
    path = str(tmp_path / "hung.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except socket.timeout:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        m = mcp_factory(path, "--timeout", "1500")
        m.send({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "task_list"}})
        start = time.time()
        m.send({"jsonrpc": "2.0", "id": "p", "method": "ping"})
        first = m.recv(5)
        assert first["id"] == "p" and time.time() - start < 1.0, "the ping waited for the daemon"
        r = m.recv(10)
        assert r["id"] == "slow" and r["result"]["isError"] is True
        assert "no answer within 1500 ms" in result_text(r["result"])
        assert m.alive()
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()


def test_usage_errors(tmp_path):
    p = subprocess.run([bin_path("colibri-mcp"), "--bogus"], capture_output=True, timeout=10)
    assert p.returncode == 2 and p.stdout == b""
    p = subprocess.run([bin_path("colibri-mcp"), "--version"], capture_output=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith(b"colibri-mcp ")
