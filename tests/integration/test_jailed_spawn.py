"""Confined agents end to end through a real daemon, with real bubblewrap.

A spawn with a `jail` object runs the agent in a bubblewrap sandbox (the
Linux default).  The agent here is a probe script inside the jail root that
records what it sees (env from env.sh, cwd, hostname, writable paths, host
processes, network, its stage) and then execs a copy of colibri-test-agent
beside it, so the glasspane gets pi's JSON lines.  Checked: the view from
inside, the glasspane states (done, model error, crash status 3), the stage
directory removed after exit, kill-agent and daemon shutdown, and that a kill
takes the whole process tree inside the sandbox.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUILD
from test_jailed_spawn_helpers import STAGE_REL, bwrap_works, give_to_agent, jail_env, stage_dir
from test_supervision_helpers import (Watch, agent_bin, kill_pids, pids_with_marker,
                                      session_lines, wait_gone, wait_pids_gone, wait_state)

pytestmark = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")

HOSTILE = "it's $(id) `id` \\ -n\nline2 \u2713"

PROBE = r"""#!/bin/sh
# Records what a confined agent sees into $PROBE_OUT, then becomes the test agent.
out="$PROBE_OUT"
mkdir -p "$out"
printf '%s' "$VAL" >"$out/val"
printf '%s' "${COLIBRI_LEAK_CHECK-unset}" >"$out/leak"
printf '%s' "$HOME" >"$out/home"
printf '%s' "${USER-unset}" >"$out/user"
printf '%s' "$COLIBRI_AGENT_ID" >"$out/agent_id"
pwd >"$out/cwd"
uname -n >"$out/hostname"
: >"$out/writable"
for p in /usr/colibri-probe /etc/colibri-probe /colibri-probe /var/colibri-probe "$OUTSIDE" "$OUTSIDE2"; do
	if (echo x >"$p") 2>/dev/null; then echo "$p" >>"$out/writable"; fi
done
echo in >"$out/inside"
ls -d /proc/[0-9]* | wc -l >"$out/nproc"
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' >"$out/cmdlines"
stat -c '%a %n' "$STAGE" "$STAGE/env.sh" "$STAGE/launch.sh" >"$out/stage" 2>&1
/usr/bin/python3 -c "
import socket, sys
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)
    print('connected')
except OSError as e:
    print('refused', e)
