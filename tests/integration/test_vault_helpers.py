"""Helpers shared by the vault suites (test_vault*.py).

No tests live here.  `Vault` lays out one test's world: a jail root base
(COLIBRI_JAIL_ROOT_BASE) with the tenant's root under it, a 0600 provider
env, and the stand-in bw (standins/bw) copied beside its vault.json, where
it logs every call to bw.log and any overlap of two bw processes to
bw.overlap.  `assert_no_secrets` greps everything the daemon produced --
bw argv, its log, its events, error replies, the state dir with the
session files and the database -- for every secret value.
"""
import json
import os
import shutil
import socket
import time

from test_jailed_spawn_helpers import give_to_agent, jail_env

HERE = os.path.dirname(os.path.abspath(__file__))
BW_STANDIN = os.path.join(HERE, "standins", "bw")

SERVER = "https://vault.example.test"
CLIENT_ID = "user.c0ffee00-feed-4bad-a11c-0123456789ab"
CLIENT_SECRET = "CSEC-q8Zr1kP0vW3xN7mB2yT5"
PASSWORD = "MPW-master-pass-4711-zq"
SESSION = "SESS-bw-session-key-0042-base64+/="
ITEMS = {
    "FIRST_PROOF_KEY": "ITEMPW-first-proof-1",
    "DB_PASSWORD": "ITEMPW-it's $HOME `id` \\ \"q\"\nline2 \u2713",
    "EMPTY_OK": "",
}


def write_provider_env(path, server=SERVER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                       password=PASSWORD, mode=0o600):
    with open(path, "w") as f:
        f.write("# colibri bootstrap credentials\n")
        if server is not None:
            f.write("BW_SERVER=%s\n" % server)
        if client_id is not None:
            f.write("BW_CLIENTID=%s\n" % client_id)
        if client_secret is not None:
            f.write("export BW_CLIENTSECRET='%s'\n" % client_secret)
        if password is not None:
            f.write("BW_PASSWORD=\"%s\"\n" % password)
    os.chmod(path, mode)


def items_json(items):
    return [{"name": k, "login": {"username": None, "password": v}} for k, v in items.items()]


