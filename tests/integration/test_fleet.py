"""A fleet run (issue 18, "What must be shown"): 200 tasks worked by the dispatcher with a
host cap of 8, through stand-in agents (colibri-test-agent and /bin/sh) that succeed, fail,
hang and hit a provider's 429 with a reset time, across two daemon SIGKILLs mid-run.

Shown, from the daemon's own event log and replies:
- every task ends done or failed, exactly once (one task.completed for a done task, none for
  a failed one; a failed task's last event says failed);
- the cap is never exceeded: the claims the event stream shows held at once (task.claimed
  adds one, task.completed/released/failed/expired takes it away) stay <= 8 at every event;
- the parked agents restart at their reset (+- 1 s) and not before: each quota run's second
  start, as the stand-in records it, against the reset the agent's status gave;
- stale_claims in status is 0 at every sample, before, between and after the kills.
"""
import json
import os
import threading
import time

import pytest

from conftest import Conn
from test_supervision_helpers import agent_bin, sup_daemon

COUNTS = {"ok": 140, "fail": 30, "hang": 15, "quota": 15}
CAP = 8
DEADLINE_S = 240  # the whole run, on a loaded 2-core machine


def write(path, obj, mode):
    with open(path, "w") as f:
        f.write(json.dumps(obj))
    os.chmod(path, mode)


