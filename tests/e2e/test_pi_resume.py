"""End to end: agent-resume with the real pi, confined (issue 18, "Resume after a daemon
restart").  A task-bound pi run (profile pi-fake-resume: pi keeps its session in the
sandbox's root) is cut short by a daemon SIGKILL while pi waits in a bash tool call; the next
daemon marks it interrupted and puts its task back; `colibri agent-resume ID` starts pi again
with `--session <its session id>`, and pi continues that conversation: its request to the
model carries the first prompt (the task) as well as the resume prompt, and the task ends done
with the model's answer, claimed again by the same agent (epoch 2).
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
        rc = w.close()
        assert rc == 0, w.daemon.read_log()[-3000:]
    finally:
        w.close()
        w.remove()


def wait(pred, what, w, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("%s never happened\n%s" % (what, w.daemon.read_log()[-3000:]))


def test_an_interrupted_pi_run_resumes_on_its_session(world):
    w = world
    p = w.cli("task-create", "Rename the parser module", "--json")
    assert p.returncode == 0, p.stderr
    tid = json.loads(p.stdout)["id"]
    p = w.cli("spawn-agent", "--profile", "pi-fake-resume", "--next", "--json")
    assert p.returncode == 0, p.stderr
    aid = json.loads(p.stdout)["id"]
    # pi asked the model, got the hanging tool call, and said which session it writes.
    wait(lambda: len(w.fake.requests) >= 1, "the first model request", w)
    sess = wait(lambda: w.call("agent-status", id=aid).get("agent_session"), "pi's session id", w)
    wait(lambda: w.call("agent-status", id=aid)["tool_calls"] >= 1, "the bash tool call", w)
    w.daemon.kill9()
    w.daemon.start()
    st = w.call("agent-status", id=aid)
    assert st["state"] == "interrupted", st
    assert w.call("task-show", id=tid)["status"] == "open"
    p = w.cli("agent-resume", aid, "--json")
    assert p.returncode == 0, p.stderr
    b = json.loads(p.stdout)
    assert b["id"] == aid and b["epoch"] == 2
    st = w.wait_final(aid)
    assert st["state"] == "done", st
    assert st["args"][-2:] == ["--session", sess]
    t = w.call("task-show", id=tid)
    assert t["status"] == "done" and t["result"]["text"] == ANSWER and t["result"]["epoch"] == 2
    # The conversation went on: the resumed request carries the task's prompt and the resume's.
    last = w.fake.requests[-1]["body"]["messages"]
    text = json.dumps(last)
    assert "Rename the parser module" in text and "interrupted" in text, last
