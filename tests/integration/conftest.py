"""Shared fixtures for the integration suites.

Every test that needs a daemon gets its own: `daemon` starts a real
colibri-daemon --state-dir TMP --foreground, waits for its socket, and stops
it (SIGTERM, then SIGKILL) afterwards.  `Daemon.call` speaks the socket
protocol directly; `Daemon.cli` runs the real colibri CLI against it.

Binaries come from COLIBRI_BUILD (default: ../../build).

Every message a Conn reads is checked against schemas/ (the protocol's
contract): each reply envelope against envelope.json, each ok result against
commands/CMD.result.json, the args of each request that succeeded against
commands/CMD.args.json, and each event's data against events/TOPIC.json.  A
mismatch raises an AssertionError naming the schema and the path inside the
message.  COLIBRI_SCHEMA_CHECK=0 turns the check off.

COLIBRI_STORE, when set to a PostgreSQL URL (the one tests/pg/start.sh
prints; a "{db}" in it marks where the database name goes, else the URL's
path is replaced), runs every daemon on PostgreSQL: each state directory
gets a fresh database of its own (a restarted daemon finds its data again),
passed with --store.  Tests that inspect the SQLite file itself are skipped
then (SQLITE_ONLY below, each with its reason).
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

import jsonschema
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("COLIBRI_BUILD", os.path.join(ROOT, "build"))
FIXTURES = os.environ.get("COLIBRI_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))


def bin_path(name):
    """Path of a built program by its installed name."""
    for sub in ("src/daemon", "src/client", "src/tools", "src/helper", "src/mcp", "src/tui", "tests"):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name + " not built in " + BUILD)


SCHEMAS = os.path.join(ROOT, "schemas")
SCHEMA_BASE = "https://colibri.invalid/schemas/"


class SchemaCheck:
    """Validators for schemas/, compiled once per schema file and cached.

    Every file under schemas/ is loaded into one store keyed by its $id, so
    the $refs between files (defs.json, runtime-inventory.schema.json)
    resolve without touching the network.
    """

    def __init__(self, root=SCHEMAS):
        self.root = root
        self.store = {}
        for d, _, files in os.walk(root):
            for f in files:
                if f.endswith(".json"):
                    with open(os.path.join(d, f)) as fp:
                        doc = json.load(fp)
                    self.store[doc.get("$id", SCHEMA_BASE + os.path.relpath(os.path.join(d, f), root))] = doc
        self.cache = {}

    def validator(self, rel):
        """The validator for schemas/REL[#fragment], or None when there is no such file."""
        if rel in self.cache:
            return self.cache[rel]
        path, _, frag = rel.partition("#")
        doc = self.store.get(SCHEMA_BASE + path)
        v = None
        if doc is not None:
            jsonschema.Draft202012Validator.check_schema(doc)
            schema = {"$ref": SCHEMA_BASE + rel} if frag else doc
            resolver = jsonschema.RefResolver(SCHEMA_BASE + path, doc, store=self.store)
            v = jsonschema.Draft202012Validator(schema, resolver=resolver)
        self.cache[rel] = v
        return v

    def check(self, rel, value, what):
        """Raise AssertionError when value does not match schemas/REL.

        REL may carry a fragment (envelope.json#/$defs/event_line).
        """
        v = self.validator(rel)
        if v is None:
            raise AssertionError("no schema schemas/%s for %s" % (rel, what))
        err = jsonschema.exceptions.best_match(v.iter_errors(value))
        if err is not None:
            path = "/".join(str(p) for p in err.absolute_path) or "(top)"
            raise AssertionError("%s does not match schemas/%s at %s: %s\n%s" % (
                what, rel, path, err.message, json.dumps(value)[:2000]))

    def check_event(self, msg):
        """An event line and its data (events/TOPIC.json)."""
        self.check("envelope.json#/$defs/event_line", msg, "event line")
        self.check("events/%s.json" % msg["event"], msg["data"], "event %s" % msg["event"])

    def check_reply(self, msg, cmd=None, args=None):
        """A reply envelope; with cmd, its result (and, when ok, the args sent)."""
        self.check("envelope.json", msg, "reply envelope")
        if cmd is None or not msg["ok"]:
            return
        self.check("commands/%s.result.json" % cmd, msg["result"], "result of %s" % cmd)
        if args is not None:
            self.check("commands/%s.args.json" % cmd, args, "args of %s (accepted)" % cmd)


SCHEMA_CHECK = SchemaCheck() if os.environ.get("COLIBRI_SCHEMA_CHECK", "1") != "0" else None


class Conn:
    """One protocol connection: call() sends a request and returns the reply."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # With a timeout the socket is non-blocking, and a Unix socket whose
        # listen backlog is momentarily full answers EAGAIN at once instead of
        # waiting (as a blocking connect would): retry within the timeout.
        deadline = time.time() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                if time.time() >= deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""
        self.next_id = 1
        self.events = []
        self.pending = {}  # request id -> (cmd, args), for the schema check

    def close(self):
        self.sock.close()

    def note_requests(self, data):
        """Remember the cmd and args of each request line in data (by id)."""
        for line in data.split(b"\n"):
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if isinstance(m, dict) and isinstance(m.get("cmd"), str) and \
                    isinstance(m.get("id"), (int, str)) and not isinstance(m.get("id"), bool):
                self.pending[m["id"]] = (m["cmd"], m.get("args", {}))

    def send_raw(self, data):
        self.note_requests(data)
        self.sock.sendall(data)

    def schema_check(self, m):
        """Check one message read from the daemon against schemas/."""
        if SCHEMA_CHECK is None or not isinstance(m, dict):
            return
        if "event" in m:
            SCHEMA_CHECK.check_event(m)
            return
        rid = m.get("id")
        cmd, args = self.pending.pop(rid, (None, None)) if isinstance(rid, (int, str)) else (None, None)
        SCHEMA_CHECK.check_reply(m, cmd, args if isinstance(args, dict) else None)

    def read_msg(self, timeout=None):
        """Next JSON line, or None on EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        m = json.loads(line)
        self.schema_check(m)
        return m

    def request(self, cmd, args=None, **kw):
        """Full reply envelope for cmd; events that arrive meanwhile are kept."""
        if args is None:
            args = kw
        rid = self.next_id
        self.next_id += 1
        msg = {"id": rid, "cmd": cmd}
        if args is not None:
            msg["args"] = args
        self.pending[rid] = (cmd, args if args is not None else {})
        self.sock.sendall((json.dumps(msg) + "\n").encode())
        while True:
            m = self.read_msg()
            if m is None:
                raise ConnectionError("daemon closed the connection")
            if "event" in m:
                self.events.append(m)
                continue
            if m.get("id") == rid:
                return m

    def call(self, cmd, args=None, **kw):
        """The result of cmd; raises CallError when the daemon refuses."""
        r = self.request(cmd, args, **kw)
        if not r["ok"]:
            raise CallError(r["error"]["code"], r["error"]["message"])
        return r["result"]

    def next_event(self, timeout=10.0):
        if self.events:
            return self.events.pop(0)
        m = self.read_msg(timeout)
        return m


class CallError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


STORE = os.environ.get("COLIBRI_STORE", "")

# Tests that look at the SQLite database file (or its filesystem), by node id prefix.
SQLITE_ONLY = {
    "test_foundation.py::test_list_filters_and_status_counts": "status's db_path names the SQLite file",
    "test_faults.py::test_sigkill_at_random_points": "checks the SQLite file after each kill",
    "test_faults.py::test_full_filesystem": "a tiny filesystem under the SQLite file",
    "test_faults.py::test_writes_resume_after_space": "a tiny filesystem under the SQLite file",
    "test_crash.py::test_sigterm_finishes_in_flight_and_closes_db": "opens the SQLite file",
    "test_crash.py::test_second_daemon_refused": "one daemon per SQLite file",
    "test_crash.py::test_stale_socket_removed_and_modes": "the SQLite file's mode",
    "test_crash.py::test_wal_is_checkpointed_under_load": "SQLite's WAL",
    "test_golden.py::test_golden_transcript[": "the transcripts name the SQLite file",
    "test_supervision_kill.py::test_restart_does_not_kill_a_reused_pid": "edits the SQLite file",
    "test_vault.py::test_runbook_chain": "assert_no_secrets scans the SQLite file",
    "test_vault.py::test_provision_on_demand": "assert_no_secrets scans the SQLite file",
    "test_vault.py::test_runbook_through_the_cli": "assert_no_secrets scans the SQLite file",
    "test_vault_refusals.py::": "assert_no_secrets scans the SQLite file",
}


def pytest_collection_modifyitems(config, items):
    if not STORE:
        return
    for item in items:
        for prefix, reason in SQLITE_ONLY.items():
            if item.nodeid.split("/")[-1].startswith(prefix):
                item.add_marker(pytest.mark.skip(reason="SQLite only: " + reason))


def pg_url(url, db):
    """url with its database name replaced by db."""
    if "{db}" in url:
        return url.replace("{db}", db)
    scheme, rest = url.split("://", 1)
    netloc, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    return "%s://%s/%s%s" % (scheme, netloc, urllib.parse.quote(db), "?" + query if query else "")


def pg_psql(url, sql, timeout=60):
    """Run sql with psql on url; its stdout (unaligned, tuples only)."""
    p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("psql: " + p.stderr)
    return p.stdout


_pg_dbs = {}


def pg_fresh_db(url, key=None):
    """The URL of a new, empty database on url's server (the same one again for the same key)."""
    if key is not None and key in _pg_dbs:
        return _pg_dbs[key]
    name = "colibri_%d_%d" % (os.getpid(), len(_pg_dbs) + 1)
    pg_psql(pg_url(url, "postgres"), 'CREATE DATABASE "%s"' % name)
    _pg_dbs[key if key is not None else name] = pg_url(url, name)
    return _pg_dbs[key if key is not None else name]


def store_args(state_dir, extra_args):
    """--store for a daemon on state_dir under COLIBRI_STORE (none if the test chose a store)."""
    if not STORE or "--store" in extra_args:
        return []
    return ["--store", pg_fresh_db(STORE, os.path.abspath(state_dir))]


class Daemon:
    """A colibri-daemon on state_dir.

    It runs with --allow-unconfined unless allow_unconfined=False: most tests
    spawn local agents without a jail, which a daemon refuses by default.
    """

    def __init__(self, state_dir, extra_args=(), env=None, allow_unconfined=True):
        self.state_dir = str(state_dir)
        self.socket = os.path.join(self.state_dir, "colibri.sock")
        self.extra_args = list(extra_args)
        if allow_unconfined and "--allow-unconfined" not in self.extra_args:
            self.extra_args.append("--allow-unconfined")
        self.env = dict(os.environ if env is None else env)
        self.proc = None
        self.conns = []
        self.log_path = os.path.join(self.state_dir + ".log")

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [bin_path("colibri-daemon"), "--state-dir", self.state_dir, "--foreground",
             "--log-level", "debug"] + self.extra_args + store_args(self.state_dir, self.extra_args),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                c = Conn(self.socket)
                c.call("status")
                c.close()
                return
            except (OSError, ConnectionError):
                time.sleep(0.02)
        raise TimeoutError("daemon did not come up:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def connect(self):
        c = Conn(self.socket)
        self.conns.append(c)
        return c

    def call(self, cmd, args=None, **kw):
        c = Conn(self.socket)
        try:
            return c.call(cmd, args, **kw)
        finally:
            c.close()

    def cli(self, *args, input=None, env=None, timeout=30):
        e = dict(self.env if env is None else env)
        e["COLIBRI_SOCKET"] = self.socket
        return subprocess.run([bin_path("colibri")] + [str(a) for a in args], input=input,
                              capture_output=True, text=True, env=e, timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.conns = []
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path / "state").start()
    yield d
    rc = d.stop()
    assert rc == 0, "daemon exited %s:\n%s" % (rc, d.read_log())


@pytest.fixture
def make_daemon(tmp_path):
    """Factory for tests that need options, restarts or several daemons."""
    made = []

    def make(name="state", extra_args=(), env=None, start=True, allow_unconfined=True):
        d = Daemon(tmp_path / name, extra_args, env, allow_unconfined)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in made:
        d.stop()
