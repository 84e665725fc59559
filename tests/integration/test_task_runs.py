"""Task-bound runs (issue 17): spawn-agent/spawn-local {task: ID | "next"}.

The spawn claims the task for the new agent in the transaction that records
the agent (a claim epoch), renders the prompt from the task, and settles the
task when the run ends: done completes it with {text, usage, exit_code,
agent, epoch}; an error, a kill or a lost daemon puts it back in the queue
with attempts counted and the reason kept, or fails it after max_attempts.
An agent that completes its task itself through its channel is left alone.
A daemon SIGKILLed while task-bound agents run loses no task and completes
none twice.  The agent object carries last_message; `colibri agent-result`
prints it.
"""
import json
import os
import time

import pytest

from conftest import CallError
from test_supervision_helpers import agent_bin, sup_daemon, wait_gone, wait_state

TEXT = "Hello from the colibri test agent."
PY = "/usr/bin/python3"


def spawn(d, **kw):
    return d.call("spawn-local", kw)


def task_of(d, tid):
    return d.call("task-show", id=tid)


def wait_task(d, tid, pred, timeout=20.0):
    deadline = time.time() + timeout
    t = None
    while time.time() < deadline:
        t = task_of(d, tid)
        if pred(t):
            return t
        time.sleep(0.05)
    raise AssertionError("task %s never got there: %s\n%s" % (tid, t, d.read_log()[-3000:]))


def topics(d, prefix="task."):
    return [e["event"] for e in d.call("events-read", limit=10000)["items"]
            if e["event"].startswith(prefix)]


def test_next_done_result_and_agent_result(make_daemon):
    d = sup_daemon(make_daemon)
    r = d.cli("task-create", "Say hello", "--body", "to the board", "--json")
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["id"]
    r = d.cli("spawn-local", agent_bin(), "--next", "--json")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["task"] == tid and a["epoch"] == 1
    t = wait_task(d, tid, lambda t: t["status"] == "done")
    res = t["result"]
    assert res["text"] == TEXT
    assert res["agent"] == a["id"] and res["epoch"] == 1 and res["exit_code"] == 0
    assert res["usage"]["output"] == 6 and res["usage"]["input"] == 42
    assert t["epoch"] == 1 and t["attempts"] == 0
    st = wait_gone(d, a["id"])
    assert st["state"] == "done" and st["last_message"] == TEXT
    assert st["task"] == tid and st["epoch"] == 1
    r = d.cli("agent-result", a["id"])
    assert r.returncode == 0 and r.stdout == TEXT + "\n", (r.stdout, r.stderr)
    # One claim, one completion, in that order.
    ts = topics(d)
    assert ts.count("task.claimed") == 1 and ts.count("task.completed") == 1
    assert ts.index("task.claimed") < ts.index("task.completed")


def test_prompt_from_task_and_template(make_daemon, tmp_path):
    d = sup_daemon(make_daemon)
    out = tmp_path / "prompt.txt"
    envf = tmp_path / "env.txt"
    script = 'printf "%s" "$COLIBRI_PROMPT" > "$1"; echo "$COLIBRI_TASK_ID $COLIBRI_TASK_EPOCH" > "$2"'
    t1 = d.call("task-create", title="Fix the parser", body="It drops the last line.")["id"]
    a = spawn(d, binary="/bin/sh", args=["-c", script, "sh", str(out), str(envf)],
               task=t1)
    wait_gone(d, a["id"])
    assert out.read_text() == "Fix the parser\n\nIt drops the last line."
    assert envf.read_text().split() == [str(t1), "1"]
    assert wait_task(d, t1, lambda t: t["status"] == "done")["result"]["text"] is None
    t2 = d.call("task-create", title="Second", priority=5)["id"]
    a = spawn(d, binary="/bin/sh", args=["-c", script, "sh", str(out), str(envf)],
               task="next", prompt="#{{id}} {{title}} (p{{priority}}, try {{attempts}}) {{nope}")
    wait_gone(d, a["id"])
    assert out.read_text() == "#%d Second (p5, try 0) {{nope}" % t2
    with pytest.raises(CallError) as e:
        spawn(d, binary="/bin/sh", args=["-c", "true"], task="next",
               prompt="{{titel}}")
    assert e.value.code == "invalid_argument" and "{{titel}}" in e.value.message


