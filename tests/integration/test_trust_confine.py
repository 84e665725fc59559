"""Agents never act as the daemon: the view from inside, and trees that die whole.

Issue 15's findings, each reproduced and shown closed against a real daemon
(CI runs as root, so the daemon here is a root daemon):

- bubblewrap under a root daemon: a probe agent inside the sandbox reports
  its uid, CapEff, its descriptors, whether it can see the daemon's socket,
  state directory, database, sessions, provider.env and /etc/colibri, and
  whether it can remount /usr read-write or make a setuid-root file.  The
  daemon is started holding an extra inherited descriptor on a host
  directory; neither the daemon nor the agent may keep it.
- the FreeBSD path through the stand-ins: the recorded jexec argv runs as an
  unprivileged user (-U) and nothing of the daemon's reaches the jail.
- a jail root or agent binary that overlaps the daemon's files is refused
  before anything is staged.
- an unconfined agent's setsid + env -i grandchild (double fork, detached,
  environment cleared) dies at kill-agent, and at a daemon SIGKILL + restart.
- a bw that detaches a grandchild holding its pipes fails its step after
  the deadline, and the next provisioning works.
- a confined agent's stage (env.sh) does not survive a daemon SIGKILL +
  restart.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import CallError, Daemon, bin_path, store_args
from test_jailed_spawn_helpers import (STAGE_REL, agent_uid, bwrap_works, copy_standins,
                                       give_to_agent, jail_env, stage_dir, standin_calls)
from test_supervision_helpers import agent_bin, sup_env, wait_gone, wait_state
from test_vault_helpers import Vault, wait_tenant

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs a root daemon")
BWRAP = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")


class FdDaemon(Daemon):
    """A daemon started holding one more descriptor: a host directory, as fd `fd`."""

    def __init__(self, state_dir, env, held_dir):
        super().__init__(state_dir, env=env)
        self.held_dir = held_dir
        self.held_fd = None

    def start(self, wait=True):
        fd = os.open(self.held_dir, os.O_RDONLY | os.O_DIRECTORY)
        self.held_fd = fd
        self.log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [bin_path("colibri-daemon"), "--state-dir", self.state_dir, "--foreground",
                 "--log-level", "debug"] + self.extra_args +
                store_args(self.state_dir, self.extra_args),
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                env=self.env, pass_fds=(fd,))
        finally:
            os.close(fd)
        if wait:
            self.wait_ready()
        return self


PROBE = r"""#!/bin/sh
# What a confined agent sees, into $OUT (inside its root); then it becomes the test agent.
out="$OUT"
mkdir -p "$out"
id -u >"$out/uid"
grep '^CapEff:' /proc/self/status | awk '{print $2}' >"$out/capeff"
/usr/bin/python3 -c "
import json, os, sys
me = os.readlink('/proc/self/fd/%d' % os.open('/proc/self/fd', os.O_RDONLY))
fds = {}
for n in os.listdir('/proc/self/fd'):
    try:
        t = os.readlink('/proc/self/fd/' + n)
    except OSError:
        continue
    if t != me:
        fds[n] = t
json.dump(fds, open(sys.argv[1], 'w'))
" "$out/fds"
: >"$out/seen"
for p in "$SOCK" "$STATE" "$DB" "$SESSIONS" "$PROVIDER" /etc/colibri "$HELD"; do
	if [ -e "$p" ] || [ -L "$p" ]; then echo "$p" >>"$out/seen"; fi
done
/usr/bin/python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print('connected')
except OSError as e:
    print('refused', e.errno)
" "$SOCK" >"$out/connect" 2>&1
for n in 3 4 5 6 7 8 9 10 11 12; do
	if ls "/proc/self/fd/$n/" >/dev/null 2>&1; then echo "$n" >>"$out/fd_dirs"; fi
