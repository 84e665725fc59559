"""Quota parking and "gave up after N restarts" (issue 18).

colibri-test-agent's `quota` scenario answers like pi on a provider's HTTP
429 (stopReason error, errorMessage "429 Too Many Requests ... (Retry-After:
2)", exit 0) for its first TEST_AGENT_QUOTA_TIMES runs, then answers; each
run writes its start time (ms) as a line of TEST_AGENT_QUOTA_FILE.  The
agent runs task-bound from a profile, so the profile's park is visible in
the profiles command's parked_until_ms.

Shown here: the agent goes blocked "quota until HH:MM:SS" (its detail's
parked_until_ms the reset), its task stays claimed by it, the profile is
parked until the same time; the run restarts at the reset (+- 1 s) and not
before, on the same session, without counting a restart; the task completes
once.  Without a time in the text: "quota, retry in N s" on a doubling
schedule (COLIBRI_QUOTA_BACKOFF_MS shortens it for the test).  kill-agent
while parked ends it at once and its task goes back as for any killed run.
A crash whose restarts are spent says "gave up after N restarts: ...".
"""
import json
import os
import time

from test_supervision_helpers import (Watch, agent_bin, session_lines, sup_daemon, wait_gone,
                                      wait_state)


def conf_dir(tmp_path, env, restart=None):
    cd = tmp_path / "conf"
    cd.mkdir(mode=0o700)
    prof = {"name": "q", "provider": "local", "binary": agent_bin(),
            "args": ["--scenario", "quota"], "env": env,
            "restart": restart or {"max_restarts": 0}, "max_attempts": 3}
    p = cd / "profiles.json"
    p.write_text(json.dumps({"profiles": [prof]}))
    os.chmod(p, 0o600)
    return str(cd)


def quota_daemon(make_daemon, tmp_path, env, daemon_env=None):
    return sup_daemon(make_daemon, extra_args=["--config-dir", conf_dir(tmp_path, env)],
                      env=daemon_env)


def runs(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def wait_task(d, tid, pred, timeout=20.0):
    deadline = time.time() + timeout
    t = None
    while time.time() < deadline:
        t = d.call("task-show", id=tid)
        if pred(t):
            return t
        time.sleep(0.05)
    raise AssertionError("task %s never got there: %s\n%s" % (tid, t, d.read_log()[-3000:]))


def wait_parked(w, aid, timeout=15.0):
    return w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == aid
                  and e["data"]["to"] == "blocked" and e["data"]["cause"] == "quota", timeout)


def parked(d):
    """Each profile's parked_until_ms (the profiles command)."""
    return {p["name"]: p["parked_until_ms"] for p in d.call("profiles")["profiles"]}


def task_events(d, tid):
    return [e["event"] for e in d.call("events-read", limit=10000)["items"]
            if e["event"].startswith("task.") and e["data"].get("id") == tid]


def test_parked_until_reset_then_task_done(make_daemon, tmp_path):
    qf = str(tmp_path / "runs")
    d = quota_daemon(make_daemon, tmp_path, {"TEST_AGENT_QUOTA_FILE": qf})
    tid = d.call("task-create", title="Say hello")["id"]
    w = Watch(d)
    a = d.call("spawn-agent", profile="q", task=tid)
    ev = wait_parked(w, a["id"])["data"]
    st = d.call("agent-status", id=a["id"])
    until = st["parked_until_ms"]
    assert st["state"] == "blocked" and st["live"] is True, st
    # The reset is the 429's Retry-After: 2, read when the daemon saw the line.
    first = runs(qf)[0]
    assert first + 2000 <= until <= first + 2000 + 1000, (first, until)
    assert ev["reason"] == "quota until " + time.strftime("%H:%M:%S", time.localtime(until / 1000))
    assert st["reason"] == ev["reason"]
    # Meanwhile: the task stays claimed by it, the profile is parked until the same time.
    t = d.call("task-show", id=tid)
    assert (t["status"], t["owner"], t["epoch"], t["attempts"]) == ("claimed", a["id"], 1, 0), t
    assert parked(d) == {"q": until}
    # The run restarts at the reset (+- 1 s), not before, and completes the task once.
    t = wait_task(d, tid, lambda t: t["status"] == "done")
    second = runs(qf)[1]
    assert until - 5 <= second <= until + 1000, (until, second)
    st = wait_gone(d, a["id"])
    assert (st["state"], st["restarts"], st["parked_until_ms"]) == ("done", 0, None), st
    assert t["result"]["agent"] == a["id"] and t["result"]["epoch"] == 1
    assert task_events(d, tid) == ["task.created", "task.claimed", "task.completed"]
    # Both runs on one session; no restart counted, none announced.
    assert sum(1 for l in session_lines(d, a["id"]) if '"stopReason":"error"' in l) >= 1
    w.pump(0.3)
    assert w.of(a["id"], "agent.restarted") == []
    trans = [(f, t_, c) for f, t_, _, c in w.states(a["id"])]
    i = trans.index(("error", "blocked", "quota"))
    assert ("blocked", "idle", "restart") in trans[i:], trans
    # The park is over: the profile is free again.
    assert parked(d) == {"q": None}


