"""Golden protocol transcripts: scripted sessions replayed against a real
daemon, the replies compared exactly (after normalisation) with
tests/integration/golden/*.jsonl.

A transcript is JSON Lines.  Each line is one of
  {"conn": C, "send": REQUEST}        a request line sent on connection C
  {"conn": C, "send_raw": TEXT}       bytes sent as they are (bad requests)
  {"conn": C, "recv": MESSAGE}        the next message read on C, normalised
  {"step": NAME, ...}                 an action of the harness (below)
Steps: "connect" opens connection C ("user": "nobody" makes it another
uid's, through a relay under setpriv), "close" closes it, "expect-eof" waits
for the daemon to close C, "quiet" checks that nothing more arrives on C for a moment,
"wait-agent" polls agent-status (unrecorded) until the agent settled.

Replay reads the file: it sends every send line, reads one message for every
recv line and compares.  The sessions are written as Python below; with
UPDATE_GOLDEN=1 the test runs the script instead and rewrites the file (it
reads a subscriber's messages until it is quiet).  Without it, the script's
requests and steps must still equal the file's, so a script changed without
an update fails.

Normalised (volatile) fields: timestamps (*_ms keys that are instants, "ts"),
pids, the host name, the daemon's version string, the inventory manifest,
the client count, generated agent ids, and the temporary and build
directories inside strings.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import BUILD, Conn, Daemon
from test_supervision_helpers import sup_env

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

INSTANT_KEYS = {"created_ms", "updated_ms", "claimed_ms", "completed_ms", "lease_expires_ms",
                "since_ms", "heartbeat_ms", "last_event_ms", "at_ms", "uptime_ms",
                "last_event_age_ms", "ts"}
PID_KEYS = {"pid", "pid_start"}
GENERATED_IDS = [(re.compile(r"^agent-[0-9a-f]+-[0-9]+$"), "<agent-id>"),
                 (re.compile(r"^(pi|zot|local)-[0-9a-f]{8}$"), r"<\1-id>")]


class Normaliser:
    def __init__(self, tmp, build=BUILD):
        self.subs = sorted([(os.path.realpath(tmp), "<tmp>"), (tmp, "<tmp>"),
                            (os.path.realpath(build), "<build>"), (build, "<build>")],
                           key=lambda p: -len(p[0]))

    def string(self, s):
        for prefix, ph in self.subs:
            s = s.replace(prefix, ph)
        for pat, ph in GENERATED_IDS:
            s = pat.sub(ph, s)
        return s

    def value(self, v, key=None):
        if isinstance(v, dict):
            if v.get("event") == "host.status":
                return dict(self.value({k: x for k, x in v.items() if k != "data"}),
                            data="<inventory>")
            return {k: self.member(k, x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            return self.string(v)
        return v

    def member(self, k, v):
        if v is None:
            return None
        if k in INSTANT_KEYS and isinstance(v, int):
            return "<ms>"
        if k in PID_KEYS and isinstance(v, int):
            return "<pid>"
        if k == "host" and isinstance(v, str):
            return "<host>"
        if k == "host_status":
            return "<inventory>"
        if k == "version" and isinstance(v, str):
            return "<version>"
        if k == "clients" and isinstance(v, int):
            return "<n>"
        return self.value(v, k)


# ---- the harness ----


class ProxyConn(Conn):
    """A connection made by another user: a relay process under setpriv."""

    RELAY = ("import os, socket, sys, threading\n"
             "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
             "def up():\n"
             "    for line in sys.stdin.buffer: s.sendall(line)\n"
             "    s.shutdown(socket.SHUT_WR)\n"
             "threading.Thread(target=up, daemon=True).start()\n"
             "while True:\n"
             "    b = s.recv(65536)\n"
             "    if not b: break\n"
             "    os.write(1, b)\n")

    def __init__(self, path, uid, gid):
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--groups=0", sys.executable,
             "-c", self.RELAY, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        self.next_id = 1
        self.events = []
        self.pending = {}

    def send_raw(self, data):
        self.note_requests(data)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_msg(self, timeout=None):
        while b"\n" not in self.buf:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        m = json.loads(line)
        self.schema_check(m)
        return m

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


class Session:
    """Runs a transcript's actions on a daemon; records them when out is a list."""

    def __init__(self, daemon, norm, out=None):
        self.d = daemon
        self.norm = norm
        self.out = out
        self.conns = {}
        self.ids = {}

    def close(self):
        for c in self.conns.values():
            try:
                c.close()
            except OSError:
                pass

    def conn(self, name):
        if name not in self.conns:
            self.connect(name)
        return self.conns[name]

    def record(self, line):
        if self.out is not None:
            self.out.append(line)

    # -- actions (the script calls these; replay calls them from the file) --

    def connect(self, name, user=None):
        if user == "nobody":
            import pwd
            pw = pwd.getpwnam("nobody")
            self.conns[name] = ProxyConn(self.d.socket, pw.pw_uid, pw.pw_gid)
        else:
            self.conns[name] = Conn(self.d.socket)
        self.record(dict({"step": "connect", "conn": name}, **({"user": user} if user else {})))

    def send(self, name, cmd, args=None):
        """Send a request (id: the connection's next) and, when recording, read its reply."""
        self.ids[name] = self.ids.get(name, 0) + 1
        msg = {"id": self.ids[name], "cmd": cmd}
        if args is not None:
            msg["args"] = args
        self.conn(name).send_raw((json.dumps(msg) + "\n").encode())
        self.record({"conn": name, "send": msg})
        if self.out is not None:
            self.recv(name)

    def send_raw(self, name, text, replies=1):
        self.conn(name).send_raw(text.encode())
        self.record({"conn": name, "send_raw": text})
        for _ in range(replies if self.out is not None else 0):
            self.recv(name)

    def recv(self, name, timeout=10.0):
        m = self.conn(name).read_msg(timeout)
        assert m is not None, "connection %s closed" % name
        got = self.norm.value(m)
        self.record({"conn": name, "recv": got})
        return got

    def unsolicited(self, name):
        """A message the daemon sends without a request (recording reads it; replay
        finds its recv line in the file)."""
        if self.out is not None:
            self.recv(name)

    def drain(self, name):
        """Recording: read until quiet.  (Replay reads the recorded count instead.)"""
        if self.out is None:
            return
        while True:
            try:
                self.recv(name, 0.5)
            except (TimeoutError, OSError):
                break
        self.quiet(name)

    def quiet(self, name):
        c = self.conn(name)
        try:
            m = c.read_msg(0.3)
        except (TimeoutError, OSError):
            m = "quiet"
        assert m == "quiet", "unexpected message on %s: %r" % (name, m)
        c.sock.settimeout(10.0)
        self.record({"step": "quiet", "conn": name})

    def close_conn(self, name):
        self.conns.pop(name).close()
        self.record({"step": "close", "conn": name})

    def expect_eof(self, name):
        c = self.conn(name)
        try:
            m = c.read_msg(5.0)
        except ConnectionResetError:
            m = None
        assert m is None, "connection %s still open: %r" % (name, m)
        self.record({"step": "expect-eof", "conn": name})

    def wait_agent(self, aid, states):
        deadline = time.time() + 15
        while True:
            st = self.d.call("agent-status", id=aid)
            if st["state"] in states and not st.get("live"):
                break
            assert time.time() < deadline, "agent %s did not settle: %r" % (aid, st)
            time.sleep(0.02)
        self.record({"step": "wait-agent", "id": aid, "states": states})