done
: >>"$out/fd_dirs"
if mount -o remount,bind,rw /usr 2>/dev/null; then echo remounted >"$out/remount"; else echo refused >"$out/remount"; fi
if touch /usr/colibri-trust-probe 2>/dev/null; then echo usr-writable >>"$out/remount"; fi
cp /bin/sh "$out/suid-sh"
chown 0:0 "$out/suid-sh" 2>/dev/null
chmod 4755 "$out/suid-sh" 2>/dev/null
exec "${0%/*}/colibri-test-agent" "$@"
"""


class Confined:
    """A jail root with the probe, a held host directory, and a daemon holding it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = os.path.join(tmp, "jails", "box")
        self.bin = os.path.join(self.root, "bin")
        os.makedirs(self.bin)
        shutil.copy(agent_bin(), os.path.join(self.bin, "colibri-test-agent"))
        self.probe = os.path.join(self.bin, "probe")
        with open(self.probe, "w") as f:
            f.write(PROBE)
        os.chmod(self.probe, 0o755)
        give_to_agent(self.root)
        self.held = os.path.join(tmp, "held-host-dir")
        os.makedirs(self.held)
        with open(os.path.join(self.held, "secret.txt"), "w") as f:
            f.write("host secret\n")
        os.chmod(self.held, 0o755)
        os.chmod(os.path.join(self.held, "secret.txt"), 0o644)
        self.provider = os.path.join(tmp, "provider.env")
        with open(self.provider, "w") as f:
            f.write("BW_PASSWORD=x\n")
        os.chmod(self.provider, 0o600)
        env = jail_env({"COLIBRI_PROVIDER_ENV": self.provider})
        self.d = FdDaemon(os.path.join(tmp, "state"), env, self.held)
        self.d.start()
        self.out = os.path.join(self.root, "probe-out")

    def seen(self, what):
        with open(os.path.join(self.out, what)) as f:
            return f.read()


@pytest.fixture
def confined(tmp_path):
    c = Confined(str(tmp_path))
    yield c
    c.d.stop()


@ROOT_ONLY
@BWRAP
def test_confined_agent_view_from_inside_under_a_root_daemon(confined):
    d = confined.d
    # The daemon itself kept nothing it inherited above 2.
    fds = {n: os.readlink("/proc/%d/fd/%s" % (d.proc.pid, n))
           for n in os.listdir("/proc/%d/fd" % d.proc.pid)}
    assert confined.held not in fds.values(), fds
    env = {"OUT": confined.out, "SOCK": d.socket, "STATE": d.state_dir,
           "DB": os.path.join(d.state_dir, "colibri.sqlite"),
           "SESSIONS": os.path.join(d.state_dir, "sessions"), "PROVIDER": confined.provider,
           "HELD": confined.held}
    d.call("spawn-local", {"binary": confined.probe, "id": "v1", "env": env,
                           "args": ["--scenario", "text"], "jail": {"path": confined.root}})
    st = wait_gone(d, "v1")
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    # Not root, no capability.
    uid = int(confined.seen("uid"))
    assert uid != 0 and uid == agent_uid()
    assert int(confined.seen("capeff"), 16) == 0
    # Nothing of the daemon's: no socket, state, database, sessions, provider.env, config.
    assert confined.seen("seen") == ""
    assert confined.seen("connect").startswith("refused"), confined.seen("connect")
    # No inherited descriptor: a process the agent starts has 0-2 and the agent
    # channel (3, a socket: test_agent_channel.py), nothing else.
    fds = json.loads(confined.seen("fds"))
    assert sorted(fds) == ["0", "1", "2", "3"] and fds["3"].startswith("socket:"), fds
    for target in fds.values():
        assert confined.held not in target and d.state_dir not in target, fds
    assert confined.seen("fd_dirs") == ""
    # No remount of /usr, no setuid-root file.
    assert confined.seen("remount") == "refused\n"
    assert not os.path.exists("/usr/colibri-trust-probe")
    sb = os.stat(os.path.join(confined.out, "suid-sh"))
    assert not (sb.st_uid == 0 and sb.st_mode & stat.S_ISUID), oct(sb.st_mode)
    # The stage was handed to the agent user and removed afterwards.
    assert not os.path.exists(stage_dir(confined.root, "v1"))


