"""End to end, quota parking (issue 18, "What must be shown"): the real pi,
confined through the profile pi-fake-429 (pi_world.PiWorld), works a task
while the fake provider answers its first request with HTTP 429, a
`Retry-After: 3` header and OpenAI's "Please try again in 3s.".

pi's own retries and its OpenAI SDK's are off in that profile's settings
(pi_world: left on, the SDK would wait out the Retry-After itself and pi
would never see the 429), so the first refusal ends pi's run with
stopReason error.  The daemon then parks the agent: `blocked`, reason
"quota until HH:MM:SS" three seconds after the refusal, the task still
claimed by it, the profile parked until the same time; at the reset it
starts pi again on the same session, which gets the answer, and the task
is completed once with it.
"""
import json
import time

import pytest

from fake_openai import TEXT
from pi_world import TIMEOUT, PiWorld, skip_unless_pi_and_bwrap

skip_unless_pi_and_bwrap()

ANSWER = "".join(TEXT)


@pytest.fixture
def world():
    w = PiWorld()
    try:
        yield w
        assert not [r for r in w.replies if w.key in r], "the key is in a reply or CLI output"
        rc = w.close()
        assert rc == 0, w.daemon.read_log()[-3000:]
        assert w.key not in w.daemon.read_log()
    finally:
        w.close()
        w.remove()


def agent_states(w, aid):
    return [e["data"] for e in w.call("events-read", limit=10000)["items"]
            if e["event"] == "agent.state" and e["data"]["id"] == aid]


def test_429_parks_then_resumes_and_completes_the_task(world):
    w = world
    p = w.cli("task-create", "Say hello", "--json")
    assert p.returncode == 0, p.stderr
    tid = json.loads(p.stdout)["id"]
    p = w.cli("spawn-agent", "--profile", "pi-fake-429", "--id", "pi-quota", "--task", str(tid),
              "--json")
    assert p.returncode == 0, p.stderr
    # pi meets the 429 and ends its run; the daemon parks the agent.
    deadline = time.time() + TIMEOUT
    st = None
    while time.time() < deadline:
        st = w.call("agent-status", id="pi-quota")
        if st["state"] == "blocked" and st["parked_until_ms"] is not None:
            break
        assert st["state"] not in ("done", "error"), st
        time.sleep(0.05)
    else:
        raise AssertionError("never parked: %s\n%s" % (st, w.daemon.read_log()[-3000:]))
    until = st["parked_until_ms"]
    assert st["reason"].startswith("quota until "), st
    assert "429" in st["last_error"] and "try again in 3s" in st["last_error"], st
    assert len(w.fake.refused) == 1
    refused_ms = w.fake.refused[0] * 1000
    assert refused_ms + 3000 <= until <= refused_ms + 3000 + 2000, (refused_ms, until)
    # Meanwhile the task stays claimed by it, and its profile is parked.
    t = w.call("task-show", id=tid)
    assert (t["status"], t["owner"], t["attempts"]) == ("claimed", "pi-quota", 0), t
    prof = {x["name"]: x for x in w.call("profiles")["profiles"]}
    assert prof["pi-fake-429"]["parked_until_ms"] == until
    assert prof["pi-fake"]["parked_until_ms"] is None
    # At the reset pi runs again, gets the answer, and the task is done once.
    st = w.wait_final("pi-quota")
    assert (st["state"], st["restarts"]) == ("done", 0), st
    t = w.call("task-show", id=tid)
    assert t["status"] == "done" and t["result"]["text"] == ANSWER, t
    assert len(w.fake.requests) == 2 and len(w.fake.refused) == 1
    states = agent_states(w, "pi-quota")
    park = [s for s in states if s["to"] == "blocked" and s["cause"] == "quota"]
    assert [s["reason"] for s in park] == [
        "quota until " + time.strftime("%H:%M:%S", time.localtime(until / 1000))], states
    resumed = [s for s in states if s["from"] == "blocked" and s["cause"] == "restart"]
    assert len(resumed) == 1 and resumed[0]["at_ms"] >= until - 5, (until, states)
    assert resumed[0]["at_ms"] <= until + 1000, (until, resumed)
    events = [e["event"] for e in w.call("events-read", limit=10000)["items"]
              if e["event"].startswith("task.")]
    assert events.count("task.completed") == 1 and "task.failed" not in events, events