class DryRun:
    """The script's plan without a daemon: the send and step lines it would write."""

    def __init__(self):
        self.out = []
        self.ids = {}

    def connect(self, name, user=None):
        self.out.append(dict({"step": "connect", "conn": name}, **({"user": user} if user else {})))

    def send(self, name, cmd, args=None):
        self.ids[name] = self.ids.get(name, 0) + 1
        msg = {"id": self.ids[name], "cmd": cmd}
        if args is not None:
            msg["args"] = args
        self.out.append({"conn": name, "send": msg})

    def send_raw(self, name, text, replies=1):
        self.out.append({"conn": name, "send_raw": text})

    def unsolicited(self, name):
        pass

    def drain(self, name):
        self.quiet(name)

    def quiet(self, name):
        self.out.append({"step": "quiet", "conn": name})

    def close_conn(self, name):
        self.out.append({"step": "close", "conn": name})

    def expect_eof(self, name):
        self.out.append({"step": "expect-eof", "conn": name})

    def wait_agent(self, aid, states):
        self.out.append({"step": "wait-agent", "id": aid, "states": states})


def replay(s, lines):
    """Run a transcript file's lines on session s, comparing every recv."""
    for n, line in enumerate(lines, 1):
        where = "line %d: %s" % (n, json.dumps(line)[:300])
        if "step" in line:
            step = line["step"]
            if step == "connect":
                s.connect(line["conn"], line.get("user"))
            elif step == "quiet":
                s.quiet(line["conn"])
            elif step == "expect-eof":
                s.expect_eof(line["conn"])
            elif step == "close":
                s.close_conn(line["conn"])
            elif step == "wait-agent":
                s.wait_agent(line["id"], line["states"])
            else:
                raise AssertionError("unknown step at " + where)
        elif "send" in line:
            s.conn(line["conn"]).send_raw((json.dumps(line["send"]) + "\n").encode())
        elif "send_raw" in line:
            s.conn(line["conn"]).send_raw(line["send_raw"].encode())
        else:
            got = s.norm.value(s.conn(line["conn"]).read_msg(10.0))
            assert got == line["recv"], "%s\n  got:  %s" % (where, json.dumps(got))


