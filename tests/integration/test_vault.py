"""Vault provisioning end to end with the stand-in bw (standins/bw).

The runbook's chain: register-tenant, a jailed spawn through bubblewrap
with the jail's name and root, and the hook provisions the tenant -- bw
status, config server, login --apikey, unlock --passwordenv, sync, the
collection named like the tenant, its items -- into a 0600 .env that
/bin/sh reads back value for value; the tenant turns active and a
vault.provisioned event names the keys only.  Also: provision-tenant on
demand, each secret in the environment of exactly the bw call that needs
it, one bw at a time across tenants, one data dir per tenant, delete-tenant,
the provider env's permissions at start, privileged commands, and a socket
that keeps answering while a slow provisioning runs.
"""
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import CallError, Daemon
from test_jailed_spawn_helpers import bwrap_works
from test_vault_helpers import (CLIENT_SECRET, ITEMS, PASSWORD, SERVER, SESSION, Vault,
                                assert_no_secrets, events, items_json, send, spawn_jailed,
                                tenant, wait_reply, wait_tenant, write_provider_env)

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")

CHAIN = [["status"], ["config", "server", SERVER], ["status"], ["login", "--apikey"],
         ["unlock", "--passwordenv", "BW_PASSWORD", "--raw"], ["sync"],
         ["list", "collections", "--search", "proof0"],
         ["list", "items", "--collectionid", "coll-proof0"], ["lock"]]
SECRET_ENV = ("BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD", "BW_SESSION")


def sh_values(path, names):
    """Each name's value after `. path` in /bin/sh, as bytes."""
    out = {}
    for n in names:
        p = subprocess.run(["/bin/sh", "-c", '. "$1" && printf %s "$' + n + '"', "sh", path],
                           capture_output=True, timeout=10)
        assert p.returncode == 0, p.stderr
        out[n] = p.stdout
    return out


def assert_env_file(v, items):
    st = os.lstat(v.env_path())
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    got = sh_values(v.env_path(), items)
    assert got == {k: val.encode() for k, val in items.items()}
    with open(v.env_path()) as f:
        text = f.read()
    for k in items:
        assert text.count("\n%s=" % k) == 1
    assert [n for n in os.listdir(v.root) if n.startswith(".env.")] == []


@needs_bwrap
def test_runbook_chain(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    t = d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root,
               collection_id="proof0")
    assert (t["status"], t["collection_id"], t["jail_root_path"]) == ("provisioned", "proof0",
                                                                     v.root)
    a = spawn_jailed(d, "proof0", v.root)
    assert a["jail"] == {"name": "proof0", "root_path": v.root}
    t = wait_tenant(d, "proof0")
    assert t["status"] == "active", t
    assert t["reason"] is None
    assert_env_file(v, ITEMS)
    # The chain, in the runbook's order, with nothing secret in argv.
    assert v.argvs() == CHAIN
    assert v.overlaps() == ""
    # Each secret reaches only the call that needs it, through the environment.
    for r in v.calls():
        step = r["argv"][0]
        env = r["env"]
        want = {"login": {"BW_CLIENTID", "BW_CLIENTSECRET"}, "unlock": {"BW_PASSWORD"},
                "sync": {"BW_SESSION"}, "list": {"BW_SESSION"}}.get(step, set())
        assert {k for k in SECRET_ENV if k in env} == want, (r["argv"], sorted(env))
        if "BW_PASSWORD" in env:
            assert env["BW_PASSWORD"] == PASSWORD
        if "BW_CLIENTSECRET" in env:
            assert env["BW_CLIENTSECRET"] == CLIENT_SECRET
        if "BW_SESSION" in env:
            assert env["BW_SESSION"] == SESSION
        assert env["BW_NOINTERACTION"] == "true"
        assert env["BITWARDENCLI_APPDATA_DIR"] == os.path.join(d.state_dir, "vault", "proof0")
    datadir = os.path.join(d.state_dir, "vault", "proof0")
    assert stat.S_IMODE(os.stat(datadir).st_mode) == 0o700
    # The audit trail names keys, never values.
    ev = [e for e in events(d) if e["event"] == "vault.provisioned"]
    assert len(ev) == 1, ev
    assert ev[0]["data"]["tenant_id"] == "proof0"
    assert sorted(ev[0]["data"]["keys"]) == sorted(ITEMS)
    assert set(ev[0]["data"]) == {"tenant_id", "keys", "path"}
    log = d.read_log()
    assert "vault: provisioning tenant proof0" in log
    assert "vault: tenant proof0 provisioned: 3 keys" in log
    assert_no_secrets(v, d, sessions=True)


