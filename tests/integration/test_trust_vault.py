"""Issue 15, the vault's share of the trust model: each finding reproduced, then refused.

- Vault error text was cut before it was scrubbed, so a secret's prefix
  survived, and item values were never scrubbed at all.  Here a stand-in bw
  fails with a line that holds the master password right where the 300-byte
  cut falls, a cut-off prefix of the client secret and the session key; and
  a `bw lock` after the items were fetched fails with the item values in its
  text.  No piece of 8 bytes or more of any of them may appear in the reply,
  the events, the tenant's row, the daemon's log, the database (dumped) or
  any file of the state directory.
- The vault was left unlocked after provisioning: the stand-in records
  `lock` after every job that ran bw, successful or failed, its data file
  ends locked, and a lock that fails costs bw's data dir instead.
- A tenant root that is a symlink inside the base was followed (one
  tenant's secrets landed in another's root): register-tenant refuses it,
  and a root swapped for a symlink after registration is refused before
  anything is written.

The daemon keeps serving after each refusal.  The stand-in bw is
tests/integration/standins/bw (see test_vault_helpers.py).
"""
import json
import os
import sqlite3

import pytest

from conftest import CallError
from test_vault_helpers import (CLIENT_SECRET, ITEMS, PASSWORD, SESSION, Vault,
                                assert_no_secrets, events, items_json, state_files, tenant)

CUT = 300  # bytes of bw's error line that reach a message (vault-run.c)
WINDOW = 8  # the scrubber removes every piece this long or longer


def pieces(secret):
    return {secret[i:i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def db_dump(d):
    """The whole database as SQL text, read beside the running daemon."""
    c = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.state_dir, "colibri.sqlite"),
                        uri=True)
    try:
        return "\n".join(c.iterdump())
    finally:
        c.close()


def assert_no_pieces(v, d, secrets, replies):
    """No 8-byte piece of any secret anywhere the daemon writes or answers."""
    places = [("daemon log", d.read_log()),
              ("events", json.dumps(events(d), ensure_ascii=False)),
              ("tenants", json.dumps(d.call("list-tenants"), ensure_ascii=False)),
              ("database dump", db_dump(d))]
    places += [("reply %d" % i, r) for i, r in enumerate(replies)]
    places += [(p, data.decode("utf-8", "replace")) for p, data in state_files(d)]
    for where, text in places:
        for s in secrets:
            for piece in pieces(s):
                assert piece not in text, "%r (of %r...) found in %s" % (piece, s[:4], where)


def lock_calls(v):
    return [i for i, a in enumerate(v.argvs()) if a == ["lock"]]


def bw_state(d, tid="proof0"):
    with open(os.path.join(d.state_dir, "vault", tid, "data.json")) as f:
        return json.load(f)["status"]


# ---- scrubbing ----------------------------------------------------------------

def test_secret_cut_at_the_limit_and_prefixes_are_scrubbed(make_daemon, tmp_path):
    v = Vault(tmp_path)
    head = "refused: cs=%s sess=%s pad=" % (CLIENT_SECRET[:9], SESSION)
    # The master password starts 12 bytes before the cut: cutting first left
    # "MPW-master-p" behind, which a whole-secret scrub never matched.
    line = head + "E" * (CUT - 12 - len(head)) + PASSWORD + " tail"
    assert line.index(PASSWORD) == CUT - 12
    v.write_vault(fail={"sync": line})
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert not r["ok"] and r["error"]["code"] == "unavailable", r
    msg = r["error"]["message"]
    assert msg.startswith("provisioning proof0 failed: bw sync failed (exit 1): "
                          "refused: cs=*** sess=*** pad=EEE"), msg
    assert "E*** tail" in msg, msg  # scrubbed first, so the tail now fits
    t = tenant(d, "proof0")
    assert t["status"] == "failed" and "refused: cs=*** sess=***" in t["reason"], t
    failed = [e["data"]["reason"] for e in events(d) if e["event"] == "vault.failed"]
    assert failed and "refused: cs=*** sess=***" in failed[-1]
    v.replies.append(msg)
    assert_no_secrets(v, d)
    assert_no_pieces(v, d, [PASSWORD, CLIENT_SECRET[:9], SESSION], [msg])
    assert d.call("status")["pid"] > 0


def test_item_values_are_scrubbed(make_daemon, tmp_path):
    v = Vault(tmp_path)
    plain = ITEMS["FIRST_PROOF_KEY"]
    # bw lock fails after the items were fetched, echoing them (whole and in part).
    v.write_vault(fail={"lock": "cannot lock: %s / %s / %s" % (
        plain, plain[2:12], ITEMS["DB_PASSWORD"].replace("\n", " "))})
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    t = d.call("provision-tenant", tenant_id="proof0")
    assert t["status"] == "active" and t["reason"] is None, t
    log = d.read_log()
    assert "bw lock failed (exit 1): cannot lock: ***" in log, log
    assert_no_secrets(v, d)
    assert_no_pieces(v, d, [plain, PASSWORD, SESSION, CLIENT_SECRET], [])
    # The value with a newline: each of its lines, 8 bytes or more, is gone too.
    for part in ITEMS["DB_PASSWORD"].split("\n"):
        if len(part) >= WINDOW:
            assert_no_pieces(v, d, [part], [])


