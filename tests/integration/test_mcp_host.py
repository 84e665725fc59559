"""colibri-mcp as a host for a real third-party MCP server.

The peer is @modelcontextprotocol/server-everything from npm (installed by
tests/mcp/setup.sh; npm unreachable = failure).  Checked: allowed tools are
offered as everything__<tool>, echo round-trips (raw lines and through the
official SDK client), a tool outside the allow list is absent and refused,
progress notifications reach the caller with its own token, cancellation is
forwarded, a killed server answers its in-flight call with an isError
result and is restarted, a server that cannot start does not block the
others, every proxied call is logged, and on Linux a server with a jail runs
inside bubblewrap (another pid and mount namespace, bwrap among its
ancestors, the host environment gone).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import bin_path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mcp"))
from mcp_helpers import (EVERYTHING, NODE_MODULES, McpProc, cmdline, comm, descendants,  # noqa: E402
                         npm_setup, result_text)
from test_mcp_sdk import run_sdk  # noqa: E402

NODE = shutil.which("node") or "/usr/bin/node"
ALLOW = ["echo", "get-sum", "trigger-long-running-operation"]


def bwrap_works():
    try:
        return subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def everything(name="everything", allow=ALLOW, **extra):
    s = {"name": name, "command": NODE, "args": [EVERYTHING, "stdio"], "allow": allow}
    s.update(extra)
    return s


@pytest.fixture
def host(tmp_path):
    npm_setup()
    made = []

    def make(servers, *args):
        cfg = tmp_path / ("host%d.json" % len(made))
        cfg.write_text(json.dumps({"servers": servers}))
        m = McpProc(bin_path("colibri-mcp"),
                    ["--socket", str(tmp_path / "absent.sock"), "--config", str(cfg)] + list(args),
                    log_path=str(tmp_path / ("host%d.log" % len(made))))
        made.append(m)
        m.initialize()
        return m

    yield make
    for m in made:
        if m.proc.poll() is None:
            assert m.close() == 0


def tool_names(m):
    return [t["name"] for t in m.request("tools/list", timeout=30)["result"]["tools"]]


def node_pid_of(m, marker):
    """The node process (server-everything) below colibri-mcp whose tree includes marker in argv."""
    for p in descendants(m.pid):
        argv = cmdline(p)
        if argv and argv[0].endswith(b"node") and any(marker.encode() in a for a in argv):
            return p
    return None


def wait_for(pred, timeout=15.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def test_allowed_tools_are_prefixed_and_others_absent(host):
    m = host([everything()])
    names = tool_names(m)
    for t in ALLOW:
        assert "everything__" + t in names
    assert "everything__get-env" not in names
    assert "echo" not in names and "get-env" not in names
    assert "task_create" in names  # alongside Colibri's own tools
    r = m.call("everything__get-env")
    assert r["error"]["code"] == -32602
    proxied = [t for t in m.request("tools/list")["result"]["tools"] if t["name"] == "everything__echo"][0]
    assert proxied["inputSchema"]["properties"]["message"]["type"] == "string"


def test_echo_round_trips(host):
    m = host([everything()])
    r = m.call("everything__echo", {"message": "round ✓ trip"})
    assert r["result"]["content"][0]["text"] == "Echo: round ✓ trip"
    assert not r["result"].get("isError")
    r = m.call("everything__get-sum", {"a": 2, "b": 40})
    assert "42" in result_text(r["result"])
    m.close()
    log = m.log()
    assert "call everything__echo: ok in" in log
    assert "round ✓ trip" not in log


def test_sdk_client_through_the_host(host, tmp_path):
    npm_setup()
    cfg = tmp_path / "sdk.json"
    cfg.write_text(json.dumps({"servers": [everything()]}))
    report = run_sdk("host", ["--socket", str(tmp_path / "absent.sock"), "--config", str(cfg)])
    assert "everything__echo" in report["tool_names"]
    assert "everything__get-env" not in report["tool_names"]
    assert report["progress"] in ([1, 2], [1, 2, 3])


def test_progress_uses_the_callers_token(host):
    m = host([everything()])
    m.send({"jsonrpc": "2.0", "id": "op", "method": "tools/call",
            "params": {"name": "everything__trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3},
                       "_meta": {"progressToken": "my-token"}}})
    msgs = []
    while not msgs or msgs[-1].get("id") != "op":
        msgs.append(m.recv(20))
        assert msgs[-1] is not None
    # Every progress notification, in order, before the result.
    assert [p["params"]["progress"] for p in msgs[:-1]] == [1, 2, 3]
    assert not msgs[-1]["result"].get("isError"), msgs[-1]
    prog = msgs[:-1]
    assert all(p["params"]["progressToken"] == "my-token" for p in prog)


def test_cancellation_is_forwarded(host):
    m = host([everything()], "--log-level", "debug")
    m.send({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
            "params": {"name": "everything__trigger-long-running-operation",
                       "arguments": {"duration": 4, "steps": 4}, "_meta": {"progressToken": 1}}})
    first = m.recv(10)
    assert first["method"] == "notifications/progress"
    m.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "long", "reason": "test"}})
    # No answer for the cancelled id; the server keeps serving.
    r = m.call("everything__echo", {"message": "still here"})
    assert r["result"]["content"][0]["text"] == "Echo: still here"
    deadline = time.time() + 5
    while time.time() < deadline:
        msg = m.recv(0.5)
        assert msg is None or msg.get("id") != "long", "a cancelled call was answered"
    assert "call everything__trigger-long-running-operation: cancelled" in m.log()


def test_crashed_server_fails_in_flight_call_and_restarts(host):
    m = host([everything()])
    assert "everything__echo" in tool_names(m)  # ready
    pid = node_pid_of(m, "server-everything")
    assert pid, "no server-everything process below colibri-mcp"
    m.send({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
            "params": {"name": "everything__trigger-long-running-operation",
                       "arguments": {"duration": 20, "steps": 2}}})
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    r = m.reply(77, timeout=10)
    assert r["result"]["isError"] is True
    assert "exited" in result_text(r["result"])

    def echo_ok():
        res = m.call("everything__echo", {"message": "back"})["result"]
        return not res.get("isError") and res["content"][0]["text"] == "Echo: back"

    assert wait_for(echo_ok, timeout=15, step=0.3), m.log()
    new_pid = node_pid_of(m, "server-everything")
    assert new_pid and new_pid != pid
    log = m.log()
    assert "restarting in" in log
    assert "call everything__trigger-long-running-operation: server exited" in log


def test_a_server_that_cannot_start_does_not_block(host):
    m = host([everything(), {"name": "broken", "command": "/nonexistent/mcp-server", "allow": ["*"]}])
    names = tool_names(m)
    assert "everything__echo" in names
    assert not any(n.startswith("broken__") for n in names)
    r = m.call("broken__anything")["result"]
    assert r["isError"] is True and "broken" in result_text(r)
    assert m.call("everything__echo", {"message": "x"})["result"]["content"][0]["text"] == "Echo: x"
    assert "cannot start" in m.log()


def test_bad_config_is_refused_at_start(tmp_path):
    cfg = tmp_path / "bad.json"
    for bad in [{"servers": [{"name": "a__b", "command": "x", "allow": []}]},
                {"servers": [{"name": "a", "command": "x"}]},
                {"servers": [{"name": "a", "command": "x", "allow": [], "alow": []}]},
                {"servers": [{"name": "a", "command": "x", "allow": []}, {"name": "a", "command": "y", "allow": []}]},
                {"servers": [{"name": "a", "command": "x", "allow": [], "jail": {"path": "rel"}}]},
                {"server": []}]:
        cfg.write_text(json.dumps(bad))
        p = subprocess.run([bin_path("colibri-mcp"), "--config", str(cfg)], input=b"", capture_output=True, timeout=10)
        assert p.returncode != 0, bad
        assert p.stdout == b""
        assert str(cfg).encode() in p.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap is the Linux confinement")
@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot create namespaces here")
def test_jailed_server_runs_inside_bubblewrap(host, tmp_path):
    root = tmp_path / "jail" / "root"
    root.mkdir(parents=True)
    # ip4 "none": its own network namespace (unset would share the host's, issue 17).
    m = host([everything("jailed", allow=["echo", "get-env"], jail={"path": str(root), "ip4": "none"},
                         ro_paths=[NODE_MODULES],
                         env={"MARKER": "inside"})])
    assert "jailed__echo" in tool_names(m)
    assert m.call("jailed__echo", {"message": "jail"})["result"]["content"][0]["text"] == "Echo: jail"
    pid = node_pid_of(m, "server-everything")
    assert pid, "no node process below colibri-mcp"
    # bwrap is an ancestor of the server, and the server lives in other namespaces.
    chain = []
    p = pid
    while p and p != m.pid:
        chain.append(comm(p))
        with open("/proc/%d/stat" % p) as f:
            st = f.read()
        p = int(st[st.rindex(")") + 2:].split()[1])
    assert "bwrap" in chain, chain
    for ns in ("pid", "mnt", "net"):
        assert os.readlink("/proc/%d/ns/%s" % (pid, ns)) != os.readlink("/proc/self/ns/" + ns), ns
    env = json.loads(result_text(m.call("jailed__get-env")["result"]))
    assert env.get("MARKER") == "inside"
    assert env["HOME"].startswith(str(root))
    assert not any(k.startswith("PYTEST") or k == "COLIBRI_BUILD" for k in env), env
    assert "(pid" in m.log() and "confined" in m.log()
    m.close()
    stage = root / "home" / "clawdie" / ".cache" / "colibri" / "stage"
    assert not stage.exists() or os.listdir(stage) == [], "stage left behind"


def test_stop_escalates_to_sigkill(host):
    """A server that ignores stdin EOF and SIGTERM is killed; colibri-mcp still exits 0 promptly."""
    stubborn = {"name": "stubborn", "command": sys.executable, "allow": ["*"],
                "args": ["-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(120)"]}
    m = host([stubborn], "--settle", "500")
    tool_names(m)
    kids = [p for p in descendants(m.pid) if comm(p).startswith("python")]
    assert kids, "the stubborn server is not running"
    start = time.time()
    assert m.close() == 0
    assert time.time() - start < 10
    assert all(not os.path.exists("/proc/%d" % p) or comm(p) == "" for p in kids), "server survived"
    assert "server stubborn stopped (signal 9)" in m.log()
