"""Supervision: every real pi capture, zot-shaped runs and every test-agent
scenario, spawned through the daemon, end in the right state for the right
reason; the session log is the agent's stdout line for line; agent.state
events reach a subscriber with their cause.
"""
import glob
import os
import time

import pytest

from test_supervision_helpers import (PI_FIXTURES, Watch, fixture_lines, replay_args,
                                      session_lines, spawn, status, sup_daemon, agent_bin,
                                      wait_gone, wait_pids_gone, wait_state)

# Every capture in fixtures/pi/ must be listed: a new capture without an
# expectation fails test_every_capture_has_an_expectation.
#   name: (mode, final state, reason, cause of the final transition)
CAPTURES = {
    "text": ("json", "done", "exited cleanly", "exit"),
    "tool": ("json", "done", "exited cleanly", "exit"),
    "toolslow": ("json", "done", "exited cleanly", "exit"),
    "http400": ("json", "error", "400 fake bad request: model refuses", "exit"),
    "kill-term": ("json", "error", "killed by signal 15 (SIGTERM)", "signal"),
    "rpc-text": ("rpc", "done", "exited cleanly", "exit"),
}


def capture_names():
    return sorted(os.path.basename(p)[:-len(".jsonl")] for p in glob.glob(os.path.join(PI_FIXTURES, "*.jsonl")))


def test_every_capture_has_an_expectation():
    names = capture_names()
    assert len(names) >= 6, names
    assert sorted(CAPTURES) == names


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_replay_capture(sup, name):
    mode, state, reason, cause = CAPTURES[name]
    w = Watch(sup)
    a = spawn(sup, provider="local", mode=mode, args=replay_args(name, delay_ms=1))
    assert a["state"] in ("idle", "working")
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"]) == (state, reason), st
    if name == "kill-term":
        assert st["signal"] == 15 and st["exit_code"] is None
    else:
        assert st["exit_code"] == 0, st  # http400: pi exits 0 and still failed
    # The session log is the replayed capture, line for line.
    assert session_lines(sup, a["id"]) == fixture_lines(name)
    # agent.state events: first the run starts (a local program in JSON mode works from its
    # process start; in RPC mode from the prompt's agent_start), last the final state.
    last = w.wait_final(a["id"])
    assert (last["data"]["to"], last["data"]["reason"], last["data"]["cause"]) == (state, reason, cause)
    trans = w.states(a["id"])
    first = ("process started", "start") if mode == "json" else ("run started", "agent_start")
    assert trans[0] == ("idle", "working") + first, trans
    for frm, to, why, c in trans:
        assert why and c, trans
    if name == "rpc-text":
        assert ("working", "idle", "prompt finished", "agent_end") in trans, trans
    if name in ("tool", "toolslow"):
        assert st["tool_calls"] >= 1
    if name in ("text", "tool", "toolslow", "rpc-text"):
        assert st["usage"]["input"] > 0 and st["usage"]["output"] > 0, st["usage"]
    exited = w.wait_exited(a["id"])
    assert exited["data"]["state"] == state


def zot_wrapper(tmp_path):
    """zot's argv is `zot --json [args] [PROMPT]`; colibri-test-agent wants the
    rest (--harness zot --scenario ...), so a two-line shell drops --json."""
    p = tmp_path / "zot"
    p.write_text('#!/bin/sh\n[ "$1" = --json ] && shift\nexec %s "$@"\n' % agent_bin())
    p.chmod(0o755)
    return str(p)


@pytest.mark.parametrize("scenario,state,reason,tools", [
    ("text", "done", "exited cleanly", 0),
    ("tool", "done", "exited cleanly", 1),
    ("model-error", "error", "400 colibri-test-agent: model refuses", 0),
])
def test_zot_scenarios(sup, tmp_path, scenario, state, reason, tools):
    w = Watch(sup)
    a = spawn(sup, provider="zot", binary=zot_wrapper(tmp_path),
              args=["--harness", "zot", "--scenario", scenario])
    assert a["provider"] == "zot"
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"]) == (state, reason), st
    assert st["tool_calls"] == tools
    w.wait_final(a["id"])
    trans = w.states(a["id"])
    assert trans[0] == ("idle", "working", "run started", "turn_start"), trans
    assert trans[-1][1:3] == (state, reason)
    if state == "done":
        assert st["usage"]["input"] >= 42 and st["usage"]["output"] >= 6
    lines = session_lines(sup, a["id"])
    assert lines[0] == '{"type":"turn_start"}'


SCENARIOS = [
    # scenario, extra args, final state, reason (prefix), states that must appear on the way
    ("text", [], "done", "exited cleanly", ["working"]),
    ("tool", [], "done", "exited cleanly", ["working"]),
    ("model-error", [], "error", "400 colibri-test-agent: model refuses", ["working"]),
    ("retry-success", ["--retry-delay-ms", "100"], "done", "exited cleanly", ["working", "blocked"]),
    ("retry-fail", ["--retry-delay-ms", "50"], "error", "503 service unavailable (gave up after 3 retries)",
     ["working", "blocked"]),
    ("crash", [], "error", "exited with status 3", ["working"]),
    ("stderr", [], "done", "exited cleanly", ["working"]),
    ("grandchild", ["--then", "exit"], "done", "exited cleanly", ["working"]),
]


