"""End to end: the real pi (npm @mariozechner/pi-coding-agent 0.73.1), spawned
through Colibri, against a fake OpenAI-compatible server on 127.0.0.1.

A text answer ends done; a bash tool call (`echo hi`) then text ends done
with tool_calls >= 1; an HTTP 400 from the model ends error with the model's
message although pi exits 0; RPC mode goes idle -> working -> idle per
prompt; kill-agent during a bash tool call leaves no process behind.  Run by tests/e2e/run.sh
(`make e2e`) and scripts/run-tests.py (`make test`), which install pi (tests/e2e/setup.sh)
and set COLIBRI_E2E_PI and COLIBRI_BUILD.
"""
import importlib.util
import json
import os
import time

import pytest

from fake_openai import ERROR_400, FakeOpenAI

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "colibri_integration_conftest", os.path.join(HERE, "..", "integration", "conftest.py"))
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

PI = os.environ.get("COLIBRI_E2E_PI", os.path.join(HERE, "node_modules", ".bin", "pi"))
if "COLIBRI_E2E_PI" not in os.environ and not os.path.exists(PI):
    pytest.skip("the real pi is not installed: run tests/e2e/run.sh", allow_module_level=True)

FINAL = ("done", "error")
TIMEOUT = 90  # node start-up plus pi's own, on a slow machine


@pytest.fixture
def fake():
    srv = FakeOpenAI()
    yield srv
    srv.close()


@pytest.fixture
def world(tmp_path, fake):
    """A daemon, and an isolated pi home whose models.json points at the fake server."""
    assert os.access(PI, os.X_OK), "pi not found at %s" % PI
    home = tmp_path / "home"
    agent_dir = tmp_path / "pi-agent"
    home.mkdir()
    agent_dir.mkdir()
    models = {"providers": {"fake": {
        "baseUrl": "http://127.0.0.1:%d/v1" % fake.port, "api": "openai-completions",
        "apiKey": "FAKE_API_KEY",
        "compat": {"supportsDeveloperRole": False, "supportsReasoningEffort": False},
        "models": [{"id": "fake-text"}, {"id": "fake-tool"}, {"id": "fake-sleep"},
                   {"id": "fake-400"}]}}}
    (agent_dir / "models.json").write_text(json.dumps(models))
    env = dict(os.environ)
    env["PATH"] = os.path.join(harness.BUILD, "src", "tools") + ":" + env.get("PATH", "/usr/bin:/bin")
    d = harness.Daemon(tmp_path / "state", ["--stall-ms", "60000"], env).start()
    pi_env = {"HOME": str(home), "PI_CODING_AGENT_DIR": str(agent_dir), "PI_OFFLINE": "1"}
    yield d, pi_env, tmp_path
    rc = d.stop()
    assert rc == 0, d.read_log()[-3000:]


def spawn_pi(d, pi_env, model, cwd, **kw):
    args = {"provider": "pi", "binary": PI, "env": pi_env, "cwd": str(cwd),
            "args": ["--provider", "fake", "--model", model]}
    args.update(kw)
    return d.call("spawn-agent", args)