class Vault:
    def __init__(self, tmp, tenant="proof0"):
        self.tmp = str(tmp)
        self.tenant = tenant
        self.base = os.path.join(self.tmp, "jails")
        self.root = os.path.join(self.base, tenant, "root")
        os.makedirs(self.root)
        give_to_agent(self.root)  # a root daemon's bubblewrap agent runs as nobody
        self.outside = os.path.join(self.tmp, "outside")
        os.makedirs(self.outside)
        self.bwdir = os.path.join(self.tmp, "bwbin")
        os.makedirs(self.bwdir)
        self.bw = os.path.join(self.bwdir, "bw")
        shutil.copy(BW_STANDIN, self.bw)
        os.chmod(self.bw, 0o755)
        self.provider = os.path.join(self.tmp, "provider.env")
        write_provider_env(self.provider)
        self.vault = {"server": SERVER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "password": PASSWORD, "session": SESSION,
                      "collections": [{"id": "coll-" + tenant, "name": tenant,
                                       "items": items_json(ITEMS)}]}
        self.write_vault()
        self.item_values = list(ITEMS.values())
        self.replies = []  # error messages seen, for assert_no_secrets

    def write_vault(self, **kw):
        self.vault.update(kw)
        for c in self.vault.get("collections", []):
            for it in c.get("items", []):
                pw = (it.get("login") or {}).get("password")
                if isinstance(pw, str) and pw and pw not in getattr(self, "item_values", []):
                    self.item_values = getattr(self, "item_values", []) + [pw]
        with open(os.path.join(self.bwdir, "vault.json"), "w") as f:
            json.dump(self.vault, f)

    def set_items(self, items, tenant=None):
        for c in self.vault["collections"]:
            if c["name"] == (tenant or self.tenant):
                c["items"] = items
        self.write_vault()

    def env(self, extra=None):
        e = {"COLIBRI_PROVIDER_ENV": self.provider, "COLIBRI_JAIL_ROOT_BASE": self.base,
             "COLIBRI_BW": self.bw}
        e.update(extra or {})
        env = jail_env(e)
        for k in ("BW_SERVER", "BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD", "BW_SESSION"):
            env.pop(k, None)
        return env

    def start(self, make_daemon, extra=None, name="state"):
        return make_daemon(name=name, env=self.env(extra))

    # ---- bw's record ----

    def records(self):
        p = os.path.join(self.bwdir, "bw.log")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(line) for line in f]

    def calls(self):
        return [r for r in self.records() if "argv" in r]

    def argvs(self):
        return [r["argv"] for r in self.calls()]

    def overlaps(self):
        p = os.path.join(self.bwdir, "bw.overlap")
        return open(p).read() if os.path.exists(p) else ""

    def secrets(self):
        return [CLIENT_ID, CLIENT_SECRET, PASSWORD, SESSION,
                self.vault["password"], self.vault["client_secret"], self.vault["session"]] + \
            [v for v in self.item_values if len(v) >= 6]

    # ---- files ----

    def env_path(self, root=None):
        return os.path.join(root or self.root, ".env")

    def env_files(self):
        """Every .env or .env temporary anywhere under the test's directory."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.tmp):
            for n in filenames + dirnames:
                if n == ".env" or n.startswith(".env."):
                    found.append(os.path.join(dirpath, n))
        return found


def tenant(d, tid):
    for t in d.call("list-tenants")["items"]:
        if t["tenant_id"] == tid:
            return t
    return None


def wait_tenant(d, tid, states=("active", "failed"), timeout=20.0):
    deadline = time.time() + timeout
    t = None
    while time.time() < deadline:
        t = tenant(d, tid)
        if t is not None and t["status"] in states:
            return t
        time.sleep(0.05)
    raise TimeoutError("tenant %s stayed %s" % (tid, t))


def spawn_jailed(d, name, root, **kw):
    args = {"provider": "local", "args": ["--scenario", "text"],
            "jail": {"name": name, "root_path": root}}
    args.update(kw)
    return d.call("spawn-agent", args)


def events(d, topics=None):
    args = {"limit": 100000}
    if topics:
        args["topics"] = topics
    r = d.call("events-read", args)
    return r["items"] if isinstance(r, dict) else r


def send(conn, cmd, args, rid):
    conn.sock.sendall((json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n").encode())


def wait_reply(conn, rid, timeout=60.0):
    conn.sock.settimeout(timeout)
    while True:
        m = conn.read_msg()
        if m is None:
            raise ConnectionError("daemon closed the connection")
        if m.get("id") == rid:
            return m


def state_files(d):
    """(path, bytes) of every regular file the daemon keeps: database, sessions, bw data."""
    out = []
    for dirpath, _, filenames in os.walk(d.state_dir):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out.append((p, f.read()))
    return out


def assert_no_secrets(v, d, extra_text=(), sessions=False):
    """sessions: an agent ran, so its session files must be among those searched."""
    secrets = [s for s in set(v.secrets()) if s]
    places = []
    for r in v.calls():
        places.append(("bw argv %s" % r["argv"][:2], " ".join(r["argv"]).encode()))
    places.append(("daemon log", d.read_log().encode()))
    places.append(("events", json.dumps(events(d), ensure_ascii=False).encode()))
    places.append(("tenants", json.dumps(d.call("list-tenants"), ensure_ascii=False).encode()))
    for i, t in enumerate(list(v.replies) + list(extra_text)):
        places.append(("reply %d" % i, t.encode()))
    sdir = os.path.join(d.state_dir, "sessions")
    files = state_files(d)
    assert any(p.endswith(".sqlite") for p, _ in files), [p for p, _ in files]
    if sessions:
        assert any(p.startswith(sdir + os.sep) for p, _ in files), [p for p, _ in files]
    places += files
    for where, data in places:
        for s in secrets:
            for form in {s.encode(), json.dumps(s)[1:-1].encode()}:
                assert form not in data, "secret %r found in %s" % (s[:6] + "...", where)
