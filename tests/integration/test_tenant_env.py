"""Tenant secrets before start, when asked (issue 17): spawns with tenant_env.

A spawn into a registered tenant's jail (jail.name = the tenant, its root =
the tenant's jail_root_path) with `tenant_env: true` -- a spawn argument, a
profile key or the CLI's --tenant-env -- starts its agent with the tenant's
.env in its environment.  When there is no .env yet, the spawn's reply waits
while the vault provisions it (the stand-in bw, standins/bw), and the agent
starts only after: the probe below, a shell script in the jail root run in
real bubblewrap, records every variable byte for byte, whether the .env was
there when it started, and then waits for the test to let it go while the
test searches every process's argv for the secrets.  A failing bw fails the
spawn with the vault's reason and starts nothing; a .env already there is
not provisioned again; two waiting spawns share one provisioning; a hostile
value ($(...), backquotes, quotes, a newline) arrives verbatim and runs
nothing; the secrets appear nowhere but the agent's environment (replies,
agent rows, events, log, database, session files, argv).
"""
import json
import os
import shutil
import tempfile
import time

import pytest

from conftest import CallError, Conn
from test_jailed_spawn_helpers import bwrap_works, give_to_agent, stage_dir
from test_supervision_helpers import agent_bin, kill_pids, pids_with_marker, wait_gone
from test_vault_helpers import (ITEMS, Vault, assert_no_secrets, events, items_json, tenant,
                                wait_tenant)

pytestmark = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")

CHAIN_LEN = 9  # status, config server, status, login, unlock, sync, 2 lists, lock

PROBE = r"""#!/bin/sh
# Records the tenant's variables as the agent sees them, then waits for "go".
out="$PROBE_OUT"
mkdir -p "$out"
if [ -e "$TENANT_ROOT/.env" ]; then echo yes >"$out/env_there"; else echo no >"$out/env_there"; fi
for n in $PROBE_NAMES; do
	eval "v=\${$n-UNSET}"
	printf '%s' "$v" >"$out/var.$n"
done
: >"$out/ready"
i=0
while [ ! -e "$out/go" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
exec "${0%/*}/colibri-test-agent" --scenario text
"""


class World:
    """The Vault's world plus a probe and the test agent in the tenant's root."""

    def __init__(self, tmp_path, make_daemon, extra_args=(), items=None):
        self.v = Vault(tmp_path)
        self.hit = os.path.join(self.v.root, "pwned")
        self.items = dict(items if items is not None else ITEMS)
        if items is None:
            self.items["HOSTILE"] = ("$(touch %s) `touch %s` 'q' \"d\" \\ ${HOME}\n"
                                     "touch %s; echo x" % (self.hit, self.hit, self.hit))
        self.v.set_items(items_json(self.items))
        bindir = os.path.join(self.v.root, "bin")
        os.makedirs(bindir)
        shutil.copy(agent_bin(), os.path.join(bindir, "colibri-test-agent"))
        self.probe = os.path.join(bindir, "probe")
        with open(self.probe, "w") as f:
            f.write(PROBE)
        os.chmod(self.probe, 0o755)
        give_to_agent(self.v.root)
        self.d = make_daemon(env=self.v.env(), extra_args=list(extra_args))
        self.d.call("register-tenant", tenant_id="proof0", jail_root_path=self.v.root)

    def out(self, aid):
        return os.path.join(self.v.root, "probe-" + aid)

    def args(self, aid, **kw):
        a = {"binary": self.probe, "id": aid, "tenant_env": True,
             "jail": {"name": "proof0", "root_path": self.v.root},
             "env": {"PROBE_OUT": self.out(aid), "TENANT_ROOT": self.v.root,
                     "PROBE_NAMES": " ".join(sorted(self.items))}}
        a.update(kw)
        return a

    def wait_ready(self, aid, timeout=20.0):
        deadline = time.time() + timeout
        while not os.path.exists(os.path.join(self.out(aid), "ready")):
            assert time.time() < deadline, "agent %s never got ready" % aid
            time.sleep(0.05)

    def go(self, aid):
        open(os.path.join(self.out(aid), "go"), "w").close()

    def seen(self, aid):
        out = {}
        for n in self.items:
            with open(os.path.join(self.out(aid), "var." + n), "rb") as f:
                out[n] = f.read()
        return out


