"""End to end, task-bound: the real pi, confined in bubblewrap through the
profile pi-fake (pi_world.PiWorld, its key only in the env file), works a
task from the board (issue 17, "What must be shown").

- `colibri task-create` then `colibri spawn-agent --profile pi-fake
  --next`: the spawn claims the head of the ready queue for the new agent
  (claim epoch 1, in the same transaction as the agent: the task is claimed
  by it as soon as the spawn replies), pi is prompted with the task's title
  and body (the profile has no prompt_template), and when the run ends done
  the task is done with result {text: the model's final answer, usage,
  exit_code 0, agent, epoch}; the agent carries last_message and `colibri
  agent-result ID` prints the text.  A lower-priority task stays open.
- a run whose model answers HTTP 400 (profile pi-fake-400, max_attempts 2)
  puts the task back in the ready queue with attempts 1 and the provider's
  message in last_error; the second failed run makes it failed.
- `--next` with an empty queue starts nothing.
"""
import json
import os
import time

import pytest

from fake_openai import ERROR_400, TEXT
from pi_world import PiWorld, harness, skip_unless_pi_and_bwrap

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
        assert w.files_holding_key(w.daemon.state_dir) == []
    finally:
        w.close()
        w.remove()


def task_create(w, title, *opts):
    p = w.cli("task-create", title, *opts, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["id"]


def spawn_cli(w, profile, aid, *opts):
    p = w.cli("spawn-agent", "--profile", profile, "--id", aid, *opts, "--json")
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)
    assert a["id"] == aid, a
    return a


def task(w, tid):
    return w.call("task-show", id=tid)


def wait_task(w, tid, statuses, timeout=30):
    """After the agent's run ended: until the daemon has settled the task."""
    deadline = time.time() + timeout
    t = None
    while time.time() < deadline:
        t = task(w, tid)
        if t["status"] in statuses:
            return t
        time.sleep(0.1)
    raise AssertionError("task %d did not become %s: %s" % (tid, statuses, t))


def test_next_claims_the_ready_task_and_completes_it_with_the_answer(world):
    w = world
    later = task_create(w, "Tidy up later")
    tid = task_create(w, "Say hello", "--body", "Greet the operator in one line.",
                      "--priority", "5")
    a = spawn_cli(w, "pi-fake", "pi-t1", "--next")
    assert (a["task"], a["epoch"]) == (tid, 1), a
    t = task(w, tid)
    assert t["status"] in ("claimed", "done"), t
    assert (t["owner"], t["epoch"]) == ("pi-t1", 1), t

    st = w.wait_final("pi-t1")
    assert (st["state"], st["exit_code"]) == ("done", 0), st
    assert st["last_message"] == ANSWER, st
    t = wait_task(w, tid, ("done", "open", "failed"))
    assert (t["status"], t["owner"], t["attempts"]) == ("done", "pi-t1", 0), t
    r = t["result"]
    assert (r["text"], r["exit_code"], r["agent"], r["epoch"]) == (ANSWER, 0, "pi-t1", 1), r
    assert (r["usage"]["input"], r["usage"]["output"]) == (12, 6), r

    # pi was prompted from the task: its title and body, through the key-holding profile.
    assert len(w.fake.requests) == 1 and w.fake.requests[0]["auth"] == "Bearer " + w.key
    user = json.dumps([m for m in w.fake.requests[0]["body"]["messages"] if m["role"] == "user"])
    assert "Say hello" in user and "Greet the operator in one line." in user, user

    p = w.cli("agent-result", "pi-t1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ANSWER, p.stdout
    t2 = task(w, later)
    assert (t2["status"], t2["owner"], t2["attempts"]) == ("open", None, 0), t2


def test_http_400_puts_the_task_back_then_fails_it(world):
    w = world
    tid = task_create(w, "Say hello")
    a = spawn_cli(w, "pi-fake-400", "pi-f1", "--task", str(tid))
    assert (a["task"], a["epoch"]) == (tid, 1), a
    st = w.wait_final("pi-f1")
    assert (st["state"], st["reason"]) == ("error", "400 " + ERROR_400), st
    t = wait_task(w, tid, ("open", "done", "failed"))
    assert (t["status"], t["owner"], t["attempts"]) == ("open", None, 1), t
    assert ERROR_400 in t["last_error"], t
    assert t["result"] is None, t
    assert [x["id"] for x in w.call("task-ready")["items"]] == [tid]

    # The second failed run reaches the profile's max_attempts (2): failed, not ready.
    a = spawn_cli(w, "pi-fake-400", "pi-f2", "--next")
    assert (a["task"], a["epoch"]) == (tid, 2), a
    st = w.wait_final("pi-f2")
    assert st["state"] == "error", st
    t = wait_task(w, tid, ("failed", "done"))
    assert (t["status"], t["attempts"]) == ("failed", 2), t
    assert ERROR_400 in t["last_error"], t
    assert w.call("task-ready")["items"] == []
    assert [r["auth"] for r in w.fake.requests] == ["Bearer " + w.key] * 2


def test_next_with_an_empty_queue_starts_nothing(world):
    w = world
    p = w.cli("spawn-agent", "--profile", "pi-fake", "--next", "--id", "pi-none")
    assert p.returncode != 0, p.stdout
    assert "task" in p.stderr, p.stderr
    assert [x["id"] for x in w.call("list-agents")["items"]] == [], "an agent was recorded"
    time.sleep(1)
    assert w.fake.requests == []