# ---- the sessions ----


def script_session(t):
    """Tasks with dependencies, an external agent, every error a client can cause,
    a subscriber's replay and live events, a spawned test agent."""
    t.connect("main")
    t.send("main", "status")
    # the board: top needs base and mid, mid needs base
    t.send("main", "task-create", {"title": "base", "body": "lay the base"})
    t.send("main", "task-create", {"title": "mid", "priority": 5, "depends_on": [1]})
    t.send("main", "task-create", {"title": "top", "priority": 9, "depends_on": [1, 2]})
    t.send("main", "task-ready")
    t.send("main", "task-claim", {"agent": "w1", "id": 2})  # conflict: not ready
    t.send("main", "task-update", {"id": 1, "depends_on": [3]})  # conflict: a cycle
    # an external agent works through the queue
    t.send("main", "agent-register", {"id": "w1", "name": "worker", "provider": "test",
                                      "lease_ms": 60000})
    t.send("main", "agent-heartbeat", {"id": "w1", "activity": "reading"})
    t.send("main", "task-claim", {"agent": "w1", "lease_ms": 60000})
    t.send("main", "task-claim", {"agent": "w2", "id": 1})  # conflict: claimed
    t.send("main", "task-update", {"id": 1, "progress": "half way", "agent": "w1"})
    t.send("main", "task-complete", {"id": 1, "agent": "w2"})  # conflict: not the owner
    t.send("main", "task-complete", {"id": 1, "agent": "w1", "result": {"files": 2}})
    t.send("main", "task-ready")
    t.send("main", "task-claim", {"agent": "w1"})
    t.send("main", "task-release", {"id": 2, "agent": "w1"})
    t.send("main", "task-update", {"id": 3, "status": "cancelled"})
    t.send("main", "task-update", {"id": 3, "status": "open"})
    t.send("main", "task-list")
    t.send("main", "task-list", {"status": "done"})
    t.send("main", "task-show", {"id": 2})
    t.send("main", "agent-register", {"name": "anonymous"})  # a generated id
    t.send("main", "list-agents", {"kind": "registered"})
    # bad requests: every code a client can cause
    t.send_raw("main", "this is not json\n")
    t.send_raw("main", "[1, 2]\n")
    t.send_raw("main", '{"id": true, "cmd": "status"}\n')
    t.send_raw("main", '{"id": "no-cmd"}\n')
    t.send_raw("main", '{"id": "args", "cmd": "status", "args": 5}\n')
    t.send("main", "task-destroy", {"id": 1})
    t.send("main", "task-create", {})
    t.send("main", "task-create", {"title": "x", "tags": ["a"]})
    t.send("main", "task-show", {"id": "one"})
    t.send("main", "task-list", {"status": "finished"})
    t.send("main", "task-claim", {"agent": "w1", "lease_ms": 5})
    t.send("main", "task-show", {"id": 999})
    t.send("main", "task-create", {"title": "x", "depends_on": [999]})
    t.send("main", "agent-heartbeat", {"id": "ghost"})
    t.send("main", "agent-status", {"id": "ghost"})
    t.send("main", "subscribe", {"since": 100000})
    # a subscriber: the stored task events, then a live one
    t.connect("sub")
    t.send("sub", "subscribe", {"topics": ["task."], "since": 0})
    t.drain("sub")
    t.send("main", "task-create", {"title": "late"})
    t.drain("sub")
    t.send("sub", "unsubscribe")
    t.send("main", "task-create", {"title": "unseen"})
    t.quiet("sub")
    t.send("main", "events-read", {"since": 3, "limit": 3, "topics": ["agent."]})
    # over the client limit (main, sub, x1): one unavailable line, then closed
    t.connect("x1")
    t.connect("x2")
    t.unsolicited("x2")
    t.expect_eof("x2")
    t.close_conn("x2")
    t.close_conn("x1")
    # a spawned colibri-test-agent, text scenario
    t.send("main", "spawn-agent", {"provider": "local", "id": "golden-text",
                                   "args": ["--scenario", "text", "--delay-ms", "0"]})
    t.wait_agent("golden-text", ["done"])
    t.send("main", "agent-status", {"id": "golden-text"})
    t.send("main", "usage", {"agent": "golden-text"})
    t.send("main", "kill-agent", {"id": "golden-text"})
    t.send("main", "agent-heartbeat", {"id": "golden-text"})  # conflict: supervised
    t.send("main", "status")