@ROOT_ONLY
@BWRAP
def test_overlapping_root_or_binary_refused_before_staging(tmp_path, make_daemon):
    base = str(tmp_path)
    d = make_daemon(env=jail_env())
    # A jail root that contains the daemon's state directory.
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": agent_bin(), "id": "o1", "jail": {"path": base}})
    assert "state directory" in e.value.message and "refusing" in e.value.message
    assert not os.path.exists(os.path.join(base, STAGE_REL))
    # A jail root inside it.
    inner = os.path.join(d.state_dir, "jail")
    os.makedirs(inner)
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": agent_bin(), "id": "o2", "jail": {"path": inner}})
    assert "state directory" in e.value.message
    assert os.listdir(inner) == []
    # An agent binary living in the state directory.
    root = os.path.join(base, "jails", "box")
    os.makedirs(root)
    give_to_agent(root)
    shutil.copy(agent_bin(), os.path.join(d.state_dir, "agent"))
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": os.path.join(d.state_dir, "agent"), "id": "o3",
                               "jail": {"path": root}})
    assert "agent binary" in e.value.message and "state directory" in e.value.message
    assert not os.path.exists(os.path.join(root, STAGE_REL, "o3"))
    assert d.call("status") is not None


@ROOT_ONLY
@BWRAP
def test_agent_user_that_is_root_is_refused(tmp_path, make_daemon):
    root = os.path.join(str(tmp_path), "jails", "box")
    os.makedirs(root)
    give_to_agent(root)
    with pytest.raises(RuntimeError):
        make_daemon(name="bad", extra_args=["--agent-user", "no-such-user-colibri"],
                    env=jail_env())
    d = make_daemon(extra_args=["--agent-user", "root"], env=jail_env())
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": agent_bin(), "id": "r1", "jail": {"path": root}})
    assert "uid 0" in e.value.message and "refusing to run bubblewrap as root" in e.value.message
    assert not os.path.exists(os.path.join(root, STAGE_REL, "r1"))


@ROOT_ONLY
@BWRAP
def test_root_the_agent_user_cannot_reach_is_refused_with_the_reason(tmp_path, make_daemon):
    private = os.path.join(str(tmp_path), "private")
    root = os.path.join(private, "box")
    os.makedirs(root)
    os.chmod(private, 0o700)  # root's alone: nobody cannot get through
    give_to_agent(root)
    os.chmod(private, 0o700)
    d = make_daemon(env=jail_env())
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": agent_bin(), "id": "n1", "jail": {"path": root}})
    assert "is not reachable by the agent user nobody" in e.value.message, e.value.message
    assert private in e.value.message
    assert not os.path.exists(os.path.join(root, STAGE_REL))
    # A root it can reach but not write.
    os.chmod(private, 0o711)
    os.chown(root, 0, 0)
    os.chmod(root, 0o755)
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": agent_bin(), "id": "n2", "jail": {"path": root}})
    assert "must be writable by it" in e.value.message, e.value.message