" "$PORT" >"$out/net" 2>&1
exec "${0%/*}/colibri-test-agent" "$@"
"""


class Jail:
    def __init__(self, tmp, make_daemon):
        self.tmp = tmp
        self.root = os.path.join(tmp, "jails", "ws1")
        self.bin = os.path.join(self.root, "bin")
        os.makedirs(self.bin)
        os.makedirs(os.path.join(self.root, "work"))
        shutil.copy(agent_bin(), os.path.join(self.bin, "colibri-test-agent"))
        self.probe = os.path.join(self.bin, "probe")
        with open(self.probe, "w") as f:
            f.write(PROBE)
        os.chmod(self.probe, 0o755)
        give_to_agent(self.root)
        self.d = make_daemon(env=jail_env({"COLIBRI_LEAK_CHECK": "leaked"}))

    def spawn(self, aid, scenario="text", jail=None, env=None, cwd=None, extra=()):
        args = {"binary": self.probe, "id": aid, "args": ["--scenario", scenario] + list(extra),
                "jail": jail if jail is not None else {"path": self.root},
                "env": dict({"PROBE_OUT": self.out(aid), "STAGE": stage_dir(self.root, aid),
                             "PORT": "1"}, **(env or {}))}
        if cwd is not None:
            args["cwd"] = cwd
        return self.d.call("spawn-local", args)

    def out(self, aid):
        return os.path.join(self.root, "probe-" + aid)

    def seen(self, aid, what):
        with open(os.path.join(self.out(aid), what)) as f:
            return f.read()


@pytest.fixture
def jail(tmp_path, make_daemon):
    return Jail(str(tmp_path), make_daemon)


@pytest.fixture
def cleanup():
    """Kill (by the agent marker) whatever a failed test left behind."""
    ids = []
    yield ids
    for aid in ids:
        kill_pids(pids_with_marker(aid))


def test_env_cwd_and_the_view_from_inside(jail, tmp_path):
    # Under /tmp: the sandbox has its own tmpfs there, so a write lands in it, not on the host.
    outside = str(tmp_path / "outside.txt")
    # Elsewhere on the host (the build tree): not even visible inside.
    outside2 = os.path.join(BUILD, "colibri-jail-probe-%d" % os.getpid())
    marker = "27.1828182"
    sleeper = subprocess.Popen(["sleep", marker])
    try:
        jail.spawn("b1", env={"VAL": HOSTILE, "EMPTY": "", "OUTSIDE": outside,
                                     "OUTSIDE2": outside2},
                   cwd=os.path.join(jail.root, "work"))
        st = wait_gone(jail.d, "b1")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    assert jail.seen("b1", "val") == HOSTILE
    assert jail.seen("b1", "cwd") == os.path.join(jail.root, "work") + "\n"
    assert jail.seen("b1", "home") == os.path.join(jail.root, "home/clawdie")
    assert jail.seen("b1", "agent_id") == "b1"
    # The daemon's environment does not reach the agent: only env.sh does.
    assert jail.seen("b1", "leak") == "unset"
    assert jail.seen("b1", "hostname") == "colibri-ws1\n"
    # Writable: the root and the sandbox's private /tmp only.
    assert jail.seen("b1", "writable") in ("", outside + "\n")
    assert jail.seen("b1", "inside") == "in\n"
    assert not os.path.exists(outside) and not os.path.exists(outside2)
    for p in ("/usr/colibri-probe", "/etc/colibri-probe", "/colibri-probe", "/var/colibri-probe"):
        assert not os.path.exists(p)
    # No host processes: a fresh pid namespace.
    assert marker not in jail.seen("b1", "cmdlines")
    assert int(jail.seen("b1", "nproc")) < 10
    # The stage while the agent ran, and none after.
    s = jail.seen("b1", "stage").split("\n")
    assert s[0] == "700 " + stage_dir(jail.root, "b1"), s
    assert s[1].startswith("600 ") and s[2].startswith("600 "), s
    assert not os.path.exists(stage_dir(jail.root, "b1"))
    assert os.listdir(os.path.join(jail.root, STAGE_REL)) == []
    # The session log and the glasspane work as unconfined.
    lines = session_lines(jail.d, "b1")
    assert lines[0].startswith('{"type":"session"') and '"agent_end"' in lines[-1]
    assert (st["turns"], st["usage"]["input"], st["usage"]["output"]) == (1, 42, 6)


def test_name_and_user_mapping(jail):
    jail.spawn("b2", jail={"name": "devbox", "root_path": jail.root, "user": "clawdie"})
    st = wait_gone(jail.d, "b2")
    assert st["state"] == "done", st
    assert st["jail"] == {"name": "devbox", "root_path": jail.root, "user": "clawdie"}
    assert jail.seen("b2", "hostname") == "devbox\n"
    assert jail.seen("b2", "user") == "clawdie"


def test_network_inherited_unless_cut(jail):
    # issue 17: ip4 unset inherits the host's network as on FreeBSD; disable/none cut it.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = str(srv.getsockname()[1])
    try:
        jail.spawn("n1", env={"PORT": port})
        jail.spawn("n2", env={"PORT": port}, jail={"path": jail.root, "ip4": "127.0.0.1"})
        jail.spawn("n3", env={"PORT": port}, jail={"path": jail.root, "ip4": "disable"})
        jail.spawn("n4", env={"PORT": port}, jail={"path": jail.root, "ip4": "none"})
        for aid in ("n1", "n2", "n3", "n4"):
            assert wait_gone(jail.d, aid)["state"] == "done"
    finally:
        srv.close()
    assert jail.seen("n1", "net").startswith("connected")
    assert jail.seen("n4", "net").startswith("refused")
    assert jail.seen("n2", "net").startswith("connected")
    assert jail.seen("n3", "net").startswith("refused")


@pytest.mark.parametrize("scenario,state,reason,code", [
    ("text", "done", "exited cleanly", 0),
    ("model-error", "error", "400 colibri-test-agent: model refuses", 0),
    ("crash", "error", "exited with status 3", 3),
])
def test_glasspane_states_as_unconfined(jail, scenario, state, reason, code):
    w = Watch(jail.d)
    jail.spawn("g1", scenario)
    st = wait_gone(jail.d, "g1")
    assert (st["state"], st["reason"], st["exit_code"]) == (state, reason, code), st
    ex = w.wait_exited("g1")["data"]
    assert (ex["exit_code"], ex["signal"], ex["state"]) == (code, None, state)
    assert not os.path.exists(stage_dir(jail.root, "g1"))


def test_setup_failure_cwd(jail):
    jail.spawn("c1", cwd=os.path.join(jail.root, "missing"))
    st = wait_gone(jail.d, "c1")
    assert (st["state"], st["reason"]) == ("error", "confinement setup failed (cwd)"), st
    assert not os.path.exists(stage_dir(jail.root, "c1"))


def tree_of(aid, want, timeout=10.0):
    """The pids carrying aid's marker once there are at least want of them."""
    deadline = time.time() + timeout
    pids = []
    while time.time() < deadline:
        pids = pids_with_marker(aid)
        if len(pids) >= want:
            return pids
        time.sleep(0.05)
    raise AssertionError("only %s carry %s" % (pids, aid))


def test_kill_agent_kills_the_tree_and_removes_the_stage(jail, cleanup):
    cleanup.append("k1")
    jail.spawn("k1", "grandchild", extra=["--then", "hang"])
    wait_state(jail.d, "k1", ("working",))
    # The probe's shell became the agent; the agent forked a grandchild that left its session.
    pids = tree_of("k1", 2)
    assert os.path.isdir(stage_dir(jail.root, "k1"))
    k = jail.d.call("kill-agent", id="k1", grace_ms=2000)
    assert k["state"] == "error" and k["reason"].startswith("killed by signal"), k
    assert wait_pids_gone(pids) == []
    assert pids_with_marker("k1") == []
    assert not os.path.exists(stage_dir(jail.root, "k1"))


def test_shutdown_removes_the_stage_and_the_tree(jail, cleanup):
    cleanup.append("s1")
    jail.spawn("s1", "hang")
    wait_state(jail.d, "s1", ("working",))
    pids = tree_of("s1", 1)
    assert os.path.isdir(stage_dir(jail.root, "s1"))
    assert jail.d.stop(signal.SIGTERM) == 0, jail.d.read_log()[-3000:]
    assert wait_pids_gone(pids) == []
    assert not os.path.exists(stage_dir(jail.root, "s1"))


def test_env_name_refused_before_anything_runs(jail):
    r = jail.d.connect().request("spawn-local", {"binary": jail.probe, "id": "e1",
                                                 "jail": {"path": jail.root},
                                                 "env": {"_colibri_rc": "x"}})
    assert not r["ok"] and "reserved" in r["error"]["message"], r
    assert not os.path.exists(stage_dir(jail.root, "e1"))