def test_failed_runs_count_then_fail(make_daemon):
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Doomed")["id"]
    a = spawn(d, binary="/bin/sh", args=["-c", "exit 3"], task=tid, max_attempts=2)
    t = wait_task(d, tid, lambda t: t["status"] != "claimed")
    wait_gone(d, a["id"])
    assert t["status"] == "open" and t["attempts"] == 1 and t["owner"] is None
    assert "3" in t["last_error"]
    assert tid in [x["id"] for x in d.call("task-ready")["items"]]
    a = spawn(d, binary="/bin/sh", args=["-c", "exit 4"], task="next")
    t = wait_task(d, tid, lambda t: t["status"] not in ("claimed", "open"))
    assert t["status"] == "failed" and t["attempts"] == 2 and t["epoch"] == 2
    assert "4" in t["last_error"]
    assert "task.failed" in topics(d)
    assert tid not in [x["id"] for x in d.call("task-ready")["items"]]
    with pytest.raises(CallError) as e:
        spawn(d, binary="/bin/sh", args=["-c", "true"], task=tid)
    assert e.value.code == "conflict"


def test_refusals_start_nothing(make_daemon):
    d = sup_daemon(make_daemon)
    with pytest.raises(CallError) as e:
        spawn(d, binary=agent_bin(), task="next")
    assert e.value.code in ("not_found", "conflict")
    tid = d.call("task-create", title="Held")["id"]
    d.call("task-claim", agent="someone", id=tid)
    with pytest.raises(CallError) as e:
        spawn(d, binary=agent_bin(), task=tid)
    assert e.value.code == "conflict"
    with pytest.raises(CallError) as e:
        spawn(d, binary=agent_bin(), task=tid, mode="rpc")
    assert e.value.code == "invalid_argument"
    for bad in (0, -1, "first", True, 1.5, [1]):
        with pytest.raises(CallError) as e:
            spawn(d, binary=agent_bin(), task=bad)
        assert e.value.code == "invalid_argument", bad
    with pytest.raises(CallError) as e:
        spawn(d, binary=agent_bin(), task="next", max_attempts=0)
    assert e.value.code == "invalid_argument"
    assert d.call("list-agents")["items"] == []
    t = task_of(d, tid)
    assert t["owner"] == "someone" and t["epoch"] == 1


def test_kill_puts_task_back(make_daemon):
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Long")["id"]
    a = spawn(d, binary=agent_bin(), args=["--scenario", "hang"], task=tid)
    wait_state(d, a["id"], ("working",))
    d.call("kill-agent", id=a["id"], grace_ms=500)
    t = task_of(d, tid)
    assert t["status"] == "open" and t["attempts"] == 1 and t["owner"] is None, t
    assert t["last_error"]


# The agent completes its own task through its channel (with its epoch), then exits 1.
SELF = r"""
import json, os, socket, sys
s = socket.socket(fileno=os.dup(int(os.environ["COLIBRI_FD"])))
f = s.makefile("rwb")
def call(cmd, args):
    f.write((json.dumps({"id": 1, "cmd": cmd, "args": args}) + "\n").encode()); f.flush()
    return json.loads(f.readline())
tid, ep = int(os.environ["COLIBRI_TASK_ID"]), int(os.environ["COLIBRI_TASK_EPOCH"])
r1 = call("task-complete", {"id": tid, "epoch": ep, "result": "mine"})
r2 = call("task-complete", {"id": tid, "epoch": ep, "result": "again"})
r3 = call("task-complete", {"id": tid, "epoch": ep + 1, "result": "stale"})
print(json.dumps([r1["ok"], r2["ok"], r3.get("error", {}).get("code")]), flush=True)
if len(sys.argv) > 1:
    open(sys.argv[1], "w").write("done")
    import time
    time.sleep(600)
sys.exit(1)
"""


def test_agent_completes_itself(make_daemon):
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Mine")["id"]
    a = spawn(d, binary=PY, args=["-c", SELF], task=tid)
    st = wait_gone(d, a["id"])
    assert st["state"] == "error"
    line = [json.loads(x) for x in d.call("session-read", id=a["id"])["lines"]][0]
    assert line == [True, True, "conflict"]
    t = task_of(d, tid)
    assert t["status"] == "done" and t["result"] == "mine" and t["attempts"] == 0
    assert topics(d).count("task.completed") == 1