def script_permission(t):
    """Privileged commands refused to a peer that is not uid 0, the daemon's uid or
    the admin group; open commands still answered."""
    t.connect("other", user="nobody")
    t.send("other", "status")
    t.send("other", "list-tenants")
    t.send("other", "register-tenant", {"tenant_id": "acme", "jail_root_path": "/nonexistent"})
    t.send("other", "spawn-agent", {"provider": "local", "id": "p1",
                                    "jail": {"path": "/nonexistent/jail"}})
    t.send("other", "task-create", {"title": "open to all"})
    t.connect("root")
    t.send("root", "list-tenants")


SESSIONS = {"session": script_session, "permission": script_permission}


def start_daemon(tmp):
    env = sup_env({"COLIBRI_SKILLS_DIRS": os.path.join(tmp, "skills")})
    env.pop("COLIBRI_PRICES", None)
    os.makedirs(os.path.join(tmp, "skills"))
    d = Daemon(os.path.join(tmp, "state"), extra_args=["--max-clients", "3"], env=env).start()
    # the first inventory run emits host.status: wait for it so event seqs are stable
    deadline = time.time() + 15
    while d.call("status")["host_status"] is None:
        assert time.time() < deadline, "no host inventory"
        time.sleep(0.02)
    return d


@pytest.fixture
def world_tmp():
    """A temporary directory another user can traverse (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="colibri-golden-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def needs(name):
    if name == "permission" and (os.geteuid() != 0 or shutil.which("setpriv") is None):
        pytest.skip("needs root and setpriv (a peer with another uid)")


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_golden_transcript(name, world_tmp):
    needs(name)
    path = os.path.join(GOLDEN, name + ".jsonl")
    d = start_daemon(world_tmp)
    try:
        if UPDATE:
            out = []
            s = Session(d, Normaliser(world_tmp), out)
            try:
                SESSIONS[name](s)
            finally:
                s.close()
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w") as f:
                for line in out:
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        with open(path) as f:
            lines = [json.loads(x) for x in f]
        s = Session(d, Normaliser(world_tmp))
        if not UPDATE:
            try:
                replay(s, lines)
            finally:
                s.close()
    finally:
        rc = d.stop()
    assert rc == 0, d.read_log()[-3000:]


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_golden_file_is_the_scripts(name):
    """The file's requests and steps are what the script does now."""
    plan = DryRun()
    SESSIONS[name](plan)
    with open(os.path.join(GOLDEN, name + ".jsonl")) as f:
        lines = [json.loads(x) for x in f]
    actions = [x for x in lines if "recv" not in x]
    assert actions == plan.out, "run UPDATE_GOLDEN=1 after changing the script"


def test_normaliser():
    n = Normaliser("/tmp/x", "/b")
    got = n.value({"id": "agent-18f3a-12", "created_ms": 17, "lease_ms": 60000, "pid": None,
                   "pid_start": 99, "cwd": "/tmp/x/state", "binary": "/b/src/tools/t",
                   "host": "h", "items": [{"ts": 5, "id": "local-0a1b2c3d"}]})
    assert got == {"id": "<agent-id>", "created_ms": "<ms>", "lease_ms": 60000, "pid": None,
                   "pid_start": "<pid>", "cwd": "<tmp>/state", "binary": "<build>/src/tools/t",
                   "host": "<host>", "items": [{"ts": "<ms>", "id": "<local-id>"}]}