# ---- bw lock -------------------------------------------------------------------

def test_vault_locked_after_success_and_failure(make_daemon, tmp_path):
    v = Vault(tmp_path)
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    assert d.call("provision-tenant", tenant_id="proof0")["status"] == "active"
    assert v.argvs()[-1] == ["lock"] and len(lock_calls(v)) == 1, v.argvs()
    assert v.argvs()[-2][:2] == ["list", "items"]
    assert bw_state(d) == "locked"
    # lock needs no secret: none reaches it.
    lock = v.calls()[-1]
    assert not {"BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD", "BW_SESSION"} & set(lock["env"])
    # A failure after unlock (the collection is gone) locks too.
    n = len(v.calls())
    v.write_vault(collections=[])
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert not r["ok"] and "no collection named proof0" in r["error"]["message"], r
    again = [c["argv"] for c in v.calls()[n:]]
    assert again[-1] == ["lock"] and ["unlock", "--passwordenv", "BW_PASSWORD", "--raw"] in again
    assert bw_state(d) == "locked"
    # A failure at the first step (bw's status cannot be read) still locks.
    n = len(v.calls())
    v.write_vault(fail={"status": "no status"})
    r = d.connect().request("provision-tenant", {"tenant_id": "proof0"})
    assert not r["ok"] and "bw status failed" in r["error"]["message"], r
    assert [c["argv"] for c in v.calls()[n:]] == [["status"], ["lock"]]
    assert d.call("status")["pid"] > 0


def test_failed_lock_removes_the_data_dir(make_daemon, tmp_path):
    v = Vault(tmp_path)
    v.write_vault(fail={"lock": "lock refused"})
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    t = d.call("provision-tenant", tenant_id="proof0")
    # The secrets were written: the job stands; the unlocked data does not.
    assert t["status"] == "active", t
    assert v.argvs()[-1] == ["lock"]
    assert not os.path.exists(os.path.join(d.state_dir, "vault", "proof0"))
    log = d.read_log()
    assert "bw lock failed (exit 1): lock refused" in log and "removing its bw data dir" in log
    # The next job logs in again and provisions.
    v.write_vault(fail={})
    assert d.call("provision-tenant", tenant_id="proof0")["status"] == "active"
    assert ["login", "--apikey"] in v.argvs()[len(v.argvs()) - 9:]
    assert bw_state(d) == "locked"


# ---- tenant roots --------------------------------------------------------------

def two_tenants(v):
    """proof0 (the victim, its real root) and other, with its own collection."""
    v.write_vault(collections=v.vault["collections"] + [
        {"id": "coll-other", "name": "other",
         "items": items_json({"OTHER_KEY": "ITEMPW-other-secret-9"})}])
    return os.path.join(v.base, "other")


@pytest.mark.parametrize("how", ["root_is_link", "parent_is_link"])
def test_symlinked_root_refused_at_register(make_daemon, tmp_path, how):
    v = Vault(tmp_path)
    other = two_tenants(v)
    if how == "root_is_link":
        os.makedirs(other)
        os.symlink(v.root, os.path.join(other, "root"))
    else:
        os.symlink(os.path.dirname(v.root), other)
    root = os.path.join(other, "root")
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    with pytest.raises(CallError) as e:
        d.call("register-tenant", tenant_id="other", jail_root_path=root)
    assert e.value.code == "invalid_argument"
    assert "resolves to %s" % v.root in e.value.message, e.value.message
    assert "must be its own canonical path" in e.value.message
    assert tenant(d, "other") is None
    assert [e for e in events(d) if e["event"] == "tenant.registered"
            and e["data"]["tenant_id"] == "other"] == []
    with pytest.raises(CallError) as e:
        d.call("provision-tenant", tenant_id="other")
    assert e.value.code == "not_found"
    assert v.calls() == [] and v.env_files() == [] and os.listdir(v.root) == []
    # A doubled slash is not canonical either; the real path is accepted.
    with pytest.raises(CallError):
        d.call("register-tenant", tenant_id="other", jail_root_path=v.base + "//proof0/root")
    assert d.call("status")["pid"] > 0


def test_root_swapped_for_a_symlink_after_register(make_daemon, tmp_path):
    v = Vault(tmp_path)
    other = two_tenants(v)
    os.makedirs(os.path.join(other, "root"))
    d = v.start(make_daemon)
    d.call("register-tenant", tenant_id="proof0", jail_root_path=v.root)
    d.call("register-tenant", tenant_id="other", jail_root_path=os.path.join(other, "root"))
    os.rmdir(os.path.join(other, "root"))
    os.symlink(v.root, os.path.join(other, "root"))
    r = d.connect().request("provision-tenant", {"tenant_id": "other"})
    assert not r["ok"] and r["error"]["code"] == "unavailable", r
    assert "must be its own canonical path" in r["error"]["message"], r
    assert tenant(d, "other")["status"] == "failed"
    # Refused before any bw call: nothing fetched, nothing written, nothing to lock.
    assert v.calls() == [] and v.env_files() == [] and os.listdir(v.root) == []
    assert "ITEMPW-other-secret-9" not in d.read_log()
    # The victim still provisions into its own root.
    assert d.call("provision-tenant", tenant_id="proof0")["status"] == "active"
    assert v.env_files() == [v.env_path()]
