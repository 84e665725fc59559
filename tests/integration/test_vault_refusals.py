"""Every way vault provisioning refuses, each failing closed.

A refusal leaves no .env (nor a temporary) anywhere, sets the tenant to
failed with a reason that says what is wrong, answers provision-tenant with
that reason, emits vault.failed, and puts no secret value in bw's argv, the
daemon's log, events, replies or the state dir.  Containment refusals
(symlinked root, sibling sharing the base's prefix, the base itself, a
planted .env symlink, a root that differs from the spawned one) happen
before any bw call; a server mismatch happens before any secret is handed
to bw.
"""
import json
import os
import shutil
import time

import pytest

from conftest import CallError
from test_jailed_spawn_helpers import bwrap_works, give_to_agent
from test_supervision_helpers import TOOLS
from test_vault_helpers import (PASSWORD, SESSION, Vault, assert_no_secrets, events, items_json,
                                spawn_jailed, tenant, wait_tenant, write_provider_env)

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")


def datadir_server(other):
    """Seed bw's data dir as if `bw config server OTHER` had run for the tenant."""
    def before(v, d):
        dd = os.path.join(d.state_dir, "vault", "proof0")
        os.makedirs(dd, mode=0o700)
        with open(os.path.join(dd, "data.json"), "w") as f:
            json.dump({"serverUrl": other, "status": "locked"}, f)
    return before


def symlinked_root(v):
    os.rmdir(v.root)
    os.symlink(v.outside, v.root)
    return v.root


def sibling_root(v):
    r = os.path.join(v.tmp, "jails-evil", "proof0", "root")
    os.makedirs(r)
    return r


def coll(v, items=None, name="proof0", cid="coll-proof0"):
    return {"id": cid, "name": name, "items": items_json(items or {"K": "ITEMPW-k-1"})}


# name: (prepare(v) -> tenant root or None, vault.json changes, daemon env,
#        before(v, d), wanted reason, bw calls allowed)
CASES = {
    "server_mismatch": (None, {}, {}, datadir_server("https://other.example.test"),
                        "fail closed", [["status"], ["lock"]]),
    "server_path_case": (None, {}, {}, datadir_server("https://vault.example.test/VW"),
                         "fail closed", [["status"], ["lock"]]),
    # The root becomes a symlink after register-tenant (which refuses one).
    "symlinked_dir": (None, {}, {}, None, "not strictly under", []),
    "sibling_prefix": (sibling_root, {}, {}, None, "not strictly under", []),
    "base_itself": (lambda v: v.base, {}, {}, None, "not strictly under", []),
    "missing_root": (lambda v: os.path.join(v.base, "proof0", "gone"), {}, {}, None,
                     "No such file", []),
    "wrong_password": (None, {"password": "MPW-the-real-one-9"}, {}, None,
                       "bw unlock failed (exit 1): Invalid master password", None),
    "wrong_client_secret": (None, {"client_secret": "CSEC-the-real-one-8"}, {}, None,
                            "bw login failed (exit 1): client_id or client_secret is incorrect",
                            None),
    "collection_missing": (None, {"collections": []}, {}, None,
                           "no collection named proof0", None),
    "collection_similar_name": (None, {"collections": "similar"}, {}, None,
                                "no collection named proof0", None),
    "duplicate_collections": (None, {"collections": "dup"}, {}, None,
                              "2 collections are named proof0", None),
    "duplicate_items": (None, {"items": [{"name": "K", "login": {"password": "ITEMPW-one-1"}},
                                         {"name": "K", "login": {"password": "ITEMPW-two-2"}}]},
                        {}, None, "two items are named K", None),
    "null_password": (None, {"items": [{"name": "K", "login": {"password": None}}]}, {}, None,
                      "item K has no login password", None),
    "secure_note": (None, {"items": [{"name": "K", "type": 2, "notes": "ITEMPW-note-3"}]}, {},
                    None, "item K has no login password", None),
    "empty_collection": (None, {"items": []}, {}, None, "the collection is empty", None),
    "invalid_item_name": (None, {"items": [{"name": "BAD-NAME",
                                            "login": {"password": "ITEMPW-bad-4"}}]},
                          {}, None, "BAD-NAME\" is not a valid variable name", None),
    "no_session_key": (None, {"session": ""}, {}, None, "bw unlock printed no session key",
                       None),
    "secret_in_bw_error": (None, {"fail": {"sync": "sync refused for session " + SESSION
                                           + " and password " + PASSWORD}},
                           {}, None, "bw sync failed (exit 1): sync refused for session ***",
                           None),
    "bw_timeout": (None, {"delay_ms": 5000}, {"COLIBRI_BW_TIMEOUT_MS": "300"}, None,
                   "bw status timed out after 300 ms", None),
    "bw_missing": (None, {}, {"COLIBRI_BW": "/nonexistent/colibri-test/bw"}, None,
                   "/nonexistent/colibri-test/bw", []),
    "bw_not_on_path": (None, {}, {"COLIBRI_BW": "", "PATH": TOOLS + ":/usr/bin:/bin"}, None,
                       "bw not found on PATH", []),
    "provider_key_missing": (None, {}, {}, "no_password", "BW_PASSWORD is not set", []),
}


