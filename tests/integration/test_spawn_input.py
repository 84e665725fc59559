"""Bad spawn input is refused with the right error code, costs the caller
nothing but an error reply, and leaves nothing running.
"""
import json
import os
import time

import pytest

from test_supervision_helpers import (pids_with_marker, spawn, spawn_error, sup_daemon, wait_gone)


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def children_of(pid):
    """Live (non-zombie) agent processes whose parent is pid: those carrying
    COLIBRI_AGENT_ID (the daemon may run helpers of its own, such as the
    runtime inventory at start)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        if int(rest[1]) == pid and rest[0] not in ("Z", "X") and has_agent_marker(int(name)):
            out.append(int(name))
    return out


def has_agent_marker(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return any(v.startswith(b"COLIBRI_AGENT_ID=") for v in f.read().split(b"\0"))
    except OSError:
        return False


BAD = [
    ("unknown provider", dict(provider="claude"), "invalid_argument", "provider"),
    ("relative binary", dict(provider="local", binary="bin/colibri-test-agent"), "invalid_argument",
     "absolute path"),
    ("missing binary", dict(provider="local", binary="/nonexistent/agent"), "invalid_argument",
     "/nonexistent/agent"),
    ("binary not on PATH", dict(provider="pi", binary="no-such-agent-binary"), "invalid_argument",
     "not found"),
    ("env name with a dash", dict(provider="local", env={"A-B": "1"}), "invalid_argument", "A-B"),
    ("env name empty", dict(provider="local", env={"": "1"}), "invalid_argument", "env name"),
    ("env value not a string", dict(provider="local", env={"A": 1}), "invalid_argument", "env A"),
    ("env not an object", dict(provider="local", env=["A=1"]), "invalid_argument", "env"),
    ("args not strings", dict(provider="local", args=["--scenario", 1]), "invalid_argument", "args"),
    ("args not an array", dict(provider="local", args="--scenario text"), "invalid_argument", "args"),
    ("session_id traversal", dict(provider="local", session_id="../x"), "invalid_argument", "session_id"),
    ("session_id dot", dict(provider="local", session_id=".hidden"), "invalid_argument", "session_id"),
    ("session_id slash", dict(provider="local", session_id="a/b"), "invalid_argument", "session_id"),
    ("id with slash", dict(provider="local", id="a/b"), "invalid_argument", "id"),
    ("cwd not a dir", dict(provider="local", cwd="/etc/hostname"), "invalid_argument", "not a directory"),
    ("cwd missing", dict(provider="local", cwd="/nonexistent-dir"), "invalid_argument", "not a directory"),
    ("cwd relative", dict(provider="local", cwd="tmp"), "invalid_argument", "absolute"),
    ("mode unknown", dict(provider="local", mode="batch"), "invalid_argument", "mode"),
    ("stall_ms too small", dict(provider="local", stall_ms=5), "invalid_argument", "stall_ms"),
    ("unknown argument", dict(provider="local", colour="red"), "invalid_argument", "colour"),
    ("long multibyte env name", dict(provider="local", env={"a" + "\u00e9" * 100: "1"}), "invalid_argument",
     "env name"),
    # Error messages are cut at a UTF-8 boundary: the reply must stay valid JSON.
    ("long multibyte binary path", dict(provider="local", binary="/x" + "\u00e9" * 300), "invalid_argument",
     "binary /x"),
    ("long multibyte restart key", dict(provider="local", restart={"a" + "\u00e9" * 40: 1}),
     "invalid_argument", "restart.a"),
]


@pytest.mark.parametrize("what,args,code,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_spawn_input(sup, what, args, code, needle):
    e = spawn_error(sup, **args)
    assert sup.call("list-agents", kind="spawned")["items"] == [], "a refused spawn leaves no agent"
    assert e.code == code, (what, e)
    assert needle in e.message, (what, e.message)
    assert children_of(sup.proc.pid) == []
    live = [a for a in sup.call("list-agents", kind="spawned")["items"] if a.get("live")]
    assert live == []
    # The daemon keeps serving.
    assert sup.call("status")["pid"] == sup.proc.pid


@pytest.mark.parametrize("args", [
    {"provider": "local", "env": {"A": "x\u0000y"}},
    {"provider": "local", "args": ["a\u0000b"]},
    {"provider": "local", "prompt": "a\u0000b"},
], ids=["env", "args", "prompt"])
def test_nul_bytes_are_refused(sup, args):
    """A NUL inside a string never reaches the spawner: the line is refused
    as bad_request (id null: the request could not be read)."""
    c = sup.connect()
    c.send_raw((json.dumps({"id": 1, "cmd": "spawn-agent", "args": args}) + "\n").encode())
    r = c.read_msg(timeout=5)
    assert r["ok"] is False and r["error"]["code"] == "bad_request", r
    assert children_of(sup.proc.pid) == []
    assert c.call("status")["pid"] == sup.proc.pid


@pytest.mark.parametrize("content,mode,needle", [
    ("\x7fELF not really", 0o755, "Exec format error"),
    ("#!/bin/sh\n", 0o644, "Permission denied"),
], ids=["not-an-executable", "not-executable"])
def test_binary_that_cannot_run(sup, tmp_path, content, mode, needle):
    p = tmp_path / "agent"
    p.write_text(content)
    p.chmod(mode)
    e = spawn_error(sup, provider="local", binary=str(p))
    assert e.code == "invalid_argument" and needle in e.message, e
    assert sup.call("list-agents", kind="spawned")["items"] == []
    assert children_of(sup.proc.pid) == []


def test_spawn_local_needs_a_binary(sup):
    from conftest import CallError
    with pytest.raises(CallError) as e:
        sup.call("spawn-local", {})
    assert e.value.code == "invalid_argument"


def test_duplicate_live_id_is_conflict(sup):
    a = spawn(sup, provider="local", args=["--scenario", "hang"], id="worker-1")
    assert a["id"] == "worker-1"
    e = spawn_error(sup, provider="local", args=["--scenario", "text"], id="worker-1")
    assert e.code == "conflict", e
    # A second agent may not write into a live agent's session log either.
    e = spawn_error(sup, provider="local", args=["--scenario", "text"], session_id=a["session_id"])
    assert e.code == "conflict", e
    assert children_of(sup.proc.pid) == [a["pid"]]
    sup.call("kill-agent", id="worker-1", grace_ms=500)
    # Once it has ended, the id may be used again (a new run of the same agent).
    b = spawn(sup, provider="local", args=["--scenario", "text"], id="worker-1")
    assert wait_gone(sup, b["id"])["state"] == "done"


def test_registered_agent_id_is_conflict(sup):
    sup.call("agent-register", id="human-1")
    e = spawn_error(sup, provider="local", id="human-1")
    assert e.code == "conflict", e


def test_env_and_cwd_reach_the_agent(sup, tmp_path):
    """The caller's env and cwd are the agent's; secrets of the daemon are not passed on."""
    out = tmp_path / "env.txt"
    script = tmp_path / "show-env"
    script.write_text("#!/bin/sh\n{ pwd; env; } > %s\necho '{\"type\":\"agent_start\"}'\n"
                      "echo '{\"type\":\"agent_end\",\"messages\":[]}'\n" % out)
    script.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    a = spawn(sup, provider="local", binary=str(script), cwd=str(work), env={"MY_VAR": "a b'c"})
    assert wait_gone(sup, a["id"])["state"] == "done"
    text = out.read_text().splitlines()
    assert text[0] == str(work)
    assert "MY_VAR=a b'c" in text
    assert "COLIBRI_AGENT_ID=%s" % a["id"] in text
    assert "COLIBRI_SESSION_ID=%s" % a["session_id"] in text
    assert not any(l.startswith("BW_") for l in text)


def test_daemon_secrets_are_scrubbed(make_daemon, tmp_path):
    d = sup_daemon(make_daemon, env={"BW_PASSWORD": "hunter2", "BW_SESSION": "s"})
    out = tmp_path / "env.txt"
    script = tmp_path / "show-env"
    script.write_text("#!/bin/sh\nenv > %s\n" % out)
    script.chmod(0o755)
    a = spawn(d, provider="local", binary=str(script))
    wait_gone(d, a["id"])
    text = out.read_text()
    assert "hunter2" not in text and "BW_SESSION" not in text
    assert "hunter2" not in d.read_log()


def test_binary_resolution_order(make_daemon, tmp_path):
    """binary, then COLIBRI_AGENT_BINARY, then the provider's name on PATH."""
    d = sup_daemon(make_daemon)
    a = spawn(d, provider="local", args=["--scenario", "text"])
    assert a["binary"].endswith("/colibri-test-agent")
    wait_gone(d, a["id"])
    alt = tmp_path / "alt-agent"
    alt.write_text("#!/bin/sh\nexit 0\n")
    alt.chmod(0o755)
    d2 = sup_daemon(make_daemon, name="state2", env={"COLIBRI_AGENT_BINARY": str(alt)})
    b = spawn(d2, provider="pi")
    assert b["binary"] == str(alt)
    c = spawn(d2, provider="pi", binary=a["binary"], args=["--scenario", "text"])
    assert c["binary"] == a["binary"]
    for x in (b, c):
        wait_gone(d2, x["id"])
    time.sleep(0.05)
    assert pids_with_marker(b["id"]) == [] and pids_with_marker(c["id"]) == []