def test_daemon_killed_while_bound_runs(make_daemon, tmp_path):
    """SIGKILL the daemon while task-bound agents run: each task is completed exactly once
    or back in the queue (the attempt not counted: the run was interrupted, not failed),
    never lost, never held twice; no stale claim before or after."""
    d = sup_daemon(make_daemon)
    flag = tmp_path / "completed"
    hang = [d.call("task-create", title="hang %d" % i)["id"] for i in range(3)]
    mine = d.call("task-create", title="self")["id"]
    agents = [spawn(d, binary=agent_bin(), args=["--scenario", "hang"], task=t)
              for t in hang]
    agents.append(spawn(d, binary=PY, args=["-c", SELF, str(flag)], task=mine))
    for a in agents[:3]:
        wait_state(d, a["id"], ("working",))
    deadline = time.time() + 20
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists()
    counts = d.call("status")["counts"]["tasks"]
    assert counts["claimed"] == 3 and counts["stale_claims"] == 0
    d.kill9()
    d.start()
    for t in hang:
        x = task_of(d, t)
        assert x["status"] == "open" and x["attempts"] == 0 and x["owner"] is None, x
        assert x["last_error"] is None
    x = task_of(d, mine)
    assert x["status"] == "done" and x["result"] == "mine" and x["attempts"] == 0
    for a in agents:
        st = d.call("agent-status", id=a["id"])
        assert st["state"] == "interrupted", st
        assert st["reason"] == "daemon restarted while working", st
    assert topics(d).count("task.completed") == 1
    assert d.call("status")["counts"]["tasks"]["stale_claims"] == 0
    # Back in the queue means claimable again, with a newer epoch.
    a = spawn(d, binary=agent_bin(), task=hang[0])
    assert a["epoch"] == 2
    t = wait_task(d, hang[0], lambda t: t["status"] == "done")
    assert t["result"]["epoch"] == 2 and t["attempts"] == 0


def test_bound_claims_carry_no_lease(make_daemon):
    """A task-bound claim has no lease: it ends with its run, never when a timer runs out;
    status counts it live, not stale."""
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Slow")["id"]
    a = spawn(d, binary=agent_bin(), args=["--scenario", "hang"], task=tid)
    wait_state(d, a["id"], ("working",))
    t = task_of(d, tid)
    assert t["status"] == "claimed" and t["owner"] == a["id"] and t["lease_expires_ms"] is None
    assert d.call("status")["counts"]["tasks"]["stale_claims"] == 0
    d.call("kill-agent", id=a["id"], grace_ms=200)
    assert task_of(d, tid)["status"] == "open"
    assert d.call("status")["counts"]["tasks"]["stale_claims"] == 0


def test_stale_claims_counts_an_unleased_claim_without_a_live_owner(make_daemon):
    """The count is real: a claim without a lease whose owner is no live agent (planted in
    the database while the daemon is down) shows as stale."""
    import sqlite3
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Orphan")["id"]
    d.stop()
    db = sqlite3.connect(os.path.join(d.state_dir, "colibri.sqlite"))
    db.execute("UPDATE tasks SET status = 'claimed', owner = 'nobody-runs-me', "
               "lease_expires = NULL WHERE id = ?", (tid,))
    db.commit()
    db.close()
    d.start()
    assert d.call("status")["counts"]["tasks"]["stale_claims"] == 1