def apply_vault(v, changes):
    changes = dict(changes)
    if changes.get("collections") == "dup":
        changes["collections"] = [coll(v), coll(v, cid="coll-2")]
    elif changes.get("collections") == "similar":
        changes["collections"] = [coll(v, name="proof0-old"), coll(v, name="Proof0", cid="c3")]
    if "items" in changes:
        changes["collections"] = [{"id": "coll-proof0", "name": "proof0",
                                   "items": changes.pop("items")}]
    v.write_vault(**changes)


def assert_refused(v, d, reason, reply_msg=None):
    t = tenant(d, "proof0")
    assert t["status"] == "failed", t
    assert reason in t["reason"], t["reason"]
    if reply_msg is not None:
        assert reason in reply_msg
        assert reply_msg.startswith("provisioning proof0 failed: ")
    failed = [e["data"] for e in events(d) if e["event"] == "vault.failed"]
    assert failed and failed[-1]["tenant_id"] == "proof0" and reason in failed[-1]["reason"]
    assert [e for e in events(d) if e["event"] == "vault.provisioned"] == []
    assert v.env_files() == [], v.env_files()
    assert_no_secrets(v, d)


@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal(make_daemon, tmp_path, case):
    prepare, vchanges, denv, before, reason, allowed = CASES[case]
    if case == "bw_not_on_path" and shutil.which("bw", path=TOOLS + ":/usr/bin:/bin"):
        pytest.skip("a real bw is installed in /usr/bin or /bin")
    v = Vault(tmp_path)
    root = prepare(v) if prepare is not None else v.root
    apply_vault(v, vchanges)
    if before == "no_password":
        write_provider_env(v.provider, password=None)
        before = None
    d = v.start(make_daemon, denv)
    if before is not None:
        before(v, d)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=root)
    if case == "symlinked_dir":
        symlinked_root(v)
    t0 = time.monotonic()
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert not r["ok"], r
    assert r["error"]["code"] == "unavailable", r
    v.replies.append(r["error"]["message"])
    assert_refused(v, d, reason, r["error"]["message"])
    if allowed is not None:
        assert v.argvs() == allowed
    if allowed == [["status"], ["lock"]] or case.startswith("server"):
        for c in v.calls():
            assert not {"BW_CLIENTSECRET", "BW_PASSWORD", "BW_SESSION"} & set(c["env"]), c
    if case == "bw_timeout":
        assert time.monotonic() - t0 < 4.0
        pid = v.calls()[0]["pid"]
        assert not os.path.exists("/proc/%d" % pid), "the timed-out bw is still there"
    if case == "symlinked_dir":
        assert os.listdir(v.outside) == []
    # The daemon still works, and a fixed setup provisions.
    assert d.call("status") is not None


@needs_bwrap
def test_spawned_root_differs_from_tenant_root(make_daemon, tmp_path):
    v = Vault(tmp_path)
    other = os.path.join(v.base, "proof0", "other")
    os.makedirs(other)
    give_to_agent(other)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    spawn_jailed(d, "proof0", other)
    t = wait_tenant(d, "proof0")
    assert "the spawned jail root %s differs from the tenant's %s" % (other, v.root) in t["reason"]
    assert_refused(v, d, "differs")
    assert v.calls() == []


@needs_bwrap
def test_symlinked_root_refused_before_the_spawn(make_daemon, tmp_path):
    # Confinement applies the same base (COLIBRI_JAIL_ROOT_BASE): the spawn
    # itself is refused, so the hook never runs; provision-tenant on the same
    # tenant is refused by the vault's own check (test_refusal[symlinked_dir]).
    # register-tenant refuses the symlink (test_trust_vault.py), so it is
    # planted after the registration.
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    symlinked_root(v)
    with pytest.raises(CallError) as e:
        spawn_jailed(d, "proof0", v.root)
    assert e.value.code == "invalid_argument" and "not strictly under" in e.value.message
    time.sleep(0.3)
    assert tenant(d, "proof0")["status"] == "provisioned"
    assert v.calls() == [] and v.env_files() == []
    assert os.listdir(v.outside) == []


