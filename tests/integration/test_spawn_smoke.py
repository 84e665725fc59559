"""colibri-smoke-agent, the reference client of the board: three of them
drain twenty tasks, each done exactly once, with registration, heartbeats,
progress and results visible to the daemon.
"""
import collections
import os
import signal
import subprocess
import time

import pytest

from conftest import bin_path


def run_smoke(d, *args, wait=True):
    env = dict(os.environ)
    env["COLIBRI_SOCKET"] = d.socket
    p = subprocess.Popen([bin_path("colibri-smoke-agent")] + [str(a) for a in args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = p.communicate(timeout=60)
        return p.returncode, out, err
    return p


def test_three_agents_drain_twenty_tasks_exactly_once(daemon):
    tasks = [daemon.call("task-create", title="smoke %d" % i, priority=i % 3)["id"] for i in range(20)]
    seq = daemon.call("events-read", since=0, limit=1)["last_seq"]
    procs = [run_smoke(daemon, "--id", "smoke-%d" % i, "--lease-ms", "5000", "--heartbeat-ms", "20",
                       "--work-ms", "30", "--idle-exit-ms", "300", wait=False) for i in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, err))
    for rc, err in results:
        assert rc == 0, err
        assert "registered as smoke-" in err and "no ready task for 300 ms; exiting" in err, err
    by = collections.Counter()
    for t in tasks:
        task = daemon.call("task-show", id=t)
        assert task["status"] == "done", task
        assert task["result"]["by"] == task["owner"], task
        assert task["progress"] == "step 3/3"
        by[task["owner"]] += 1
    assert sum(by.values()) == 20 and set(by) <= {"smoke-0", "smoke-1", "smoke-2"}
    # Each agent's log names exactly the tasks it completed.
    for i, (rc, err) in enumerate(results):
        assert err.count("completed task") == by["smoke-%d" % i], err
    events = daemon.call("events-read", since=seq, limit=10000)["items"]
    completed = [e["data"]["id"] for e in events if e["event"] == "task.completed"]
    assert sorted(completed) == sorted(tasks), "each task completed exactly once"
    claimed = [e["data"]["id"] for e in events if e["event"] == "task.claimed"]
    assert sorted(claimed) == sorted(tasks), "each task claimed exactly once"
    beats = collections.Counter(e["data"]["id"] for e in events if e["event"] == "agent.heartbeat")
    assert all(beats["smoke-%d" % i] >= 1 for i in range(3)), beats
    agents = {a["id"]: a for a in daemon.call("list-agents", kind="registered")["items"]}
    assert {"smoke-0", "smoke-1", "smoke-2"} <= set(agents)
    assert agents["smoke-0"]["provider"] == "smoke"


def test_max_tasks_and_idle_exit(daemon):
    for i in range(5):
        daemon.call("task-create", title="t%d" % i)
    rc, out, err = run_smoke(daemon, "--max-tasks", "2", "--idle-exit-ms", "100")
    assert rc == 0, err
    assert err.count("completed task") == 2
    assert len(daemon.call("task-list", status="done")["items"]) == 2
    t0 = time.time()
    rc, out, err = run_smoke(daemon, "--idle-exit-ms", "200")
    assert rc == 0 and err.count("completed task") == 3, err
    assert time.time() - t0 < 10
    assert daemon.call("task-ready")["items"] == []


def test_dependencies_are_respected(daemon):
    a = daemon.call("task-create", title="first")["id"]
    b = daemon.call("task-create", title="second", depends_on=[a])["id"]
    rc, out, err = run_smoke(daemon, "--idle-exit-ms", "200")
    assert rc == 0, err
    order = [l for l in err.splitlines() if "completed task" in l]
    assert '"first"' in order[0] and '"second"' in order[1], order
    assert daemon.call("task-show", id=b)["status"] == "done"


def test_sigterm_releases_the_claimed_task(daemon):
    t = daemon.call("task-create", title="long")["id"]
    p = run_smoke(daemon, "--work-ms", "20000", "--steps", "100", wait=False)
    deadline = time.time() + 10
    while daemon.call("task-show", id=t)["status"] != "claimed":
        assert time.time() < deadline
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert "released task %d" % t in err
    task = daemon.call("task-show", id=t)
    assert task["status"] == "open" and task["owner"] is None, task


def test_exit_codes(make_daemon, tmp_path):
    env = dict(os.environ)
    env["COLIBRI_SOCKET"] = str(tmp_path / "none.sock")
    exe = bin_path("colibri-smoke-agent")
    r = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 69, r.stderr
    r = subprocess.run([exe, "--lease-ms", "abc"], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "exit status:" in r.stdout and "69" in r.stdout
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(exe) + ":" + env.get("PATH", "/usr/bin:/bin")
    d = make_daemon(env=env)
    # An id the daemon refuses to register (a spawned agent's id) is exit 1.
    a = d.call("spawn-agent", {"provider": "local", "id": "spawned-1", "args": ["--scenario", "text"]})
    rc, out, err = run_smoke(d, "--id", a["id"], "--idle-exit-ms", "0")
    assert rc == 1, err
    assert "agent-register: conflict" in err, err
