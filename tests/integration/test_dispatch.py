"""The dispatcher (issue 18): task tags, CONFIG_DIR/dispatch.json, the
dispatch command and `colibri dispatch on|off|status`.

Tags: task-create takes `tags` (at most 16 distinct tags of 1-64 characters
of [A-Za-z0-9_.:-]), task-update replaces them, task-list filters by `tag`;
the CLI's --tag is repeatable.
"""
import json
import os
import time

import pytest

from conftest import CallError
from test_supervision_helpers import agent_bin, sup_daemon


# ---- task tags ----


def test_tags_create_update_list_and_cli(daemon):
    c = daemon.connect()
    a = c.call("task-create", title="a", tags=["build", "lang:c"])
    b = c.call("task-create", title="b")
    assert a["tags"] == ["build", "lang:c"] and b["tags"] == []
    assert c.call("task-show", id=a["id"])["tags"] == ["build", "lang:c"]
    assert [t["id"] for t in c.call("task-list", tag="build")["items"]] == [a["id"]]
    assert [t["id"] for t in c.call("task-list", tag="lang:c", ready=True)["items"]] == [a["id"]]
    assert c.call("task-list", tag="nope")["items"] == []
    u = c.call("task-update", id=b["id"], tags=["build"])
    assert u["tags"] == ["build"]
    assert [t["id"] for t in c.call("task-list", tag="build")["items"]] == [a["id"], b["id"]]
    assert c.call("task-update", id=a["id"], tags=[])["tags"] == []
    r = daemon.cli("task-create", "c", "--tag", "x.y", "--tag", "z_1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tags"] == ["x.y", "z_1"]
    r = daemon.cli("task-list", "--tag", "z_1", "--json")
    assert r.returncode == 0 and [t["title"] for t in json.loads(r.stdout)["items"]] == ["c"]
    r = daemon.cli("task-update", str(b["id"]), "--tag", "q", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["tags"] == ["q"]


@pytest.mark.parametrize("tags,why", [
    (["a b"], "tags[0]"), ([""], "tags[0]"), (["x" * 65], "tags[0]"), (["ok", 3], "tags[1]"),
    (["é"], "tags[0]"), (["t%d" % i for i in range(17)], "at most 16"), (["d", "d"], "twice"),
])
def test_bad_tags_are_refused(daemon, tags, why):
    c = daemon.connect()
    with pytest.raises(CallError) as e:
        c.call("task-create", title="t", tags=tags)
    assert e.value.code == "invalid_argument" and why in e.value.message, e.value.message
    t = c.call("task-create", title="u")
    with pytest.raises(CallError) as e:
        c.call("task-update", id=t["id"], tags=tags)
    assert e.value.code == "invalid_argument" and why in e.value.message
    assert c.call("task-show", id=t["id"])["tags"] == []
    assert len(c.call("task-list")["items"]) == 1  # the refused create made nothing


# ---- the dispatcher ----

TAG = "%d" % (os.getpid() % 100000)


def write(path, obj, mode=0o600):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    os.chmod(path, mode)


def profile(name, delay_ms=100, binary=None, **kw):
    p = {"name": name, "provider": "local", "binary": binary or agent_bin(),
         "args": ["--delay-ms", str(delay_ms)], "restart": {"max_restarts": 0}}
    p.update(kw)
    return p


def conf_dir(tmp_path, profiles, dispatch=None):
    cd = tmp_path / "conf"
    cd.mkdir(mode=0o700, exist_ok=True)
    write(str(cd / "profiles.json"), {"profiles": profiles})
    if dispatch is not None:
        write(str(cd / "dispatch.json"), dispatch)
    return str(cd)


def start(make_daemon, cd, name="state"):
    return sup_daemon(make_daemon, name=name, extra_args=["--config-dir", cd])


class Board:
    """A task.* subscriber that rebuilds the board from events and samples its claims."""

    def __init__(self, d):
        self.conn = d.connect()
        self.conn.call("subscribe", topics=["task.", "agent."])
        self.tasks, self.max_claimed, self.completions = {}, 0, {}
        self.claimed_by_profile = {}

    def pump(self, timeout=0.2):
        while True:
            try:
                m = self.conn.next_event(timeout)
            except OSError:
                return
            if m is None:
                return
            if "event" not in m or not m["event"].startswith("task."):
                continue
            t = m["data"]
            self.tasks[t["id"]] = t
            if m["event"] == "task.completed":
                self.completions[t["id"]] = self.completions.get(t["id"], 0) + 1
            n = sum(1 for x in self.tasks.values() if x["status"] == "claimed")
            self.max_claimed = max(self.max_claimed, n)

    def claimed(self, pred=lambda t: True):
        return sum(1 for t in self.tasks.values() if t["status"] == "claimed" and pred(t))


def wait_for(pred, what, timeout=60.0, pump=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pump is not None:
            pump()
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("never: " + what)


def status(d):
    return d.call("dispatch", action="status")


def test_off_by_default_nothing_starts(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p")])  # no dispatch.json: off, no routes
    d = start(make_daemon, cd)
    t = d.call("task-create", title="t")
    time.sleep(1.0)
    assert d.call("task-show", id=t["id"])["status"] == "open"
    assert d.call("list-agents")["items"] == []
    st = status(d)
    assert st["enabled"] is False and st["source"] == "file"
    assert st["queue"]["ready"] == 1 and st["queue"]["head"]["why"] == "dispatcher off"
    # on, but no profile routes the task: it stays, and the status says why
    d.call("dispatch", action="on")
    time.sleep(1.0)
    assert d.call("task-show", id=t["id"])["status"] == "open"
    st = status(d)
    assert st["enabled"] is True and st["source"] == "switch"
    assert st["queue"]["head"] == {"task": t["id"], "profile": None,
                                   "why": "no profile for its tags"}


def test_cap_3_never_exceeded_and_every_task_done_once(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p", delay_ms=60)],
                  {"enabled": True, "default_profile": "p", "caps": {"host": 3},
                   "interval_ms": 500})
    d = start(make_daemon, cd)
    b = Board(d)
    ids = [d.call("task-create", title="t%d" % i)["id"] for i in range(12)]
    seen_status = 0

    def all_done():
        nonlocal seen_status
        st = status(d)
        assert st["caps"]["host"]["used"] <= 3, st
        assert st["caps"]["host"]["cap"] == 3
        seen_status = max(seen_status, st["caps"]["host"]["used"])
        return all(b.tasks.get(i, {}).get("status") == "done" for i in ids)

    wait_for(all_done, "all 12 tasks done", timeout=120, pump=b.pump)
    b.pump()
    assert b.max_claimed == 3, b.max_claimed  # the cap was used, and never passed
    assert b.completions == {i: 1 for i in ids}
    for i in ids:
        t = d.call("task-show", id=i)
        assert t["status"] == "done" and t["attempts"] == 0 and t["epoch"] == 1, t
    agents = d.call("list-agents", kind="spawned")["items"]
    assert len(agents) == 12 and all(a["profile"] == "p" for a in agents)
    assert status(d)["started"] == 12


def test_tag_routing_and_per_profile_caps(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("fast", delay_ms=50), profile("slow", delay_ms=150)],
                  {"enabled": True, "tags": {"quick": "fast", "heavy": "slow"},
                   "caps": {"host": 5, "profiles": {"slow": 1, "fast": 2}}})
    d = start(make_daemon, cd)
    b = Board(d)
    q = [d.call("task-create", title="q%d" % i, tags=["other", "quick"])["id"] for i in range(5)]
    h = [d.call("task-create", title="h%d" % i, tags=["heavy"])["id"] for i in range(3)]
    none = d.call("task-create", title="unrouted", tags=["nobody"])["id"]
    by_profile = {}

    def sample():
        b.pump()
        agents = {a["id"]: a for a in d.call("list-agents", kind="spawned")["items"]}
        for p in ("fast", "slow"):
            n = b.claimed(lambda t: agents.get(t["owner"], {}).get("profile") == p)
            by_profile[p] = max(by_profile.get(p, 0), n)
        st = status(d)["caps"]["profiles"]
        assert st["slow"]["used"] <= 1 and st["fast"]["used"] <= 2, st
        return all(b.tasks.get(i, {}).get("status") == "done" for i in q + h)

    wait_for(sample, "routed tasks done", timeout=120)
    assert by_profile["slow"] <= 1 and by_profile["fast"] <= 2, by_profile
    for a in d.call("list-agents", kind="spawned")["items"]:
        t = d.call("task-show", id=a["task"])
        assert a["profile"] == ("fast" if a["task"] in q else "slow"), (a, t)
    assert d.call("task-show", id=none)["status"] == "open"
    st = status(d)
    assert st["queue"]["head"] == {"task": none, "profile": None,
                                   "why": "no profile for its tags"}
    assert st["routes"] == {"quick": "fast", "heavy": "slow"}