def fleet_conf(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir(mode=0o700)
    qdir = tmp_path / "quota"
    qdir.mkdir()
    ta = agent_bin()
    profiles = [
        {"name": "ok", "provider": "local", "binary": ta,
         "args": ["--scenario", "text", "--delay-ms", "10"], "max_attempts": 3},
        {"name": "fail", "provider": "local", "binary": "/bin/sh", "args": ["-c", "exit 3"],
         "max_attempts": 2},
        {"name": "hang", "provider": "local", "binary": ta, "args": ["--scenario", "hang"],
         "timeout_ms": 1500, "max_attempts": 1},
        # One counter file per task (the stand-in's --scenario quota answers 429 with
        # Retry-After: 2 on its first run, then the text): each quota task parks once.
        {"name": "quota", "provider": "local", "binary": "/bin/sh",
         "args": ["-c", 'TEST_AGENT_QUOTA_FILE="$0/$COLIBRI_TASK_ID" exec "$1" --scenario quota',
                  str(qdir), ta],
         "max_attempts": 3},
    ]
    write(conf / "profiles.json", {"profiles": profiles}, 0o600)
    write(conf / "dispatch.json", {"enabled": True, "tags": {k: k for k in COUNTS},
                                   "caps": {"host": CAP}, "interval_ms": 200}, 0o600)
    return str(conf), qdir


class Fleet:
    """Follows the event log (reconnecting after a kill, from the last seq seen) and samples
    status: the claims held at once, completions per task, stale claims."""

    def __init__(self, d):
        self.d = d
        self.seq = 0
        self.held = set()
        self.max_held = 0
        self.completed = {}
        self.last = {}  # task id -> (event, status) of its last task event
        self.parks = {}  # agent id -> parked_until_ms seen
        self.stale = []
        self.errors = []
        self.stop = False
        self.lock = threading.Lock()

    def absorb(self, ev):
        topic, data = ev["event"], ev["data"]
        self.seq = max(self.seq, ev["seq"])
        with self.lock:
            if topic == "task.claimed":
                self.held.add(data["id"])
            elif topic in ("task.completed", "task.released", "task.failed", "task.expired"):
                self.held.discard(data["id"])
            if topic.startswith("task."):
                self.last[data["id"]] = (topic, data.get("status"))
            if topic == "task.completed":
                self.completed[data["id"]] = self.completed.get(data["id"], 0) + 1
            self.max_held = max(self.max_held, len(self.held))

    def follow(self):
        while not self.stop:
            try:
                c = Conn(self.d.socket)
                c.call("subscribe", topics=["task.", "agent.state"], since=self.seq)
                while not self.stop:
                    try:
                        ev = c.next_event(timeout=0.5)
                    except TimeoutError:
                        continue
                    if ev is None:
                        break
                    self.absorb(ev)
                    if ev["event"] == "agent.state" and ev["data"]["to"] == "blocked" and \
                            ev["data"]["reason"].startswith("quota"):
                        st = self.d.call("agent-status", id=ev["data"]["id"])
                        self.parks[ev["data"]["id"]] = st["parked_until_ms"]
                c.close()
            except (OSError, ConnectionError, ValueError, KeyError) as e:
                self.errors.append(repr(e))
                time.sleep(0.1)

    def sample(self):
        while not self.stop:
            try:
                n = self.d.call("status")["counts"]["tasks"]["stale_claims"]
                if n != 0:
                    self.stale.append(n)
            except (OSError, ConnectionError):
                pass
            time.sleep(0.2)


def ended(d, ids):
    return all(d.call("task-show", id=t)["status"] in ("done", "failed") for t in ids)


def test_fleet_of_200_tasks_cap_8_two_kills(make_daemon, tmp_path):
    conf, qdir = fleet_conf(tmp_path)
    d = sup_daemon(make_daemon, extra_args=["--config-dir", conf])
    tasks = {}
    # Interleaved, so the kills land among every kind of run.
    order = [k for i in range(max(COUNTS.values())) for k in COUNTS if i < COUNTS[k]]
    for i, kind in enumerate(order):
        tasks[d.call("task-create", title="%s %d" % (kind, i), tags=[kind])["id"]] = kind
    f = Fleet(d)
    threads = [threading.Thread(target=f.follow), threading.Thread(target=f.sample)]
    for t in threads:
        t.daemon = True
        t.start()
    start = time.time()
    try:
        for kill_at in (50, 120):
            while sum(f.completed.values()) < kill_at:
                assert time.time() - start < DEADLINE_S, "fleet stuck before kill at %d" % kill_at
                time.sleep(0.1)
            d.kill9()
            d.start()
        while not ended(d, list(tasks)):
            assert time.time() - start < DEADLINE_S, d.call("dispatch", action="status")
            time.sleep(0.5)
        time.sleep(1.0)  # the last events reach the follower
    finally:
        f.stop = True
        for t in threads:
            t.join(10)
    # Every task ends done or failed exactly once.
    final = {t: d.call("task-show", id=t) for t in tasks}
    for t, kind in tasks.items():
        x = final[t]
        if x["status"] == "done":
            assert f.completed.get(t) == 1, (t, kind, f.completed.get(t))
        else:
            assert x["status"] == "failed" and t not in f.completed, (t, kind, x)
            assert f.last[t] == ("task.failed", "failed"), (t, f.last.get(t))
    by = {k: [final[t]["status"] for t in tasks if tasks[t] == k] for k in COUNTS}
    assert set(by["ok"]) == {"done"} and set(by["quota"]) == {"done"}, by
    assert set(by["fail"]) == {"failed"} and set(by["hang"]) == {"failed"}, by
    # The cap was never passed, and claims never went stale.
    assert 0 < f.max_held <= CAP, f.max_held
    assert f.stale == [], f.stale
    assert d.call("status")["counts"]["tasks"]["stale_claims"] == 0
    # Parked agents restarted at their reset (+- 1 s), not before: the stand-in wrote the
    # start time of each run of each quota task.
    checked = 0
    for agent, until in f.parks.items():
        st = d.call("agent-status", id=agent)
        if until is None or st.get("task") is None:
            continue
        path = qdir / str(st["task"])
        runs = [int(x) for x in path.read_text().split()] if path.exists() else []
        later = [r for r in runs if r > until - 1000]
        if st["state"] == "interrupted" or not later:
            continue  # a kill cut this park short: its run restarts with the task, not the park
        assert until - 5 <= later[0] <= until + 1000, (agent, until, runs)
        checked += 1
    assert checked >= 5, (checked, f.parks)