def test_agent_resume_continues_the_session(make_daemon):
    """An interrupted pi run (colibri-test-agent speaking pi, continuing with --session as pi
    does) resumes on the same session and agent id, claims its task again and completes it."""
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Resume me")["id"]
    a = d.call("spawn-agent", {"provider": "pi", "binary": agent_bin(),
                               "args": ["--scenario", "hang-until-resumed"], "task": tid})
    st = wait_state(d, a["id"], ("working",))
    deadline = time.time() + 10
    while d.call("agent-status", id=a["id"]).get("agent_session") is None:
        assert time.time() < deadline
        time.sleep(0.05)
    d.kill9()
    d.start()
    st = d.call("agent-status", id=a["id"])
    assert st["state"] == "interrupted"
    assert task_of(d, tid)["status"] == "open"
    r = d.cli("agent-resume", a["id"], "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["id"] == a["id"] and b["session_id"] == a["session_id"] and b["epoch"] == 2
    t = wait_task(d, tid, lambda t: t["status"] == "done")
    assert t["result"]["text"] == TEXT and t["result"]["epoch"] == 2
    st = wait_gone(d, a["id"])
    assert st["state"] == "done" and st["args"][-2:] == ["--session", st["agent_session"]]
    # Only an interrupted run resumes; a local program never (no session to continue).
    with pytest.raises(CallError) as e:
        d.call("agent-resume", id=a["id"])
    assert e.value.code == "conflict" and "interrupted" in e.value.message
    c = spawn(d, binary=agent_bin(), args=["--scenario", "hang"])
    wait_state(d, c["id"], ("working",))
    d.kill9()
    d.start()
    with pytest.raises(CallError) as e:
        d.call("agent-resume", id=c["id"])
    assert e.value.code == "conflict" and "only pi" in e.value.message
    with pytest.raises(CallError) as e:
        d.call("agent-resume", id="no-such-agent")
    assert e.value.code == "not_found"


def test_run_timeout_ends_a_hung_run(make_daemon):
    """timeout_ms is a run's deadline: a hung agent's tree is killed, the run ends in error
    "run timed out after N ms" and its task goes back with the attempt counted."""
    d = sup_daemon(make_daemon)
    tid = d.call("task-create", title="Hangs")["id"]
    a = spawn(d, binary=agent_bin(), args=["--scenario", "hang"], task=tid, timeout_ms=600)
    st = wait_gone(d, a["id"])
    assert st["state"] == "error" and st["reason"] == "run timed out after 600 ms", st
    t = task_of(d, tid)
    assert t["status"] == "open" and t["attempts"] == 1
    assert t["last_error"] == "run timed out after 600 ms"
    for bad in (-1, 50, 604800001):
        with pytest.raises(CallError) as e:
            spawn(d, binary=agent_bin(), timeout_ms=bad)
        assert e.value.code == "invalid_argument"


def test_readme_board_walk_through(make_daemon, tmp_path):
    """README.md "A walk-through", the board's agents, word for word (after the walk-through's
    first part left task 1 done and task 2 ready; SIGHUP sent to this daemon, not by pkill)."""
    import signal
    conf = tmp_path / "etc"
    d = sup_daemon(make_daemon, extra_args=["--config-dir", str(conf)])
    conf.mkdir(mode=0o700)
    d.cli("task-create", "write the parser", "--priority", "2")
    d.cli("task-create", "test the parser", "--depends-on", "1")
    d.cli("task-claim", "agent-1")
    d.cli("task-complete", "1", "--agent", "agent-1", "--result", '{"ok": true}')

    def hup():
        before = d.read_log().count("reloaded") + d.read_log().count("policy from")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while d.read_log().count("reloaded") + d.read_log().count("policy from") == before:
            assert time.time() < deadline, d.read_log()[-2000:]
            time.sleep(0.05)

    (conf / "profiles.json").write_text(
        '{"profiles": [{"name": "demo", "provider": "local", "binary": "colibri-test-agent"}]}\n')
    hup()
    r = d.cli("spawn-agent", "--profile", "demo", "--next", "--json")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["task"] == 2
    t = wait_task(d, 2, lambda t: t["status"] == "done")
    assert t["result"]["text"] == TEXT and t["result"]["agent"] == a["id"]
    wait_gone(d, a["id"])
    assert d.cli("agent-result", a["id"]).stdout == TEXT + "\n"
    (conf / "dispatch.json").write_text(
        '{"enabled": true, "tags": {"demo": "demo"}, "caps": {"host": 4}}\n')
    hup()
    for title in ("say hello", "say hello again"):
        assert d.cli("task-create", title, "--tag", "demo").returncode == 0
    r = d.cli("dispatch", "status")
    assert r.returncode == 0, r.stderr
    for tid in (3, 4):
        assert wait_task(d, tid, lambda t: t["status"] == "done")["result"]["text"] == TEXT
    r = d.cli("task-list", "--status", "done")
    assert r.returncode == 0 and "say hello again" in r.stdout, r.stdout
    assert d.call("status")["counts"]["tasks"]["stale_claims"] == 0


def test_dispatcher_resume_true_continues_interrupted_runs(make_daemon, tmp_path):
    """dispatch.json resume: true: at start the dispatcher resumes the interrupted pi runs on
    their sessions (the same agent, its task claimed again), instead of starting new ones."""
    conf = tmp_path / "etc"
    conf.mkdir(mode=0o700)
    (conf / "profiles.json").write_text(json.dumps({"profiles": [
        {"name": "p", "provider": "pi", "binary": agent_bin(),
         "args": ["--scenario", "hang-until-resumed"]}]}))
    (conf / "dispatch.json").write_text(json.dumps(
        {"enabled": True, "default_profile": "p", "resume": True, "caps": {"host": 2}}))
    d = sup_daemon(make_daemon, extra_args=["--config-dir", str(conf)])
    tid = d.call("task-create", title="Resume me")["id"]
    deadline = time.time() + 20
    while True:
        t = task_of(d, tid)
        if t["owner"] and d.call("agent-status", id=t["owner"]).get("agent_session"):
            break
        assert time.time() < deadline, t
        time.sleep(0.05)
    aid = t["owner"]
    d.kill9()
    d.start()
    t = wait_task(d, tid, lambda t: t["status"] == "done")
    assert t["result"]["agent"] == aid and t["result"]["epoch"] == 2, t
    assert t["attempts"] == 0
    agents = [a["id"] for a in d.call("list-agents", kind="spawned")["items"]]
    assert agents == [aid], agents
