"""No orphans: kill-agent, daemon shutdown and a daemon killed with SIGKILL
leave no process behind -- not even a grandchild that left the agent's
process group -- and agents a dead daemon left running are resolved as
interrupted ("daemon restarted while working") by the next one.
"""
import json
import os
import signal
import time

import pytest

from test_supervision_helpers import (Watch, kill_pids, pid_gone, pids_with_marker, session_lines,
                                      spawn, status, sup_daemon, wait_gone, wait_pids_gone,
                                      wait_state)


def grandchild_pid(d, aid, timeout=10.0):
    """The pid colibri-test-agent's grandchild scenario prints once it has left the group."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in session_lines(d, aid):
            if line.startswith('{"type":"grandchild"'):
                return json.loads(line)["pid"]
        time.sleep(0.02)
    raise AssertionError("no grandchild line for %s" % aid)


def pgid(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    return int(st[st.rindex(")") + 2:].split()[2])


@pytest.fixture
def cleanup():
    """Agent ids whose leftovers are SIGKILLed if the test fails midway."""
    ids = []
    yield ids
    for aid in ids:
        kill_pids(pids_with_marker(aid))


def test_kill_agent_kills_the_escaped_grandchild(make_daemon, cleanup):
    d = sup_daemon(make_daemon)
    a = spawn(d, provider="local", args=["--scenario", "grandchild", "--then", "hang"])
    cleanup.append(a["id"])
    g = grandchild_pid(d, a["id"])
    assert not pid_gone(g)
    assert pgid(g) != pgid(a["pid"]), "the grandchild must have left the agent's group"
    assert pgid(a["pid"]) == a["pid"], "the agent leads its own process group"
    assert wait_state(d, a["id"], ("working",))["state"] == "working"
    k = d.call("kill-agent", id=a["id"], grace_ms=2000)
    assert k["state"] == "error" and k["reason"] == "killed by signal 15 (SIGTERM)", k
    assert wait_pids_gone([a["pid"], g], timeout=5) == []
    assert pids_with_marker(a["id"]) == []
    # kill-agent on an agent that has ended replies with it, unchanged.
    again = d.call("kill-agent", id=a["id"])
    assert (again["state"], again["reason"]) == ("error", "killed by signal 15 (SIGTERM)")


def test_kill_agent_escalates_to_sigkill(make_daemon, tmp_path, cleanup):
    """An agent that ignores SIGTERM is SIGKILLed after the grace period."""
    script = tmp_path / "stubborn"
    script.write_text("#!/bin/sh\ntrap '' TERM\necho '{\"type\":\"agent_start\"}'\n"
                      "while :; do sleep 0.05; done\n")
    script.chmod(0o755)
    d = sup_daemon(make_daemon)
    a = spawn(d, provider="local", binary=str(script))
    cleanup.append(a["id"])
    wait_state(d, a["id"], ("working",))
    # A local program is working from its start (issue 17), before the shell
    # has set its trap: wait for the line it prints after the trap.
    deadline = time.time() + 15
    while not session_lines(d, a["id"]) and time.time() < deadline:
        time.sleep(0.05)
    assert session_lines(d, a["id"]), "the stubborn agent printed nothing"
    t0 = time.time()
    k = d.call("kill-agent", id=a["id"], grace_ms=300)
    took = time.time() - t0
    assert k["state"] == "error", k
    assert k["reason"] == "killed by signal 9 (SIGKILL)", k
    assert 0.25 <= took < 5, took
    assert wait_pids_gone([a["pid"]]) == []
    assert pids_with_marker(a["id"]) == []


def test_kill_unknown_agent(make_daemon):
    d = sup_daemon(make_daemon)
    from conftest import CallError
    with pytest.raises(CallError) as e:
        d.call("kill-agent", id="nobody")
    assert e.value.code == "not_found"


def test_shutdown_leaves_no_process(make_daemon, cleanup):
    d = sup_daemon(make_daemon, extra_args=["--kill-grace-ms", "1000"])
    agents = [spawn(d, provider="local", args=["--scenario", "hang"]) for _ in range(3)]
    agents.append(spawn(d, provider="local", args=["--scenario", "grandchild", "--then", "hang"]))
    agents.append(spawn(d, provider="local", mode="rpc", args=["--scenario", "text"]))
    cleanup.extend(a["id"] for a in agents)
    g = grandchild_pid(d, agents[3]["id"])
    pids = [a["pid"] for a in agents] + [g]
    assert [p for p in pids if pid_gone(p)] == []
    t0 = time.time()
    assert d.stop(signal.SIGTERM) == 0, d.read_log()[-3000:]
    assert time.time() - t0 < 5
    assert wait_pids_gone(pids, timeout=5) == []
    for a in agents:
        assert pids_with_marker(a["id"]) == []


def test_sigkilled_daemon_is_resolved_on_restart(make_daemon, cleanup):
    d = sup_daemon(make_daemon)
    agents = [spawn(d, provider="local", args=["--scenario", "hang"]) for _ in range(3)]
    agents.append(spawn(d, provider="local", args=["--scenario", "grandchild", "--then", "hang"]))
    done = spawn(d, provider="local", args=["--scenario", "text"])
    cleanup.extend(a["id"] for a in agents)
    g = grandchild_pid(d, agents[3]["id"])
    assert wait_gone(d, done["id"])["state"] == "done"
    for a in agents:
        wait_state(d, a["id"], ("working",))
    pids = [a["pid"] for a in agents] + [g]
    d.kill9()
    time.sleep(0.2)
    # The agents outlive the daemon that was killed ...
    assert [p for p in pids if pid_gone(p)] == []
    # ... until the next daemon on the same state dir resolves them.
    d.start()
    w = Watch(d, topics=("agent.state",))
    assert wait_pids_gone(pids, timeout=5) == []
    for a in agents:
        st = status(d, a["id"])
        assert (st["state"], st["reason"]) == ("interrupted", "daemon restarted while working"), st
        assert st["pid"] is None
        assert pids_with_marker(a["id"]) == []
    # A finished agent stays as it was.
    st = status(d, done["id"])
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    # The resolution is on the event stream (stored, so a subscriber from 0 sees it).
    items = d.call("events-read", since=0, limit=10000, topics=["agent.state"])["items"]
    resolved = {e["data"]["id"] for e in items
                if e["data"]["reason"] == "daemon restarted while working"}
    assert resolved == {a["id"] for a in agents}
    w.conn.close()


def test_restart_does_not_kill_a_reused_pid(make_daemon, tmp_path):
    """A recorded pid that now names another process (other start time) is left alone."""
    import subprocess
    d = sup_daemon(make_daemon)
    a = spawn(d, provider="local", args=["--scenario", "hang"])
    d.kill9()
    os.kill(a["pid"], signal.SIGKILL)
    assert wait_pids_gone([a["pid"]]) == []
    # A bystander: not an agent, no marker.  Its pid differs, so record it in
    # the database in the agent's place to model pid reuse.  Start times are in
    # clock ticks (10 ms): let one pass so the bystander's cannot equal the agent's.
    time.sleep(0.05)
    by = subprocess.Popen(["sleep", "30"])
    try:
        import sqlite3
        db = sqlite3.connect(os.path.join(d.state_dir, "colibri.sqlite"))
        cols = [r[1] for r in db.execute("PRAGMA table_info(agents)")]
        assert "pid" in cols, cols
        db.execute("UPDATE agents SET pid = ? WHERE id = ?", (by.pid, a["id"]))
        db.commit()
        db.close()
        d.start()
        st = status(d, a["id"])
        assert (st["state"], st["reason"]) == ("interrupted", "daemon restarted while working")
        time.sleep(0.2)
        assert by.poll() is None, "the bystander was killed"
    finally:
        by.kill()
        by.wait()