def test_no_time_given_doubles(make_daemon, tmp_path):
    qf = str(tmp_path / "runs")
    d = quota_daemon(make_daemon, tmp_path,
                     {"TEST_AGENT_QUOTA_FILE": qf, "TEST_AGENT_QUOTA_TIMES": "2",
                      "TEST_AGENT_QUOTA_MESSAGE": "429 Too Many Requests"},
                     daemon_env={"COLIBRI_QUOTA_BACKOFF_MS": "400"})
    w = Watch(d)
    a = d.call("spawn-agent", profile="q")
    parks = []
    for _ in range(2):
        ev = w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == a["id"]
                    and e["data"]["cause"] == "quota" and e not in parks)
        parks.append(ev)
    st = wait_gone(d, a["id"])
    assert (st["state"], st["restarts"]) == ("done", 0), st
    assert [p["data"]["reason"] for p in parks] == ["quota, retry in 1 s"] * 2
    t = runs(qf)
    assert len(t) == 3, t
    # 400 ms doubling, each drawn from its upper quarter: [300, 400], then [600, 800].
    assert 300 <= t[1] - t[0] <= 400 + 1000 and 600 <= t[2] - t[1] <= 800 + 1000, t


def test_kill_while_parked(make_daemon, tmp_path):
    qf = str(tmp_path / "runs")
    d = quota_daemon(make_daemon, tmp_path,
                     {"TEST_AGENT_QUOTA_FILE": qf, "TEST_AGENT_QUOTA_MESSAGE":
                      "429 rate limit reached; Retry-After: 120"})
    tid = d.call("task-create", title="Wait")["id"]
    w = Watch(d)
    a = d.call("spawn-agent", profile="q", task=tid)
    wait_parked(w, a["id"])
    until = d.call("agent-status", id=a["id"])["parked_until_ms"]
    assert until > time.time() * 1000 + 100000
    t0 = time.time()
    d.call("kill-agent", id=a["id"])
    assert time.time() - t0 < 5
    st = wait_gone(d, a["id"], timeout=5)
    assert st["state"] == "error", st
    assert st["reason"].startswith("stopped while parked (quota until "), st
    assert st["parked_until_ms"] is None
    t = wait_task(d, tid, lambda t: t["status"] != "claimed")
    assert (t["status"], t["owner"], t["attempts"]) == ("open", None, 1), t
    assert "stopped while parked" in t["last_error"]
    assert len(runs(qf)) == 1  # never restarted
    # The credential's limit outlives the agent.
    assert parked(d) == {"q": until}


def test_crash_gives_up_after_restarts(make_daemon):
    d = sup_daemon(make_daemon)
    a = d.call("spawn-agent", {"provider": "local", "args": ["--scenario", "crash"],
                               "restart": {"max_restarts": 2, "backoff_ms": 20}})
    st = wait_gone(d, a["id"])
    assert (st["state"], st["restarts"]) == ("error", 2), st
    assert st["reason"] == "gave up after 2 restarts: exited with status 3", st
    # A run that was never to be restarted says nothing of giving up.
    b = d.call("spawn-agent", {"provider": "local", "args": ["--scenario", "crash"]})
    st = wait_gone(d, b["id"])
    assert st["reason"] == "exited with status 3", st