@needs_bwrap
def test_planted_env_symlink(make_daemon, tmp_path):
    v = Vault(tmp_path)
    victim = os.path.join(v.outside, "victim")
    with open(victim, "w") as f:
        f.write("original\n")
    os.symlink(victim, v.env_path())
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    spawn_jailed(d, "proof0", v.root)
    t = wait_tenant(d, "proof0")
    assert t["status"] == "failed"
    assert ".env exists and is not a regular file (a symlink is refused)" in t["reason"]
    with open(victim) as f:
        assert f.read() == "original\n"
    assert os.path.islink(v.env_path())
    os.unlink(v.env_path())
    assert_refused(v, d, "a symlink is refused")
    assert os.listdir(v.outside) == ["victim"]


def test_dotdot_refused_at_register(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    for root in (v.root + "/../../../outside", v.root + "/..", "relative/root", ""):
        with pytest.raises(CallError) as e:
            d.call("register-tenant", tenant_id="proof0", jail_root_path=root)
        assert e.value.code == "invalid_argument", root
    for tid in ("../proof0", "proof0/x", ".hidden", "-x", "", "a" * 65):
        with pytest.raises(CallError) as e:
            d.call("register-tenant", tenant_id=tid, jail_root_path=v.root)
        assert e.value.code == "invalid_argument", tid
    assert d.call("list-tenants")["items"] == []
    assert v.calls() == [] and v.env_files() == []


# ---- jobs cut short ----

def test_timeout_kills_bw_and_its_helpers(make_daemon, tmp_path):
    # bw leaves a helper that holds its stdout open: killing bw alone would
    # leave the job waiting for end of file until the helper exits (30 s).
    v = Vault(tmp_path)
    v.write_vault(delay_ms=20000, linger_ms=30000)
    d = v.start(make_daemon, {"COLIBRI_BW_TIMEOUT_MS": "300"})
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    t0 = time.monotonic()
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert time.monotonic() - t0 < 5.0, "the job waited for bw's helper"
    assert not r["ok"] and "timed out" in r["error"]["message"], r
    v.replies.append(r["error"]["message"])
    assert_refused(v, d, "bw status timed out")


def test_delete_tenant_while_provisioning(make_daemon, tmp_path):
    v = Vault(tmp_path)
    v.write_vault(delay_ms=300)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    c = d.connect()
    c.sock.sendall(b'{"id": 1, "cmd": "provision-tenant", "args": {"tenant_id": "proof0"}}\n')
    time.sleep(0.5)  # the job is running (second bw call)
    assert d.call("delete-tenant", tenant_id="proof0") == {}
    r = c.read_msg(timeout=20)
    assert not r["ok"] and "deleted" in r["error"]["message"], r
    v.replies.append(r["error"]["message"])
    time.sleep(0.5)
    assert v.env_files() == []
    assert tenant(d, "proof0") is None
    assert not os.path.exists(os.path.join(d.state_dir, "vault", "proof0"))
    assert len(v.calls()) < 8
    assert_no_secrets(v, d)


def test_reregistered_elsewhere_while_provisioning(make_daemon, tmp_path):
    v = Vault(tmp_path)
    v.write_vault(delay_ms=300)
    elsewhere = os.path.join(v.base, "proof0", "root2")
    os.makedirs(elsewhere)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    c = d.connect()
    c.sock.sendall(b'{"id": 1, "cmd": "provision-tenant", "args": {"tenant_id": "proof0"}}\n')
    time.sleep(0.5)
    d.call("delete-tenant", tenant_id="proof0")
    d.call("register-tenant", tenant_id="proof0", jail_root_path=elsewhere)
    r = c.read_msg(timeout=20)
    assert not r["ok"], r
    assert v.env_files() == []


def test_shutdown_while_provisioning(make_daemon, tmp_path):
    v = Vault(tmp_path)
    v.write_vault(delay_ms=2000)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    c = d.connect()
    c.sock.sendall(b'{"id": 1, "cmd": "provision-tenant", "args": {"tenant_id": "proof0"}}\n')
    time.sleep(0.3)
    t0 = time.monotonic()
    assert d.stop() == 0, d.read_log()[-2000:]
    assert time.monotonic() - t0 < 3.0
    assert v.env_files() == []
    for r in v.calls():
        assert not os.path.exists("/proc/%d" % r["pid"]), r["argv"]
    assert len(v.calls()) == 1
