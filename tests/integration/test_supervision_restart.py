"""Restart policy and RPC mode.

A crash restarts with backoff while restarts remain (one agent.restarted
event each), then the agent ends in error; a clean done is never restarted;
a model error restarts only with on_error; kill-agent stops restarts.
RPC agents go idle -> working -> idle per prompt and take agent-abort.
"""
import time

import pytest

from conftest import CallError
from test_supervision_helpers import (Watch, session_lines, spawn, status, sup_daemon, wait_gone,
                                      wait_pids_gone, wait_state)


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def restarted(w, aid):
    return [e["data"] for e in w.of(aid, "agent.restarted")]


def settle(w, seconds=0.6):
    """Collect events for a while (to show that none of a kind arrives)."""
    end = time.time() + seconds
    while time.time() < end:
        w.pump(0.1)


def test_crash_restarts_then_gives_up(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", "crash"],
              restart={"max_restarts": 2, "backoff_ms": 50})
    w.wait(lambda e: e["event"] == "agent.restarted" and e["data"]["restart"] == 2)
    st = wait_gone(sup, a["id"])
    settle(w)
    # Issue 18: the final reason says the policy gave up.
    assert (st["state"], st["reason"], st["restarts"]) == (
        "error", "gave up after 2 restarts: exited with status 3", 2), st
    r = restarted(w, a["id"])
    assert [(x["restart"], x["max_restarts"], x["reason"]) for x in r] == [(1, 2, "crashed"), (2, 2, "crashed")]
    # Backoff with equal jitter: delay in [d/2, d], d doubling from backoff_ms.
    assert 25 <= r[0]["delay_ms"] <= 50 and 50 <= r[1]["delay_ms"] <= 100, r
    assert len(w.of(a["id"], "agent.exited")) == 3
    trans = w.states(a["id"])
    assert [t for t in trans if t[3] == "restart"] == [("error", "idle", "restarted", "restart")] * 2, trans
    # The session log holds the three runs one after the other.
    assert sum(1 for l in session_lines(sup, a["id"]) if l.startswith('{"type":"session"')) == 3


def test_backoff_is_capped(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", "crash"],
              restart={"max_restarts": 4, "backoff_ms": 20, "backoff_max_ms": 40})
    wait_gone(sup, a["id"], timeout=20)
    settle(w, 0.3)
    delays = [x["delay_ms"] for x in restarted(w, a["id"])]
    assert len(delays) == 4 and all(10 <= x <= 40 for x in delays), delays
    assert all(x >= 20 for x in delays[1:]), delays


def test_clean_done_is_never_restarted(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", "text"],
              restart={"max_restarts": 3, "backoff_ms": 10, "on_error": True})
    st = wait_gone(sup, a["id"])
    settle(w)
    assert (st["state"], st["restarts"]) == ("done", 0)
    assert restarted(w, a["id"]) == []


@pytest.mark.parametrize("on_error,expect", [(False, 0), (True, 2)])
def test_model_error_restarts_only_with_on_error(sup, on_error, expect):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", "model-error"],
              restart={"max_restarts": 2, "backoff_ms": 20, "on_error": on_error})
    if expect:
        w.wait(lambda e: e["event"] == "agent.restarted" and e["data"]["restart"] == expect)
    st = wait_gone(sup, a["id"])
    settle(w)
    why = "400 colibri-test-agent: model refuses"
    if expect:  # issue 18: restarts spent, the policy says it gave up
        why = "gave up after %d restarts: %s" % (expect, why)
    assert (st["state"], st["reason"]) == ("error", why), st
    assert st["restarts"] == expect
    assert [x["reason"] for x in restarted(w, a["id"])] == ["model error"] * expect


def test_kill_agent_stops_restarts_during_backoff(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", "crash"],
              restart={"max_restarts": 5, "backoff_ms": 3000})
    w.wait(lambda e: e["event"] == "agent.restarted" and e["data"]["id"] == a["id"])
    k = sup.call("kill-agent", id=a["id"])
    assert (k["state"], k["reason"]) == ("error", "exited with status 3"), k
    settle(w, 3.5)
    assert len(restarted(w, a["id"])) == 1
    assert len(w.of(a["id"], "agent.exited")) == 1
    assert status(sup, a["id"])["live"] is False