@needs_bwrap
def test_spawn_without_tenant_or_jail_name_is_a_noop(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    spawn_jailed(d, "proof0", v.root)  # no tenant registered
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    d.call("spawn-agent", {"provider": "local", "args": ["--scenario", "text"],
                           "jail": {"root_path": v.root}})
    time.sleep(0.5)
    assert v.calls() == []
    assert tenant(d, "proof0")["status"] == "provisioned"
    assert v.env_files() == []


@needs_bwrap
def test_trailing_slashes_are_normalised(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root + "//")
    spawn_jailed(d, "proof0", v.root)
    assert wait_tenant(d, "proof0")["status"] == "active"
    assert_env_file(v, ITEMS)


def test_provision_on_demand(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    with pytest.raises(CallError) as e:
        d.call("provision-tenant", tenant_id="proof0")
    assert e.value.code == "not_found"
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    t = d.call("provision-tenant", tenant_id="proof0")
    assert t["status"] == "active"
    assert_env_file(v, ITEMS)
    # Again, after the collection changed: bw is logged in already (status
    # says locked or unlocked), so no second login; the .env is replaced.
    n = len(v.calls())
    items = {"FIRST_PROOF_KEY": "ITEMPW-rotated-2", "NEW_KEY": "ITEMPW-new-3"}
    v.set_items(items_json(items))
    assert d.call("provision-tenant", tenant_id="proof0")["status"] == "active"
    assert_env_file(v, items)
    assert sh_values(v.env_path(), ["DB_PASSWORD"]) == {"DB_PASSWORD": b""}
    again = [r["argv"][0] for r in v.calls()[n:]]
    assert "login" not in again and "config" not in again, again
    assert again[0] == "status" and "unlock" in again
    # The operator points BW_SERVER elsewhere: bw's configured server no
    # longer matches, and the job fails closed before any secret is sent.
    write_provider_env(v.provider, server="https://other.example.test")
    n = len(v.calls())
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert not r["ok"] and r["error"]["code"] == "unavailable", r
    assert "fail closed" in r["error"]["message"]
    v.replies.append(r["error"]["message"])
    assert [c["argv"] for c in v.calls()[n:]] == [["status"], ["lock"]]
    t = tenant(d, "proof0")
    assert t["status"] == "failed" and "fail closed" in t["reason"]
    assert_no_secrets(v, d)


def test_one_bw_at_a_time_one_datadir_per_tenant(make_daemon, tmp_path):
    v = Vault(tmp_path)
    roots = {}
    for name in ("ta", "tb", "tc"):
        roots[name] = os.path.join(v.base, name, "root")
        os.makedirs(roots[name])
    v.write_vault(delay_ms=40, collections=[
        {"id": "coll-" + n, "name": n, "items": items_json({"KEY_" + n.upper(): "ITEMPW-" + n})}
        for n in roots])
    d = v.start(make_daemon)
    for name, root in roots.items():
        d.call("register-tenant", tenant_id=name, jail_root_path=root)
    conns = [d.connect() for _ in range(4)]
    # Four requests at once, two for the same tenant.
    order = ["ta", "tb", "tc", "ta"]
    for i, (c, name) in enumerate(zip(conns, order)):
        send(c, "provision-tenant", {"tenant_id": name}, 100 + i)
    for i, c in enumerate(conns):
        r = wait_reply(c, 100 + i)
        assert r["ok"], r
        assert r["result"]["status"] == "active"
    assert v.overlaps() == ""
    # Start/end times from the stand-in: no two calls overlap.
    starts = {r["pid"]: r["start"] for r in v.records() if "start" in r}
    ends = {r["pid"]: r["end"] for r in v.records() if "end" in r}
    spans = sorted((starts[p], ends[p]) for p in starts)
    assert len(spans) == len(v.calls()) >= 4 * 6
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert e1 <= s2, (s1, e1, s2, e2)
    # Each tenant's bw runs in its own 0700 data dir; jobs run in request order.
    dirs = [r["env"]["BITWARDENCLI_APPDATA_DIR"] for r in v.calls()]
    seen = [os.path.basename(x) for i, x in enumerate(dirs) if i == 0 or dirs[i - 1] != x]
    assert seen == order
    for name, root in roots.items():
        dd = os.path.join(d.state_dir, "vault", name)
        assert stat.S_IMODE(os.stat(dd).st_mode) == 0o700
        assert sh_values(os.path.join(root, ".env"), ["KEY_" + name.upper()]) == \
            {"KEY_" + name.upper(): ("ITEMPW-" + name).encode()}


def test_delete_tenant_removes_its_data_dir(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    d.call("provision-tenant", tenant_id="proof0")
    datadir = os.path.join(d.state_dir, "vault", "proof0")
    assert os.path.exists(os.path.join(datadir, "data.json"))
    assert d.call("delete-tenant", tenant_id="proof0") == {}
    assert not os.path.exists(datadir)
    assert tenant(d, "proof0") is None
    assert [e["data"] for e in events(d) if e["event"] == "tenant.deleted"] == \
        [{"tenant_id": "proof0"}]
    with pytest.raises(CallError) as e:
        d.call("delete-tenant", tenant_id="proof0")
    assert e.value.code == "not_found"
    with pytest.raises(CallError) as e:
        d.call("delete-tenant", tenant_id="../proof0")
    assert e.value.code == "invalid_argument"
    # The jail's .env is the operator's to remove with the jail (docs/vault.md).
    assert os.path.exists(v.env_path())


def test_group_readable_provider_env_refuses_start(make_daemon, tmp_path):
    v = Vault(tmp_path)
    for mode in (0o640, 0o604):
        os.chmod(v.provider, mode)
        d = make_daemon(name="state%o" % mode, env=v.env(), start=False)
        d.start(wait=False)
        rc = d.proc.wait(10)
        log = d.read_log()
        assert rc != 0, log
        assert v.provider in log and "%04o" % mode in log and "chmod 600" in log, log
        assert PASSWORD not in log and CLIENT_SECRET not in log
        assert not os.path.exists(d.socket)
        d.log.close()
    # A provider env that turns group-readable while the daemon runs fails the job.
    os.chmod(v.provider, 0o600)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    os.chmod(v.provider, 0o640)
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert not r["ok"] and "chmod 600" in r["error"]["message"], r
    assert v.calls() == [] and v.env_files() == []
    assert tenant(d, "proof0")["status"] == "failed"


def test_socket_answers_while_bw_is_slow(make_daemon, tmp_path):
    v = Vault(tmp_path)
    v.write_vault(delay_ms=1500)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    slow, fast = d.connect(), d.connect()
    t0 = time.monotonic()
    send(slow, "provision-tenant", {"tenant_id": "proof0"}, 1)
    slow.sock.setblocking(False)
    lat = []
    reply = None
    while reply is None and time.monotonic() - t0 < 60:
        s = time.monotonic()
        fast.call("status")
        lat.append(time.monotonic() - s)
        try:
            chunk = slow.sock.recv(65536)
            slow.buf += chunk
        except BlockingIOError:
            pass
        if b"\n" in slow.buf:
            reply = json.loads(slow.buf.split(b"\n", 1)[0])
        time.sleep(0.25)
    took = time.monotonic() - t0
    assert reply is not None and reply["ok"], reply
    assert took >= 8 * 1.5, took  # eight bw calls of 1.5 s each
    assert len(lat) >= 20
    # A loop blocked by bw would stall for a whole 1.5 s call.  Allow a rare
    # scheduling hiccup on a loaded host, never a stall.
    fast_enough = [x for x in lat if x < 0.05]
    assert len(fast_enough) >= 0.9 * len(lat), sorted(lat)[-5:]
    assert max(lat) < 0.5, sorted(lat)[-5:]


# ---- privileged commands ----

CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for i, (cmd, args) in enumerate(json.loads(sys.argv[2]), 1):
    f.write((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            print(json.dumps(m))
            break
"""


@pytest.fixture
def other_user():
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, useradd and setpriv")
    name = "colibri-vt%d" % (os.getpid() % 100000)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--user-group", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


def test_tenant_commands_need_a_privileged_peer(other_user, make_daemon):
    world = tempfile.mkdtemp(prefix="colibri-vt-")
    try:
        os.chmod(world, 0o755)
        v = Vault(world)
        d = Daemon(os.path.join(world, "state"), env=v.env()).start()
        try:
            d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
            calls = [["status", {}],
                     ["register-tenant", {"tenant_id": "evil", "jail_root_path": v.root}],
                     ["list-tenants", {}],
                     ["provision-tenant", {"tenant_id": "proof0"}],
                     ["delete-tenant", {"tenant_id": "proof0"}]]
            # Group 0 reaches the 0660 socket in the 0750 state dir; it is not the admin group.
            p = subprocess.run(["setpriv", "--reuid=%d" % other_user.pw_uid,
                                "--regid=%d" % other_user.pw_gid, "--groups=0",
                                "/usr/bin/python3", "-c", CLIENT, d.socket, json.dumps(calls)],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
            replies = [json.loads(line) for line in p.stdout.splitlines()]
            assert len(replies) == len(calls)
            assert replies[0]["ok"], replies[0]
            for r in replies[1:]:
                assert not r["ok"], r
                assert r["error"]["code"] == "permission_denied", r
            items = d.call("list-tenants")["items"]
            assert [(t["tenant_id"], t["status"]) for t in items] == [("proof0", "provisioned")]
            assert v.calls() == [] and v.env_files() == []
        finally:
            assert d.stop() == 0, d.read_log()[-3000:]
    finally:
        shutil.rmtree(world, ignore_errors=True)


@needs_bwrap
def test_runbook_through_the_cli(make_daemon, tmp_path):
    """The runbook's steps 3-5 and the cleanup, verb by verb, with the colibri CLI."""
    from conftest import bin_path
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    r = d.cli("register-tenant", "proof0", v.root, "proof0", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "provisioned"
    r = d.cli("spawn-agent", "local", bin_path("colibri-test-agent"), "--jail-name", "proof0",
              "--jail-root", v.root, "--session-id", "proof0-proof", "--", "--scenario", "text")
    assert r.returncode == 0, r.stderr
    assert wait_tenant(d, "proof0")["status"] == "active"
    r = d.cli("list-tenants")
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if "proof0" in ln]
    assert len(line) == 1 and "active" in line[0], r.stdout
    assert_env_file(v, ITEMS)
    r = d.cli("provision-tenant", "proof0", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "active", r.stderr
    v.write_vault(password="MPW-changed-upstream-5")
    write_provider_env(v.provider)  # still the old password: unlock fails
    r = d.cli("provision-tenant", "proof0")
    assert r.returncode != 0
    assert "Invalid master password" in r.stderr and PASSWORD not in r.stderr, r.stderr
    v.replies += [r.stdout, r.stderr]
    r = d.cli("list-tenants")
    assert "failed" in r.stdout and "Invalid master password" in r.stdout, r.stdout
    r = d.cli("delete-tenant", "proof0")
    assert r.returncode == 0, r.stderr
    assert "proof0" not in d.cli("list-tenants").stdout
    assert not os.path.exists(os.path.join(d.state_dir, "vault", "proof0"))
    assert_no_secrets(v, d, sessions=True)
