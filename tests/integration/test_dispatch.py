"""The dispatcher (issue 18): task tags, CONFIG_DIR/dispatch.json, the
dispatch command and `colibri dispatch on|off|status`.

Tags: task-create takes `tags` (at most 16 distinct tags of 1-64 characters
of [A-Za-z0-9_.:-]), task-update replaces them, task-list filters by `tag`;
the CLI's --tag is repeatable.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import CallError, Daemon
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


def test_a_file_without_enabled_is_off_until_switched_on(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p", delay_ms=10)], {"default_profile": "p"})
    d = start(make_daemon, cd)
    t = d.call("task-create", title="t")["id"]
    time.sleep(1.0)
    assert d.call("task-show", id=t)["status"] == "open"
    assert d.call("list-agents")["items"] == []
    assert status(d)["queue"]["head"] == {"task": t, "profile": "p", "why": "dispatcher off"}
    r = d.cli("dispatch", "on", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["enabled"] is True, r.stdout + r.stderr
    wait_for(lambda: d.call("task-show", id=t)["status"] == "done", "the task done once on")
    r = d.cli("dispatch", "bogus")
    assert r.returncode != 0 and "on, off or status" in r.stderr, r.stderr


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
    st = status(d)
    assert st["started"] == 12 and st["queue"] == {
        "ready": 0, "head": {"task": None, "profile": None, "why": None}}
    # every profile the policy names is listed, capped or not
    assert st["caps"]["profiles"] == {"p": {"cap": None, "used": 0}}
    assert st["caps"]["host"] == {"cap": 3, "used": 0}


def test_a_restart_storm_cannot_pass_the_cap(make_daemon, tmp_path):
    # Agents that fail and restart: waiting out a backoff, each still holds its claim.
    storm = profile("storm", delay_ms=10, max_attempts=1,
                    restart={"max_restarts": 2, "backoff_ms": 300, "on_error": True})
    storm["args"] += ["--exit", "1"]
    cd = conf_dir(tmp_path, [storm], {"enabled": True, "default_profile": "storm",
                                      "caps": {"host": 2}, "interval_ms": 100})
    d = start(make_daemon, cd)
    b = Board(d)
    ids = [d.call("task-create", title="t%d" % i)["id"] for i in range(5)]
    restarting = 0

    def sample():
        nonlocal restarting
        b.pump()
        st = status(d)
        assert st["caps"]["host"]["used"] <= 2, st
        agents = d.call("list-agents", kind="spawned")["items"]
        restarting = max(restarting, sum(1 for a in agents if a["live"] and a["restarts"] > 0))
        return all(b.tasks.get(i, {}).get("status") == "failed" for i in ids)

    wait_for(sample, "every task failed after its restarts", timeout=120)
    assert b.max_claimed == 2, b.max_claimed
    assert restarting >= 1  # the storm happened while the cap held
    agents = d.call("list-agents", kind="spawned")["items"]
    assert len(agents) == 5 and all(a["restarts"] == 2 for a in agents), agents
    for i in ids:
        t = d.call("task-show", id=i)
        assert (t["status"], t["attempts"], t["epoch"]) == ("failed", 1, 1), t


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


def test_missing_profile_is_reported_not_a_crash(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p")], {"enabled": True, "default_profile": "ghost"})
    d = start(make_daemon, cd)
    t = d.call("task-create", title="t")["id"]
    st = wait_for(lambda: (lambda s: s if s["queue"]["head"]["why"] else None)(status(d)),
                  "a why for the head")
    assert st["missing_profiles"] == ["ghost"]
    assert st["queue"]["head"] == {"task": t, "profile": "ghost",
                                   "why": "profile ghost is not in profiles.json"}
    assert d.call("task-show", id=t)["status"] == "open"
    assert "names profile ghost, which profiles.json lacks" in d.read_log()


def test_a_failing_profile_does_not_spin(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("broken", binary=str(tmp_path / "no-such-agent"))],
                  {"enabled": True, "default_profile": "broken", "interval_ms": 100})
    d = start(make_daemon, cd)
    ids = [d.call("task-create", title="t%d" % i)["id"] for i in range(5)]
    t0 = time.time()
    wait_for(lambda: status(d)["failures"], "a failure in the status")
    time.sleep(3.5)
    elapsed = time.time() - t0
    st = status(d)
    b = st["backoff"]["broken"]
    # 1 s, 2 s, 4 s...: a handful of attempts in a few seconds, not one per walk (100 ms)
    assert 1 <= b["failures"] <= 4, (b, elapsed)
    assert len(st["failures"]) == b["failures"]
    assert all(f["profile"] == "broken" and f["task"] == ids[0] for f in st["failures"])
    assert "no-such-agent" in st["failures"][0]["error"] or st["failures"][0]["error"], st
    # the head: backing off, or set aside after its third failed start
    assert st["queue"]["head"]["why"].startswith((
        "profile broken backs off after a failed spawn",
        "task %d failed to start 3 times" % ids[0])), st["queue"]
    assert st["started"] == 0
    for i in ids:  # a spawn that could not start leaves its task as it was
        t = d.call("task-show", id=i)
        assert (t["status"], t["attempts"], t["owner"]) == ("open", 0, None), t
    r = d.cli("dispatch", "status")
    assert r.returncode == 0, r.stderr
    assert "backing off: profile broken" in r.stdout and "failed " in r.stdout, r.stdout


def test_a_task_that_cannot_start_is_set_aside_and_the_rest_go_on(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p", delay_ms=10)],
                  {"enabled": True, "default_profile": "p", "interval_ms": 200})
    d = start(make_daemon, cd)
    # its prompt (title and body) does not fit in one argument: its start fails, every time
    bad = d.call("task-create", title="too long", body="x" * 200000, priority=5)["id"]
    good = d.call("task-create", title="fine")["id"]
    wait_for(lambda: d.call("task-show", id=good)["status"] == "done", "the task behind done",
             timeout=60)
    st = status(d)
    assert st["set_aside"] == [bad]
    assert st["queue"]["head"]["task"] == bad
    assert st["queue"]["head"]["why"].startswith("task %d failed to start 3 times" % bad)
    assert [f["task"] for f in st["failures"]] == [bad] * 3
    assert "prompt is" in st["failures"][0]["error"]
    t = d.call("task-show", id=bad)
    assert (t["status"], t["attempts"], t["epoch"], t["owner"]) == ("open", 0, 0, None), t
    r = d.cli("dispatch", "status")
    assert r.returncode == 0 and "set aside (failed to start 3 times): %d\n" % bad in r.stdout
    d.call("dispatch", action="on")  # another chance
    assert status(d)["set_aside"] == []


def test_sighup_reloads_and_a_bad_file_keeps_the_old_policy(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p", delay_ms=20)],
                  {"enabled": False, "default_profile": "p"})
    d = start(make_daemon, cd)
    t = d.call("task-create", title="t")["id"]
    time.sleep(0.5)
    assert d.call("task-show", id=t)["status"] == "open"
    write(os.path.join(cd, "dispatch.json"), {"enabled": True, "default_profile": "p",
                                              "caps": {"host": 1}})
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.call("task-show", id=t)["status"] == "done", "the task done after SIGHUP")
    assert status(d)["caps"]["host"]["cap"] == 1
    write(os.path.join(cd, "dispatch.json"), '{"enabled": false, "caps": {"host": "x"}}')
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "dispatch: not reloaded, the old policy stays" in d.read_log(),
             "the refusal logged")
    st = status(d)
    assert st["enabled"] is True and st["caps"]["host"]["cap"] == 1
    assert "caps.host must be an integer" in d.read_log()


@pytest.mark.parametrize("body,msg", [
    ('{"enabled": "yes"}', "enabled must be true or false"),
    ('{"caps": {"host": 1, "profile": {}}}', 'caps: unknown key "profile"'),
    ('{"enabled": true, "enabled": false}', "dispatch.json"),
    ("[1]", "dispatch.json"),
])
def test_a_bad_file_refuses_start(make_daemon, tmp_path, body, msg):
    cd = conf_dir(tmp_path, [profile("p")], body)
    d = Daemon(str(tmp_path / "s2"), ["--config-dir", cd])
    d.start(wait=False)
    assert d.proc.wait(15) == 1
    assert msg in d.read_log(), d.read_log()


def test_group_writable_file_refuses_start(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p")], {"enabled": False})
    os.chmod(os.path.join(cd, "dispatch.json"), 0o620)
    d = Daemon(str(tmp_path / "s2"), ["--config-dir", cd])
    d.start(wait=False)
    assert d.proc.wait(15) == 1
    assert "dispatch.json" in d.read_log(), d.read_log()


def test_restart_keeps_on_off_until_the_file_changes(make_daemon, tmp_path):
    cd = conf_dir(tmp_path, [profile("p", delay_ms=20)],
                  {"enabled": False, "default_profile": "p"})
    d = start(make_daemon, cd)
    r = d.cli("dispatch", "on")
    assert r.returncode == 0 and "dispatcher: on (dispatch on|off" in r.stdout, r.stdout
    assert d.stop() == 0
    d.proc = None
    d.start()
    st = status(d)
    assert (st["enabled"], st["source"], st["file_enabled"]) == (True, "switch", False)
    t = d.call("task-create", title="t")["id"]
    wait_for(lambda: d.call("task-show", id=t)["status"] == "done", "the task done")
    d.call("dispatch", action="off")
    assert d.stop() == 0
    d.start()
    assert (status(d)["enabled"], status(d)["source"]) == (False, "switch")
    # a changed file speaks last: its enabled decides again
    write(os.path.join(cd, "dispatch.json"), {"enabled": True, "default_profile": "p",
                                              "interval_ms": 300})
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: status(d)["source"] == "file", "the file deciding again")
    assert status(d)["enabled"] is True
    assert d.stop() == 0
    d.start()
    assert (status(d)["enabled"], status(d)["source"]) == (True, "file")


CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for i, (cmd, args) in enumerate(json.loads(sys.argv[2]), 1):
    f.write((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    print(f.readline().decode().strip(), flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                    or shutil.which("setpriv") is None, reason="needs root, useradd and setpriv")
def test_a_member_reads_status_but_cannot_switch(tmp_path):
    cd = conf_dir(tmp_path, [profile("p")], {"enabled": False, "default_profile": "p"})
    g, user = "colibri-dg" + TAG, "colibri-dm" + TAG
    world = tempfile.mkdtemp(prefix="colibri-disp-")
    os.chmod(world, 0o755)
    d = None
    try:
        subprocess.run(["groupadd", "--system", g], check=True, capture_output=True)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", "--groups", g, user], check=True, capture_output=True)
        u = pwd.getpwnam(user)
        d = Daemon(os.path.join(world, "state"), ["--group", g, "--config-dir", cd]).start()
        t = d.call("task-create", title="t")["id"]
        steps = [["dispatch", {"action": "status"}], ["dispatch", {"action": "on"}],
                 ["dispatch", {"action": "off"}]]
        p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                            "--init-groups", "/usr/bin/python3", "-c", CLIENT, d.socket,
                            json.dumps(steps)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        st, on, off = [json.loads(l) for l in p.stdout.splitlines()]
        assert st["ok"] and st["result"]["enabled"] is False, st
        assert st["result"]["queue"]["head"]["why"] == "dispatcher off"
        for r in (on, off):
            assert not r["ok"] and r["error"]["code"] == "permission_denied", r
            assert "members may read dispatch status" in r["error"]["message"]
        time.sleep(0.5)
        assert status(d)["source"] == "file"  # nothing was switched
        assert d.call("task-show", id=t)["status"] == "open"
    finally:
        if d is not None:
            assert d.stop() == 0, d.read_log()[-3000:]
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        subprocess.run(["groupdel", g], capture_output=True)
        shutil.rmtree(world, ignore_errors=True)


def _bwrap_ok():
    from test_jailed_spawn_helpers import bwrap_works
    return bwrap_works()


@pytest.mark.skipif(not _bwrap_ok(), reason="bubblewrap cannot run here")
def test_per_tenant_caps(make_daemon, tmp_path):
    from test_jailed_spawn_helpers import give_to_agent, jail_env
    roots = {}
    for t in ("acme", "beta"):
        root = str(tmp_path / "jails" / t)
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy(agent_bin(), os.path.join(root, "bin", "colibri-test-agent"))
        give_to_agent(root)
        roots[t] = root

    def jailed(name, tenant):
        return profile(name, delay_ms=100,
                       binary=os.path.join(roots[tenant], "bin", "colibri-test-agent"),
                       jail={"name": tenant, "root_path": roots[tenant]})
    cd = conf_dir(tmp_path, [jailed("ja", "acme"), jailed("ja2", "acme"), jailed("jb", "beta")],
                  {"enabled": True, "tags": {"a": "ja", "a2": "ja2", "b": "jb"},
                   "caps": {"host": 6, "tenants": {"acme": 1}}})
    d = make_daemon(extra_args=["--config-dir", cd], env=jail_env())
    b = Board(d)
    acme = [d.call("task-create", title="a%d" % i, tags=["a2" if i % 2 else "a"])["id"]
            for i in range(4)]
    beta = [d.call("task-create", title="b%d" % i, tags=["b"])["id"] for i in range(3)]
    peak = {"acme": 0, "beta": 0}

    def sample():
        b.pump()
        agents = {a["id"]: a for a in d.call("list-agents", kind="spawned")["items"]}
        for t in peak:
            peak[t] = max(peak[t], b.claimed(
                lambda x: agents.get(x["owner"], {}).get("tenant") == t))
        st = status(d)
        assert st["caps"]["tenants"].get("acme", {"used": 0})["used"] <= 1, st
        return all(b.tasks.get(i, {}).get("status") == "done" for i in acme + beta)

    wait_for(sample, "the jailed tasks done", timeout=120)
    assert peak["acme"] == 1, peak  # two profiles, one tenant: one claim at a time
    assert peak["beta"] >= 1
    assert status(d)["caps"]["tenants"]["acme"] == {"cap": 1, "used": 0}