def wait_final(d, aid, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = d.call("agent-status", id=aid)
        if st["state"] in FINAL and not st.get("live"):
            return st
        time.sleep(0.1)
    raise AssertionError("pi did not finish: %s\n%s" % (st, d.read_log()[-3000:]))


def transitions(conn, aid, until_final=True, timeout=TIMEOUT):
    """agent.state events of aid from a subscriber, up to the final one."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            m = conn.next_event(timeout=max(0.1, deadline - time.time()))
        except TimeoutError:
            break
        if m is None:
            break
        if m.get("event") != "agent.state" or m["data"]["id"] != aid:
            continue
        out.append(m["data"])
        if until_final and m["data"]["to"] in FINAL:
            return out
    return out


def session(d, aid):
    return d.call("session-read", id=aid, limit=100000)["lines"]


def test_text_answer_is_done(world, fake):
    d, pi_env, tmp = world
    sub = d.connect()
    sub.call("subscribe", topics=["agent.state"])
    a = spawn_pi(d, pi_env, "fake-text", tmp, prompt="Say hello")
    st = wait_final(d, a["id"])
    assert (st["state"], st["reason"], st["exit_code"]) == ("done", "exited cleanly", 0), st
    tr = transitions(sub, a["id"])
    assert [(t["from"], t["to"], t["cause"]) for t in tr] == [("idle", "working", "agent_start"),
                                                             ("working", "done", "exit")], tr
    assert st["usage"]["input"] == 12 and st["usage"]["output"] == 6, st["usage"]
    lines = session(d, a["id"])
    assert json.loads(lines[0])["type"] == "session"
    assert any('"Hello from the fake model."' in l for l in lines)
    assert len(fake.requests) == 1
    req = fake.requests[0]["body"]
    assert req["stream"] is True and req["model"] == "fake-text"


def test_tool_call_is_done_with_tool_calls(world, fake):
    d, pi_env, tmp = world
    a = spawn_pi(d, pi_env, "fake-tool", tmp, prompt="Run echo hi")
    st = wait_final(d, a["id"])
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    assert st["tool_calls"] >= 1 and st["turns"] >= 2, st
    ends = [json.loads(l) for l in session(d, a["id"]) if '"tool_execution_end"' in l]
    assert ends and ends[0]["toolName"] == "bash"
    assert ends[0]["result"]["content"][0]["text"] == "hi\n"
    assert len(fake.requests) == 2
    assert any(m.get("role") == "tool" for m in fake.requests[1]["body"]["messages"])


def test_http_400_is_error_with_the_message(world, fake):
    d, pi_env, tmp = world
    sub = d.connect()
    sub.call("subscribe", topics=["agent.state"])
    a = spawn_pi(d, pi_env, "fake-400", tmp, prompt="Say hello")
    st = wait_final(d, a["id"])
    assert st["exit_code"] == 0, st  # pi exits 0 ...
    assert (st["state"], st["reason"]) == ("error", "400 " + ERROR_400), st  # ... and failed
    tr = transitions(sub, a["id"])
    assert tr[-1]["to"] == "error" and tr[-1]["reason"] == "400 " + ERROR_400, tr
    assert len(fake.requests) == 1  # a 400 is not retried


def test_rpc_mode_prompts(world, fake):
    d, pi_env, tmp = world
    sub = d.connect()
    sub.call("subscribe", topics=["agent.state"])
    a = spawn_pi(d, pi_env, "fake-text", tmp, mode="rpc")
    assert a["state"] == "idle"
    for n in (1, 2):
        d.call("agent-prompt", id=a["id"], message="Say hello %d" % n)
        tr = []
        deadline = time.time() + TIMEOUT
        while not (tr and tr[-1]["to"] == "idle") and time.time() < deadline:
            tr += transitions(sub, a["id"], until_final=False, timeout=1)
        assert [(t["from"], t["to"]) for t in tr] == [("idle", "working"), ("working", "idle")], tr
    assert len(fake.requests) == 2
    k = d.call("kill-agent", id=a["id"], grace_ms=5000)
    assert k["state"] in FINAL and not k.get("live"), k


def agent_pids(aid):
    """Live processes carrying COLIBRI_AGENT_ID=aid: pi, node's helpers, the tool's shell."""
    needle = ("COLIBRI_AGENT_ID=%s" % aid).encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/stat" % name) as f:
                st = f.read()
        except OSError:
            continue
        if needle in env and st[st.rindex(")") + 2] not in "ZX":
            out.append(int(name))
    return out


def test_kill_during_a_tool_call_leaves_nothing(world, fake):
    d, pi_env, tmp = world
    a = spawn_pi(d, pi_env, "fake-sleep", tmp, prompt="Sleep")
    deadline = time.time() + TIMEOUT
    while not any('"tool_execution_start"' in l for l in session(d, a["id"])):
        assert time.time() < deadline, session(d, a["id"])
        time.sleep(0.1)
    time.sleep(0.3)
    pids = agent_pids(a["id"])
    assert len(pids) >= 2, "pi and its tool's shell: %s" % pids
    k = d.call("kill-agent", id=a["id"], grace_ms=1000)
    # pi catches SIGTERM and exits 143 itself (as in fixtures/pi/kill-term.rc).
    assert k["state"] == "error", k
    assert k["reason"] == "exited with status 143" or k["reason"].startswith("killed by signal"), k
    deadline = time.time() + 5
    while agent_pids(a["id"]) and time.time() < deadline:
        time.sleep(0.05)
    assert agent_pids(a["id"]) == []