def test_freebsd_path_runs_unprivileged_and_shows_nothing_of_the_daemon(tmp_path, make_daemon):
    tmp = str(tmp_path)
    base = os.path.join(tmp, "jails")
    root = os.path.join(base, "box")
    os.makedirs(root)
    bindir = copy_standins(os.path.join(tmp, "bin"))
    with open(os.path.join(bindir, "jails.json"), "w") as f:
        json.dump({"box": root}, f)
    env = jail_env({"COLIBRI_CONFINE": "freebsd-jail", "COLIBRI_JAIL_PRIV_MODE": "mdo",
                    "COLIBRI_JAIL_ROOT_BASE": base})
    env["PATH"] = bindir + ":" + env["PATH"]
    d = make_daemon(env=env)
    d.call("spawn-local", {"binary": agent_bin(), "id": "f1", "args": ["--scenario", "text"],
                           "jail": {"name": "box", "root_path": root, "user": "clawdie"}})
    st = wait_gone(d, "f1")
    assert st["state"] == "done", st
    calls = standin_calls(bindir)
    jexec = [c for c in calls if c["prog"] == "jexec"][0]
    # The jail is entered as the unprivileged user, never as root.
    assert jexec["argv"][:3] == ["-U", "clawdie", "box"], jexec["argv"]
    # Nothing of the daemon's: not in the wrappers' argv or environment, not in the stage.
    for c in calls:
        blob = json.dumps(c)
        assert d.state_dir not in blob and d.socket not in blob, c
        # (LC_CTYPE: Python's own locale coercion in the stand-ins.)
        assert set(c["env"]) - {"LC_CTYPE"} <= {"PATH"}, c["env"]
    stage = jexec["stage"]
    assert set(stage) == {".", "env.sh", "launch.sh"}
    assert "COLIBRI_SOCKET" not in stage["env.sh"]["content"]
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            assert n not in ("colibri.sock", "colibri.sqlite", "provider.env", "sessions")
    # A jail root that holds the daemon's state directory is refused.
    inner = make_daemon(name="jails/box/state", env=env)
    with pytest.raises(CallError) as e:
        inner.call("spawn-local", {"binary": agent_bin(), "id": "f2",
                                   "jail": {"name": "box", "root_path": root}})
    assert "state directory" in e.value.message
    assert not os.path.exists(stage_dir(root, "f2"))


# ---- unconfined: the whole tree dies ----