@pytest.fixture
def wtmp():
    """The jail's world outside pytest's own /tmp/pytest-of-USER, which any pytest run
    starting elsewhere on the machine resets to 0700 (the agent user must get through).
    Tests name it before make_daemon: it is removed after their daemons stopped."""
    d = tempfile.mkdtemp(prefix="colibri-tenv-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cleanup():
    ids = []
    yield ids
    for aid in ids:
        kill_pids(pids_with_marker(aid))


def cmdlines():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    found.append(f.read())
            except OSError:
                pass
    return found


def assert_agent_saw_the_items(w, aid):
    assert w.seen(aid) == {k: v.encode() for k, v in w.items.items()}


def test_provisioned_first_then_the_agent_sees_every_value(wtmp, make_daemon, cleanup):
    w = World(wtmp, make_daemon)
    cleanup.append("te1")
    assert not os.path.exists(w.v.env_path())
    r = w.d.connect().request("spawn-local", w.args("te1"))
    assert r["ok"], r
    row = r["result"]
    assert row["id"] == "te1" and row["jail"] == {"name": "proof0", "root_path": w.v.root}
    # The chain ran, whole, before the reply: the .env was there when the agent started.
    calls = w.v.calls()
    assert len(calls) == CHAIN_LEN and calls[-1]["argv"] == ["lock"], w.v.argvs()
    w.wait_ready("te1")
    with open(os.path.join(w.out("te1"), "env_there")) as f:
        assert f.read() == "yes\n"
    started = os.stat(os.path.join(w.out("te1"), "env_there")).st_mtime
    assert max(c["start"] for c in calls) < started
    assert_agent_saw_the_items(w, "te1")
    # While it runs: no process's argv holds a secret.
    for cl in cmdlines():
        for s in w.v.secrets():
            assert s.encode() not in cl, "a secret in a process's argv"
    w.go("te1")
    st = wait_gone(w.d, "te1")
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    # The hostile value ran nothing.
    assert not os.path.exists(w.hit)
    assert wait_tenant(w.d, "proof0")["status"] == "active"
    # Provisioned once: no second provisioning after the spawn (the default's order).
    time.sleep(0.5)
    assert len(w.v.calls()) == CHAIN_LEN, w.v.argvs()
    assert len([e for e in events(w.d) if e["event"] == "vault.provisioned"]) == 1
    assert w.v.overlaps() == ""
    assert "no .env yet: provisioning it before the agent starts" in w.d.read_log()
    assert not os.path.exists(stage_dir(w.v.root, "te1"))
    # A second spawn finds the .env: no bw at all, the same values.
    cleanup.append("te2")
    w.d.call("spawn-local", w.args("te2"))
    w.wait_ready("te2")
    w.go("te2")
    assert wait_gone(w.d, "te2")["state"] == "done"
    assert_agent_saw_the_items(w, "te2")
    assert len(w.v.calls()) == CHAIN_LEN, w.v.argvs()
    texts = [json.dumps(r), json.dumps(w.d.call("agent-status", id="te1")),
             json.dumps(w.d.call("list-agents"))]
    assert_no_secrets(w.v, w.d, extra_text=texts, sessions=True)


def test_the_spawns_own_env_wins_and_a_plain_spawn_is_unchanged(wtmp, make_daemon, cleanup):
    w = World(wtmp, make_daemon)
    w.d.call("provision-tenant", tenant_id="proof0")
    n = len(w.v.calls())
    cleanup.append("te3")
    a = w.args("te3")
    a["env"]["FIRST_PROOF_KEY"] = "from-the-spawn"
    w.d.call("spawn-local", a)
    w.wait_ready("te3")
    w.go("te3")
    assert wait_gone(w.d, "te3")["state"] == "done"
    seen = w.seen("te3")
    assert seen["FIRST_PROOF_KEY"] == b"from-the-spawn"
    assert seen["DB_PASSWORD"] == ITEMS["DB_PASSWORD"].encode()
    assert len(w.v.calls()) == n
    # Without tenant_env: no tenant variable, and the seeds' order (provision after).
    cleanup.append("te4")
    a = w.args("te4")
    del a["tenant_env"]
    w.d.call("spawn-local", a)
    w.wait_ready("te4")
    w.go("te4")
    assert wait_gone(w.d, "te4")["state"] == "done"
    assert set(w.seen("te4").values()) == {b"UNSET"}
    deadline = time.time() + 20
    while len([e for e in events(w.d) if e["event"] == "vault.provisioned"]) < 2:
        assert time.time() < deadline, w.v.argvs()
        time.sleep(0.05)
    assert len(w.v.calls()) > n


def test_a_failing_bw_fails_the_spawn_and_starts_nothing(wtmp, make_daemon):
    w = World(wtmp, make_daemon)
    w.v.write_vault(fail={"unlock": "Invalid master password."})
    r = w.d.connect().request("spawn-local", w.args("tf1"))
    assert not r["ok"], r
    assert r["error"]["code"] == "unavailable", r
    msg = r["error"]["message"]
    assert msg.startswith("tenant_env: provisioning proof0 failed: bw unlock failed"), msg
    assert "Invalid master password." in msg
    w.v.replies.append(msg)
    time.sleep(0.5)
    assert not os.path.exists(w.out("tf1"))
    assert not os.path.exists(stage_dir(w.v.root, "tf1"))
    assert pids_with_marker("tf1") == []
    assert all(a["id"] != "tf1" for a in w.d.call("list-agents")["items"])
    assert [e for e in events(w.d) if e["event"] == "agent.spawned"] == []
    assert w.v.env_files() == []
    assert tenant(w.d, "proof0")["status"] == "failed"
    assert_no_secrets(w.v, w.d)


@pytest.mark.parametrize("jail,why", [
    ("path", "tenant_env needs a tenant's jail"),
    ("stranger", "the jail name stranger is not a registered tenant"),
    ("elsewhere", "is not tenant proof0's jail_root_path"),
])
def test_no_tenant_jail_is_invalid(wtmp, make_daemon, jail, why):
    w = World(wtmp, make_daemon)
    other = os.path.join(w.v.base, "proof0", "other")
    os.makedirs(other)
    give_to_agent(other)
    j = {"path": {"path": w.v.root}, "stranger": {"name": "stranger", "root_path": w.v.root},
         "elsewhere": {"name": "proof0", "root_path": other}}[jail]
    r = w.d.connect().request("spawn-local", w.args("ti1", jail=j))
    assert not r["ok"] and r["error"]["code"] == "invalid_argument", r
    assert why in r["error"]["message"], r
    time.sleep(0.3)
    assert w.v.calls() == []
    assert not os.path.exists(w.out("ti1"))


@pytest.mark.parametrize("case", ["planted", "reserved"])
def test_a_env_the_agent_must_not_get_fails_the_spawn(wtmp, make_daemon, case):
    """A .env planted in the root by someone else, or one naming a reserved variable."""
    items = {"LD_PRELOAD": "/tmp/evil-preload.so", "OK_KEY": "ok-value-1234"} \
        if case == "reserved" else None
    w = World(wtmp, make_daemon, items=items)
    if case == "planted":
        with open(w.v.env_path(), "w") as f:
            f.write("FIRST_PROOF_KEY=planted-value\n")
        os.chmod(w.v.env_path(), 0o600)
        os.chown(w.v.env_path(), 65534, 65534)  # nobody: an agent's file
    r = w.d.connect().request("spawn-local", w.args("tr1"))
    assert not r["ok"] and r["error"]["code"] == "unavailable", r
    msg = r["error"]["message"]
    if case == "planted":
        assert "must be a regular file of the daemon's uid" in msg, msg
        assert "planted-value" not in msg
        assert w.v.calls() == []
    else:
        assert "the .env sets LD_PRELOAD, a reserved name" in msg, msg
        assert "evil-preload" not in msg and "ok-value" not in msg
    time.sleep(0.3)
    assert not os.path.exists(w.out("tr1"))
    assert not os.path.exists(stage_dir(w.v.root, "tr1"))
    assert all(a["id"] != "tr1" for a in w.d.call("list-agents")["items"])
    assert "evil-preload" not in w.d.read_log() and "planted-value" not in w.d.read_log()


def test_two_waiting_spawns_share_one_provisioning(wtmp, make_daemon, cleanup):
    w = World(wtmp, make_daemon)
    w.v.write_vault(delay_ms=150)
    cleanup += ["tw1", "tw2"]
    c1, c2 = w.d.connect(), w.d.connect()
    c1.sock.sendall((json.dumps({"id": 1, "cmd": "spawn-local", "args": w.args("tw1")}) +
                     "\n").encode())
    c2.sock.sendall((json.dumps({"id": 2, "cmd": "spawn-local", "args": w.args("tw2")}) +
                     "\n").encode())
    # The daemon answers meanwhile.
    t0 = time.monotonic()
    assert w.d.call("status") is not None
    assert time.monotonic() - t0 < 5.0  # bw takes 8 x 150 ms meanwhile
    r1, r2 = c1.read_msg(timeout=60), c2.read_msg(timeout=60)
    assert r1["ok"] and r2["ok"], (r1, r2)
    for aid in ("tw1", "tw2"):
        w.wait_ready(aid)
        w.go(aid)
        assert wait_gone(w.d, aid)["state"] == "done"
        assert_agent_saw_the_items(w, aid)
    assert len(w.v.calls()) == CHAIN_LEN, w.v.argvs()
    assert w.v.overlaps() == ""


def test_tenant_deleted_while_the_spawn_waits(wtmp, make_daemon):
    w = World(wtmp, make_daemon)
    w.v.write_vault(delay_ms=300)
    c = w.d.connect()
    c.sock.sendall((json.dumps({"id": 1, "cmd": "spawn-local", "args": w.args("td1")}) +
                    "\n").encode())
    time.sleep(0.5)
    assert w.d.call("delete-tenant", tenant_id="proof0") == {}
    r = c.read_msg(timeout=30)
    assert not r["ok"] and "deleted" in r["error"]["message"], r
    time.sleep(0.3)
    assert not os.path.exists(w.out("td1"))
    assert all(a["id"] != "td1" for a in w.d.call("list-agents")["items"])
    assert w.v.env_files() == []


def test_shutdown_while_the_spawn_waits(wtmp, make_daemon):
    w = World(wtmp, make_daemon)
    w.v.write_vault(delay_ms=2000)
    c = Conn(w.d.socket)  # not closed by stop(): it reads the held reply
    try:
        c.sock.sendall((json.dumps({"id": 1, "cmd": "spawn-local", "args": w.args("ts1")}) +
                        "\n").encode())
        time.sleep(0.3)
        t0 = time.monotonic()
        assert w.d.stop() == 0, w.d.read_log()[-2000:]
        assert time.monotonic() - t0 < 5.0
        r = c.read_msg(timeout=10)
    finally:
        c.close()
    assert r is not None and not r["ok"], r
    assert "shutting down" in r["error"]["message"], r
    assert not os.path.exists(w.out("ts1"))
    assert w.v.env_files() == []


def test_profile_key_and_cli_flag(wtmp, make_daemon, tmp_path, cleanup):
    conf = tmp_path / "conf"
    conf.mkdir(mode=0o700)
    # The profile names the probe, which World creates: write the file after it, then reload.
    w = World(wtmp, make_daemon, extra_args=["--config-dir", str(conf)])
    base = w.args("x")
    prof = {"name": "tenant", "provider": "local", "binary": w.probe, "tenant_env": True,
            "jail": base["jail"], "env": dict(base["env"], PROBE_OUT=w.out("tp1"))}
    with open(conf / "profiles.json", "w") as f:
        json.dump({"profiles": [prof]}, f)
    os.chmod(conf / "profiles.json", 0o600)
    w.d.proc.send_signal(1)  # SIGHUP: reload the profiles
    deadline = time.time() + 10
    while not w.d.call("profiles")["profiles"]:
        assert time.time() < deadline
        time.sleep(0.05)
    assert w.d.call("profiles")["profiles"][0]["tenant_env"] is True
    cleanup += ["tp1", "tc1"]
    r = w.d.call("spawn-agent", {"profile": "tenant", "id": "tp1"})
    assert r["id"] == "tp1"
    w.wait_ready("tp1")
    w.go("tp1")
    assert wait_gone(w.d, "tp1")["state"] == "done"
    assert_agent_saw_the_items(w, "tp1")
    assert len(w.v.calls()) == CHAIN_LEN
    # The CLI's --tenant-env on spawn-local, with the .env gone: the CLI waits for it.
    os.unlink(w.v.env_path())
    n = len(w.v.calls())
    a = w.args("tc1")
    cli = w.d.cli("spawn-local", "--tenant-env", "--id", "tc1", "--jail-name", "proof0",
                  "--jail-root", w.v.root, "--env", "PROBE_OUT=" + w.out("tc1"),
                  "--env", "TENANT_ROOT=" + w.v.root, "--env",
                  "PROBE_NAMES=" + a["env"]["PROBE_NAMES"], "--json", w.probe)
    assert cli.returncode == 0, cli.stderr
    assert len(w.v.calls()) > n and w.v.calls()[-1]["argv"] == ["lock"]
    w.wait_ready("tc1")
    with open(os.path.join(w.out("tc1"), "env_there")) as f:
        assert f.read() == "yes\n"
    w.go("tc1")
    assert wait_gone(w.d, "tc1")["state"] == "done"
    assert_agent_saw_the_items(w, "tc1")
    for s in w.v.secrets():
        assert s not in cli.stdout and s not in cli.stderr
    # tenant_env is a boolean.
    with pytest.raises(CallError):
        w.d.call("spawn-local", w.args("tc2", tenant_env="yes"))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                    or shutil.which("setpriv") is None, reason="needs root, useradd and setpriv")