@pytest.mark.parametrize("scenario,extra,state,reason,via", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenario(sup, scenario, extra, state, reason, via):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", scenario] + extra)
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"]) == (state, reason), st
    w.wait_final(a["id"])
    seen = [t[1] for t in w.states(a["id"])]
    for s in via:
        assert s in seen, (scenario, w.states(a["id"]))
    if scenario == "retry-success":
        trans = w.states(a["id"])
        assert any(t[1] == "blocked" and t[2].startswith("retry 1/3") for t in trans), trans
        assert trans[-1] == ("working", "done", "exited cleanly", "exit"), trans
    if scenario == "grandchild":
        # The escaped grandchild is killed once the agent has exited.
        gpid = next(int(l.split('"pid":')[1].rstrip("}")) for l in session_lines(sup, a["id"])
                    if '"grandchild"' in l)
        assert wait_pids_gone([gpid]) == []


def test_slow_tool_passes_through_working(make_daemon):
    """A tool that prints a line every 700 ms keeps the agent working under a
    stall time of 1 s: tool_execution_update events count as life.  (Without
    them the tool's 2.1 s would hold a 1.1 s window without events, and the
    once-a-second stall check would see it.)"""
    d = sup_daemon(make_daemon, extra_args=["--stall-ms", "1000"])
    w = Watch(d)
    a = spawn(d, provider="local", args=["--scenario", "slow-tool", "--delay-ms", "700"])
    st = wait_state(d, a["id"], ("working",), timeout=5)
    assert st["activity"]
    st = wait_gone(d, a["id"], timeout=30)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly")
    w.wait_final(a["id"])
    assert [t[1] for t in w.states(a["id"])] == ["working", "done"], w.states(a["id"])
    assert st["tool_calls"] == 1


def test_hang_stalls_then_kill(make_daemon):
    d = sup_daemon(make_daemon, extra_args=["--stall-ms", "200"])
    w = Watch(d)
    a = spawn(d, provider="local", args=["--scenario", "hang"])
    st = wait_state(d, a["id"], ("blocked",), timeout=5)
    assert st["reason"].startswith("stalled"), st
    ev = w.wait(lambda e: e["event"] == "agent.state" and e["data"]["to"] == "blocked")
    assert ev["data"]["cause"] == "stall"
    pid = st["pid"]
    k = d.call("kill-agent", id=a["id"], grace_ms=1000)
    assert (k["state"], k["reason"]) == ("error", "killed by signal 15 (SIGTERM)"), k
    assert wait_pids_gone([pid]) == []
    last = w.wait_final(a["id"])
    assert (last["data"]["from"], last["data"]["cause"]) == ("blocked", "signal")


def test_stall_ms_per_spawn(sup):
    """stall_ms 0 turns stall detection off for that agent only."""
    a = spawn(sup, provider="local", args=["--scenario", "hang"], stall_ms=0)
    b = spawn(sup, provider="local", args=["--scenario", "hang"], stall_ms=200)
    wait_state(sup, b["id"], ("blocked",), timeout=5)
    assert status(sup, a["id"])["state"] == "working"
    for x in (a, b):
        assert sup.call("kill-agent", id=x["id"], grace_ms=500)["state"] == "error"


def test_stderr_goes_to_its_own_log(sup):
    a = spawn(sup, provider="local", args=["--scenario", "stderr"])
    wait_gone(sup, a["id"])
    sess = os.path.join(sup.state_dir, "sessions")
    with open(os.path.join(sess, a["session_id"] + ".stderr"), "rb") as f:
        err = f.read()
    assert err.startswith(b"colibri-test-agent: warning: this scenario writes to stderr\n")
    assert len(err) >= 256 * 1024
    lines = session_lines(sup, a["id"])
    assert not any("eeee" in l or "warning" in l for l in lines)
    assert lines[0].startswith('{"type":"session"')


def test_session_read_paging_and_session_id(sup):
    a = spawn(sup, provider="local", args=["--scenario", "tool"], session_id="my-session.1")
    assert a["session_id"] == "my-session.1"
    wait_gone(sup, a["id"])
    whole = session_lines(sup, a["id"])
    assert len(whole) > 10
    part = sup.call("session-read", id=a["id"], since=3, limit=4)
    assert part["lines"] == whole[3:7] and part["next"] == 7
    assert sup.call("session-read", id="my-session.1")["lines"] == whole
    assert os.path.exists(os.path.join(sup.state_dir, "sessions", "my-session.1.jsonl"))


def test_list_agents_and_status_fields(sup):
    a = spawn(sup, provider="local", args=["--scenario", "tool"])
    st = wait_gone(sup, a["id"])
    for k in ("state", "reason", "since_ms", "activity", "turns", "tool_calls", "usage", "restarts",
              "exit_code", "signal", "mode", "binary", "session_id"):
        assert k in st, k
    assert st["binary"] == agent_bin()
    assert st["turns"] >= 2
    items = sup.call("list-agents", kind="spawned")["items"]
    assert a["id"] in [i["id"] for i in items]
    time.sleep(0.05)
    assert [i["state"] for i in items if i["id"] == a["id"]] == ["done"]