def test_kill_agent_stops_restarts_of_a_running_agent(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", args=["--scenario", "hang"],
              restart={"max_restarts": 5, "backoff_ms": 10, "on_error": True})
    wait_state(sup, a["id"], ("working",))
    k = sup.call("kill-agent", id=a["id"], grace_ms=1000)
    assert (k["state"], k["reason"]) == ("error", "killed by signal 15 (SIGTERM)"), k
    settle(w)
    assert restarted(w, a["id"]) == []
    assert wait_pids_gone([a["pid"]]) == []


def test_restart_policy_is_validated(sup):
    for bad in ({"max_restarts": -1}, {"max_restarts": "2"}, {"backoff_ms": 0}, {"bogus": 1},
                {"on_error": "yes"}):
        with pytest.raises(CallError) as e:
            spawn(sup, provider="local", restart=bad)
        assert e.value.code == "invalid_argument", bad


# ---- RPC mode ----

def prompt_cycle(sup, w, aid, message):
    n0 = len(w.states(aid))
    assert sup.call("agent-prompt", id=aid, message=message) == {}
    w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == aid and e["data"]["to"] == "idle"
           and len(w.states(aid)) > n0)
    return w.states(aid)[n0:]


def test_rpc_prompts(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", mode="rpc", args=["--scenario", "text"])
    assert a["state"] == "idle"
    time.sleep(0.2)
    assert status(sup, a["id"])["state"] == "idle"
    first = prompt_cycle(sup, w, a["id"], "one")
    assert [t[:2] for t in first] == [("idle", "working"), ("working", "idle")], first
    second = prompt_cycle(sup, w, a["id"], "two")
    assert [t[:2] for t in second] == [("idle", "working"), ("working", "idle")], second
    st = status(sup, a["id"])
    assert st["state"] == "idle" and st["turns"] >= 2 and st["mode"] == "rpc"
    lines = session_lines(sup, a["id"])
    assert sum(1 for l in lines if '"type":"response"' in l and '"command":"prompt"' in l) == 2
    assert any('"text":"two"' in l for l in lines)
    k = sup.call("kill-agent", id=a["id"], grace_ms=1000)
    assert k["state"] in ("done", "error"), k


def test_rpc_abort(sup):
    w = Watch(sup)
    a = spawn(sup, provider="local", mode="rpc", args=["--scenario", "text", "--delay-ms", "400"])
    sup.call("agent-prompt", id=a["id"], message="slowly")
    w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == a["id"] and e["data"]["to"] == "working")
    assert sup.call("agent-abort", id=a["id"]) == {}
    ev = w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == a["id"]
                and e["data"]["from"] == "working")
    assert (ev["data"]["to"], ev["data"]["reason"]) == ("error", "Request was aborted"), ev
    lines = session_lines(sup, a["id"])
    assert any('"stopReason":"aborted"' in l for l in lines)
    assert any('"command":"abort"' in l and '"success":true' in l for l in lines)
    # A new prompt after the abort runs normally.
    again = prompt_cycle(sup, w, a["id"], "again")
    assert again[-1][1] == "idle", again
    sup.call("kill-agent", id=a["id"], grace_ms=1000)


def test_prompt_on_json_agent_is_conflict(sup):
    a = spawn(sup, provider="local", args=["--scenario", "hang"])
    for cmd, args in (("agent-prompt", {"id": a["id"], "message": "hi"}), ("agent-abort", {"id": a["id"]})):
        with pytest.raises(CallError) as e:
            sup.call(cmd, args)
        assert e.value.code == "conflict", cmd
    sup.call("kill-agent", id=a["id"], grace_ms=500)
    with pytest.raises(CallError) as e:
        sup.call("agent-prompt", id=a["id"], message="hi")
    assert e.value.code == "not_found"
    with pytest.raises(CallError) as e:
        sup.call("agent-prompt", id="nobody", message="hi")
    assert e.value.code == "not_found"