def test_a_member_cannot_spawn_with_tenant_env(tmp_path):
    """Spawns stay admin-only: a member's tenant_env spawn runs no bw and starts nothing."""
    import pwd
    import subprocess
    import tempfile
    from conftest import Daemon
    from test_profiles import CLIENT
    tag = "%d" % (os.getpid() % 100000)
    g, user = "colibri-tg" + tag, "colibri-tm" + tag
    world = tempfile.mkdtemp(prefix="colibri-tenv-")
    os.chmod(world, 0o755)
    v = Vault(tmp_path)
    d = None
    try:
        subprocess.run(["groupadd", "--system", g], check=True, capture_output=True)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", "--groups", g, user], check=True, capture_output=True)
        u = pwd.getpwnam(user)
        d = Daemon(os.path.join(world, "state"), ["--group", g], v.env()).start()
        d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
        out = os.path.join(v.root, "probe-m1")
        steps = [["spawn-local", {"binary": "/bin/true", "id": "m1", "tenant_env": True,
                                  "jail": {"name": "proof0", "root_path": v.root},
                                  "env": {"PROBE_OUT": out}}]]
        p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                            "--init-groups", "/usr/bin/python3", "-c", CLIENT, d.socket,
                            json.dumps(steps)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout.splitlines()[0])
        assert not r["ok"] and r["error"]["code"] == "permission_denied", r
        time.sleep(0.5)
        assert v.calls() == []
        assert v.env_files() == []
        assert all(a["id"] != "m1" for a in d.call("list-agents")["items"])
    finally:
        if d is not None:
            assert d.stop() == 0, d.read_log()[-3000:]
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        subprocess.run(["groupdel", g], capture_output=True)
        shutil.rmtree(world, ignore_errors=True)