ESCAPER = r"""#!/bin/sh
# Leaves a grandchild in a session of its own with an empty environment, then waits.
/usr/bin/python3 - "$PIDFILE" <<'EOF'
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        os.execve("/bin/sleep", ["sleep", "300"], {})
    os._exit(0)
os.wait()
EOF
exec sleep 300
"""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pid, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def wait_file(path, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        time.sleep(0.02)
    raise AssertionError("%s never appeared" % path)


class Escaper:
    def __init__(self, tmp):
        self.script = os.path.join(tmp, "escaper")
        with open(self.script, "w") as f:
            f.write(ESCAPER)
        os.chmod(self.script, 0o755)
        self.tmp = tmp

    def spawn(self, d, aid):
        pidfile = os.path.join(self.tmp, aid + ".pid")
        d.call("spawn-local", {"binary": self.script, "id": aid, "env": {"PIDFILE": pidfile}})
        pid = int(wait_file(pidfile))
        # The pid is written just before the exec that clears the environment: wait for it.
        deadline = time.time() + 10
        while time.time() < deadline:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "sleep":
                    break
            time.sleep(0.01)
        # Really escaped: no marker in its environment, not a child of the agent.
        with open("/proc/%d/environ" % pid, "rb") as f:
            assert b"COLIBRI_AGENT_ID" not in f.read()
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # A session (and process group) of its own, neither the agent's nor the daemon's.
        assert int(fields[3]) == int(fields[2]) != os.getsid(d.proc.pid)
        return pid


@ROOT_ONLY  # a writable cgroup v2 subtree
def test_detached_grandchild_dies_at_kill_agent(tmp_path, make_daemon):
    e = Escaper(str(tmp_path))
    d = make_daemon(env=sup_env())
    pid = None
    try:
        pid = e.spawn(d, "u1")
        d.call("kill-agent", id="u1", grace_ms=200)
        assert wait_dead(pid), "the setsid + env -i grandchild survived kill-agent"
    finally:
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


@ROOT_ONLY  # a writable cgroup v2 subtree
def test_detached_grandchild_dies_at_restart_after_sigkill(tmp_path, make_daemon):
    e = Escaper(str(tmp_path))
    d = make_daemon(env=sup_env())
    pid = None
    try:
        pid = e.spawn(d, "u2")
        d.kill9()
        time.sleep(0.3)
        assert alive(pid), "the grandchild died with the daemon: nothing to recover"
        d.start()
        assert wait_dead(pid), "the grandchild survived the restart"
        st = wait_state(d, "u2")
        assert (st["state"], st["reason"]) == ("interrupted", "daemon restarted while working"), st
        assert "process tree" in d.read_log()
    finally:
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


# ---- the vault queue never wedges ----

def test_detaching_bw_fails_its_step_and_the_queue_moves_on(tmp_path, make_daemon):
    v = Vault(tmp_path)
    v.write_vault(detach_steps=["status"])
    d = v.start(make_daemon, {"COLIBRI_BW_TIMEOUT_MS": "600"})
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    t0 = time.monotonic()
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    took = time.monotonic() - t0
    assert not r["ok"], r
    assert "bw status" in r["error"]["message"], r
    assert took < 5.0, "the step waited for the detached grandchild"
    detached = [int(x) for x in open(os.path.join(v.bwdir, "bw.detached")).read().split()]
    for pid in detached:
        assert wait_dead(pid), "the detached bw grandchild survived the step"
    # The next provisioning works.
    v.write_vault(detach_steps=[])
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert r["ok"], r
    assert wait_tenant(d, "proof0")["status"] == "active"


# ---- stages do not outlive a crash ----

@ROOT_ONLY
@BWRAP
def test_stage_env_removed_after_sigkill_and_restart(tmp_path, make_daemon):
    root = os.path.join(str(tmp_path), "jails", "box")
    os.makedirs(root)
    give_to_agent(root)
    d = make_daemon(env=jail_env())
    d.call("spawn-local", {"binary": agent_bin(), "id": "s1", "args": ["--scenario", "hang"],
                           "env": {"SECRET_FOR_AGENT": "do-not-keep"},
                           "jail": {"path": root}})
    env_sh = os.path.join(stage_dir(root, "s1"), "env.sh")
    wait_file(env_sh)
    assert os.stat(env_sh).st_uid == agent_uid()
    d.kill9()
    assert os.path.exists(env_sh), "nothing left to clean: the test shows nothing"
    d.start()
    assert not os.path.exists(stage_dir(root, "s1"))
    st = wait_state(d, "s1")
    assert (st["state"], st["reason"]) == ("interrupted", "daemon restarted while working"), st
    assert "removed the stage a previous daemon left" in d.read_log()


# ---- colibri-mcp's external MCP servers are jobs too ----

MCP_SERVER = r"""
import json, os, sys
out = sys.argv[1]
fds = {}
for n in os.listdir("/proc/self/fd"):
    try:
        fds[n] = os.readlink("/proc/self/fd/" + n)
    except OSError:
        pass
json.dump(fds, open(os.path.join(out, "fds.tmp"), "w"))
os.rename(os.path.join(out, "fds.tmp"), os.path.join(out, "fds.json"))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(os.path.join(out, "grandchild.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.path.join(out, "grandchild.tmp"), os.path.join(out, "grandchild.pid"))
        os.execve("/bin/sleep", ["sleep", "300"], {})
    os._exit(0)
os.wait()
sys.stdin.read()  # until colibri-mcp closes our stdin
"""


@ROOT_ONLY  # a writable cgroup v2 subtree
def test_mcp_server_gets_no_descriptor_and_dies_whole(tmp_path):
    tmp = str(tmp_path)
    script = os.path.join(tmp, "server.py")
    with open(script, "w") as f:
        f.write(MCP_SERVER)
    cfg = os.path.join(tmp, "host.json")
    with open(cfg, "w") as f:
        json.dump({"servers": [{"name": "s", "command": "/usr/bin/python3",
                                "args": [script, tmp], "allow": ["*"]}]}, f)
    held = os.path.join(tmp, "held-host-dir")
    os.makedirs(held)
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    log = open(os.path.join(tmp, "mcp.log"), "wb")
    try:
        p = subprocess.Popen([bin_path("colibri-mcp"), "--socket", os.path.join(tmp, "absent.sock"),
                              "--config", cfg, "--settle", "500"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                             pass_fds=(fd,))
    finally:
        os.close(fd)
    pid = None
    try:
        fds = json.loads(wait_file(os.path.join(tmp, "fds.json")))
        pid = int(wait_file(os.path.join(tmp, "grandchild.pid")))
        # The server's own descriptor on /proc/self/fd is the only extra one.
        extra = {n: t for n, t in fds.items() if int(n) > 2 and not t.startswith("/proc/")}
        assert extra == {}, fds
        assert alive(pid)
        p.stdin.close()
        assert p.wait(15) == 0
        assert wait_dead(pid), "the MCP server's detached grandchild survived"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
        log.close()


MARKED = r"""#!/bin/sh
# A grandchild in a session of its own that keeps the environment (and so the marker).
/usr/bin/python3 - "$PIDFILE" <<'EOF'
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        os.execv("/bin/sleep", ["sleep", "300"])
    os._exit(0)
os.wait()
EOF
exec sleep 300
"""


def test_without_process_trees_the_marker_scan_still_kills(tmp_path, make_daemon):
    """The fallback (no cgroup): process group + the reaper's COLIBRI_AGENT_ID scan, logged once."""
    script = os.path.join(str(tmp_path), "marked")
    with open(script, "w") as f:
        f.write(MARKED)
    os.chmod(script, 0o755)
    d = make_daemon(env=sup_env({"COLIBRI_PROCESS_TREES": "off"}))
    pidfile = os.path.join(str(tmp_path), "m1.pid")
    pid = None
    try:
        d.call("spawn-local", {"binary": script, "id": "m1", "env": {"PIDFILE": pidfile}})
        pid = int(wait_file(pidfile))
        d.call("kill-agent", id="m1", grace_ms=200)
        assert wait_dead(pid), "the marked grandchild survived kill-agent"
        log = d.read_log()
        assert log.count("falling back to process groups and the reaper") == 1, log[-3000:]
        assert "turned off by COLIBRI_PROCESS_TREES=off" in log
    finally:
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


@ROOT_ONLY  # a writable cgroup v2 subtree
def test_freebsd_path_stage_and_tree_gone_after_sigkill_and_restart(tmp_path, make_daemon):
    """The jail path (stand-ins): a hanging jailed agent outlives a SIGKILLed daemon (no
    --die-with-parent there); the restarted daemon kills its tree and removes its stage."""
    tmp = str(tmp_path)
    base = os.path.join(tmp, "jails")
    root = os.path.join(base, "box")
    os.makedirs(root)
    bindir = copy_standins(os.path.join(tmp, "bin"))
    with open(os.path.join(bindir, "jails.json"), "w") as f:
        json.dump({"box": root}, f)
    env = jail_env({"COLIBRI_CONFINE": "freebsd-jail", "COLIBRI_JAIL_PRIV_MODE": "none",
                    "COLIBRI_JAIL_ROOT_BASE": base})
    env["PATH"] = bindir + ":" + env["PATH"]
    quiet = os.path.join(root, "quiet-agent")
    with open(quiet, "w") as f:
        f.write("#!/bin/sh\n# Writes nothing, so a dead daemon's pipes cannot end it.\n"
                "exec sleep 300 >/dev/null 2>&1\n")
    os.chmod(quiet, 0o755)
    d = make_daemon(env=env)
    d.call("spawn-local", {"binary": quiet, "id": "fk1",
                           "jail": {"name": "box", "root_path": root, "user": "clawdie"}})
    env_sh = os.path.join(stage_dir(root, "fk1"), "env.sh")
    wait_file(env_sh)
    st = wait_state(d, "fk1", ("idle", "working"), live=True)
    pid = st["pid"]
    d.kill9()
    time.sleep(0.3)
    assert alive(pid) and os.path.exists(env_sh), "nothing survived: the test shows nothing"
    try:
        d.start()
        assert wait_dead(pid), "the jailed agent's tree survived the restart"
        assert not os.path.exists(stage_dir(root, "fk1"))
        st = wait_state(d, "fk1")
        assert (st["state"], st["reason"]) == ("interrupted", "daemon restarted while working"), st
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
