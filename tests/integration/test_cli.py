"""The colibri CLI against a real daemon.

Covers the task lifecycle through the CLI (checked with --json), the
readable tables and key: value blocks, every exit status (0; 1 with the
daemon's code on stderr; 2 for usage errors, found without any daemon; 69
with no daemon, naming the socket), socket selection (--socket over
COLIBRI_SOCKET over the OS default), per-verb --help, the spawn flags that
build the `jail` and `restart` objects, and `watch` printing events that
another client causes until it is terminated or the daemon goes away.
"""
import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import bin_path
from test_supervision_helpers import agent_bin, sup_daemon, wait_gone

VERBS = [
    "status", "task-create", "task-list", "task-show", "task-ready", "task-claim", "task-update",
    "task-complete", "task-release", "agent-register", "agent-heartbeat", "list-agents",
    "agent-status", "agent-result", "agent-resume", "agent-explain", "kill-agent", "spawn-agent", "spawn-local", "agent-prompt", "agent-abort",
    "session-read", "agent-forget", "gc", "register-tenant", "list-tenants", "delete-tenant", "provision-tenant", "usage",
    "prompt-assemble", "profiles", "host-status", "skills-list", "skill-show", "skills-reload", "events-read",
    "dispatch", "watch", "call",
]


def run(*args, socket=None, timeout=30):
    """Run colibri with COLIBRI_SOCKET set to socket (or unset when None)."""
    env = dict(os.environ)
    env.pop("COLIBRI_SOCKET", None)
    if socket is not None:
        env["COLIBRI_SOCKET"] = socket
    return subprocess.run([bin_path("colibri")] + [str(a) for a in args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def ok_json(daemon, *args):
    """The parsed --json output of a successful call (--json before the verb, so it
    cannot land after a spawn's "--")."""
    r = daemon.cli("--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def table(stdout):
    """Rows of a readable table as lists of cells (cells are separated by 2+ blanks)."""
    import re
    return [re.split(r"\s{2,}", line.rstrip()) for line in stdout.splitlines() if line.strip()]


def block(stdout):
    """A key: value block as a dict of strings."""
    out = {}
    for line in stdout.splitlines():
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


# ---- tasks ----

def test_task_lifecycle_json(daemon):
    t1 = ok_json(daemon, "task-create", "build the parser", "--priority", "5", "--body", "b1")
    assert t1["title"] == "build the parser" and t1["priority"] == 5 and t1["body"] == "b1"
    assert t1["status"] == "open"
    t2 = ok_json(daemon, "task-create", "test it", "--depends-on", str(t1["id"]))
    assert t2["depends_on"] == [t1["id"]]

    ready = ok_json(daemon, "task-ready")
    assert [t["id"] for t in ready["items"]] == [t1["id"]]
    listed = ok_json(daemon, "task-list")
    assert sorted(t["id"] for t in listed["items"]) == [t1["id"], t2["id"]]

    claimed = ok_json(daemon, "task-claim", "agent-a", "--lease-ms", "60000")
    assert claimed["id"] == t1["id"] and claimed["owner"] == "agent-a"
    assert claimed["status"] == "claimed"
    assert ok_json(daemon, "task-list", "--owner", "agent-a")["items"][0]["id"] == t1["id"]

    upd = ok_json(daemon, "task-update", t1["id"], "--progress", "halfway", "--agent", "agent-a")
    assert upd["progress"] == "halfway"
    done = ok_json(daemon, "task-complete", t1["id"], "--agent", "agent-a", "--result",
                   '{"files": 3}')
    assert done["status"] == "done" and done["result"] == {"files": 3}
    assert ok_json(daemon, "task-show", t1["id"])["status"] == "done"

    # Now t2 is ready; claim it by id, release it, complete it with a text result.
    c2 = ok_json(daemon, "task-claim", "agent-b", "--id", t2["id"])
    assert c2["owner"] == "agent-b"
    rel = ok_json(daemon, "task-release", t2["id"], "--agent", "agent-b")
    assert rel["status"] == "open" and rel["owner"] is None
    ok_json(daemon, "task-claim", "agent-b", "--id", t2["id"])
    d2 = ok_json(daemon, "task-complete", t2["id"], "--result", "all green")
    assert d2["result"] == "all green"
    assert ok_json(daemon, "task-list", "--status", "done", "--limit", "1")["items"][0]["status"] == "done"


def test_depends_on_repeatable_comma_and_clear(daemon):
    ids = [ok_json(daemon, "task-create", "t%d" % i)["id"] for i in range(3)]
    t = ok_json(daemon, "task-create", "after", "--depends-on", "%d,%d" % (ids[0], ids[1]),
                "--depends-on", str(ids[2]), "--priority", "-3")
    assert t["depends_on"] == ids and t["priority"] == -3
    t = ok_json(daemon, "task-update", t["id"], "--depends-on", "")
    assert t["depends_on"] == []
    t = ok_json(daemon, "task-update", t["id"], "--status", "cancelled", "--title=renamed")
    assert t["status"] == "cancelled" and t["title"] == "renamed"


def test_readable_task_output(daemon):
    daemon.cli("task-create", "low one", "--priority", "1")
    daemon.cli("task-create", "high one", "--priority", "9")
    r = daemon.cli("task-list")
    assert r.returncode == 0, r.stderr
    rows = table(r.stdout)
    assert rows[0] == ["ID", "STATUS", "PRI", "OWNER", "TITLE"]
    assert ["1", "open", "1", "-", "low one"] in rows
    assert ["2", "open", "9", "-", "high one"] in rows
    daemon.cli("task-claim", "worker-7")
    rows = table(daemon.cli("task-list", "--status", "claimed").stdout)
    assert rows[1:] == [["2", "claimed", "9", "worker-7", "high one"]]

    shown = block(daemon.cli("task-show", "2").stdout)
    assert shown["id"] == "2" and shown["title"] == "high one" and shown["owner"] == "worker-7"
    st = block(daemon.cli("status").stdout)
    assert st["protocol"] == "1" and st["counts.tasks.claimed"] == "1"


def test_readable_output_cleans_control_characters(daemon):
    daemon.call("task-create", title="red \x1b[31mtitle\x07")
    out = daemon.cli("task-list").stdout
    assert "\x1b" not in out and "\x07" not in out
    assert "red ?[31mtitle?" in out


def test_agents_and_events(daemon):
    a = ok_json(daemon, "agent-register", "helper-1", "--name", "Helper", "--provider", "pi",
                "--lease-ms", "60000")
    assert a["id"] == "helper-1" and a["name"] == "Helper" and a["kind"] == "registered"
    gen = ok_json(daemon, "agent-register")
    assert gen["id"] and gen["id"] != "helper-1"
    hb = ok_json(daemon, "agent-heartbeat", "helper-1", "--activity", "reading")
    assert hb["id"] == "helper-1"
    assert ok_json(daemon, "agent-status", "helper-1")["provider"] == "pi"

    rows = table(daemon.cli("list-agents").stdout)
    assert rows[0][:5] == ["ID", "KIND", "STATE", "PROVIDER", "PID"]
    row = [r for r in rows if r[0] == "helper-1"][0]
    assert row[1] == "registered" and row[3] == "pi"
    assert [x["id"] for x in ok_json(daemon, "list-agents", "--kind", "spawned")["items"]] == []

    daemon.cli("task-create", "evented")
    ev = ok_json(daemon, "events-read", "--topic", "task", "--since", "0")
    assert ev["items"] and all(e["event"].startswith("task") for e in ev["items"])
    rows = table(daemon.cli("events-read", "--topic", "task.created").stdout)
    assert rows[0] == ["SEQ", "TIME", "EVENT", "DATA"]
    assert rows[1][2] == "task.created" and "title=evented" in rows[1][3]


def test_runbook_tenant_flow(daemon, tmp_path):
    t = "proof0"
    root = tmp_path / "jails" / t / "root"
    root.mkdir(parents=True)
    reg = ok_json(daemon, "register-tenant", t, str(root), t)
    assert reg["tenant_id"] == t and reg["jail_root_path"] == str(root)
    assert reg["collection_id"] == t
    r = daemon.cli("list-tenants")
    assert r.returncode == 0, r.stderr
    rows = table(r.stdout)
    assert rows[0][:4] == ["TENANT", "STATUS", "COLLECTION", "JAIL_ROOT"]
    line = [x for x in r.stdout.splitlines() if t in x]
    assert len(line) == 1 and str(root) in line[0]
    # Without COLLECTION_ID the daemon defaults it to the tenant id.
    assert ok_json(daemon, "register-tenant", "other", str(root))["collection_id"] == "other"
    r = daemon.cli("delete-tenant", "other")
    assert r.returncode == 0, r.stderr
    assert [x["tenant_id"] for x in ok_json(daemon, "list-tenants")["items"]] == [t]


def test_usage_skills_and_call(daemon):
    u = ok_json(daemon, "usage")
    assert u["items"] == [] and "total" in u
    assert table(daemon.cli("usage").stdout)[-1][0] == "TOTAL"
    assert isinstance(ok_json(daemon, "skills-list")["items"], list)
    assert "count" in ok_json(daemon, "skills-reload")

    t = ok_json(daemon, "call", "task-create", '{"title": "raw", "priority": 2}')
    assert t["title"] == "raw" and t["priority"] == 2
    # call renders a known command with that verb's table.
    rows = table(daemon.cli("call", "task-list").stdout)
    assert rows[0][0] == "ID" and rows[1][-1] == "raw"


# ---- spawn ----

@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def test_spawn_local_flags_and_session_read(sup, tmp_path):
    a = ok_json(sup, "spawn-local", agent_bin(), "--id", "cli-1", "--session-id", "cli-sess",
                "--cwd", str(tmp_path), "--env", "CLI_TEST=1", "--max-restarts", "0",
                "--arg", "--scenario", "--arg", "text", "--", "--delay-ms", "0")
    assert a["id"] == "cli-1" and a["session_id"] == "cli-sess" and a["provider"] == "local"
    assert a["args"] == ["--scenario", "text", "--delay-ms", "0"]
    wait_gone(sup, "cli-1")
    r = sup.cli("session-read", "cli-sess", "--limit", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["cwd"] == str(tmp_path)
    rows = table(sup.cli("list-agents", "--kind", "spawned").stdout)
    assert rows[1][0] == "cli-1" and rows[1][2] == "done"


def test_spawn_agent_positional_binary_and_kill(sup):
    a = ok_json(sup, "spawn-agent", "local", agent_bin(), "--id", "cli-2", "-p", "hi",
                "--", "--scenario", "hang")
    assert a["id"] == "cli-2" and a["binary"] == agent_bin()
    k = ok_json(sup, "kill-agent", "cli-2", "--grace-ms", "200")
    assert k["id"] == "cli-2" and not k.get("live")


def test_spawn_builds_jail_and_restart_objects(sup):
    # The runbook's invocation; the jail root does not exist, so the daemon names it in its refusal.
    r = sup.cli("spawn-agent", "local", agent_bin(), "--jail-name", "proof0", "--jail-root",
                "/nonexistent/bastille/proof0/root", "--session-id", "proof0-proof")
    assert r.returncode == 1
    assert r.stderr.startswith("colibri: ") and "/nonexistent/bastille/proof0/root" in r.stderr
    r = sup.cli("spawn-local", agent_bin(), "--max-restarts", "5000")
    assert r.returncode == 1 and "invalid_argument" in r.stderr
    assert "restart.max_restarts" in r.stderr


# ---- exit statuses ----

def test_refused_exit_1(daemon):
    r = daemon.cli("task-show", "999")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("colibri: not_found: ")
    r = daemon.cli("task-claim", "nobody")
    assert r.returncode == 1 and r.stderr.startswith("colibri: not_found: ")
    r = daemon.cli("call", "no-such-command")
    assert r.returncode == 1 and r.stderr.startswith("colibri: unknown_command: ")
    t = ok_json(daemon, "task-create", "x")
    r = daemon.cli("task-complete", t["id"])
    assert r.returncode == 1 and r.stderr.startswith("colibri: conflict: ")


USAGE_ERRORS = [
    [],
    ["bogus-verb"],
    ["--frobnicate", "status"],
    ["--socket"],
    ["task-show"],
    ["task-show", "x"],
    ["task-show", "1", "2"],
    ["task-show", "1x"],
    ["task-show", " 1"],
    ["task-create", "t", "--priority", "x"],
    ["task-create", "t", "--priority"],
    ["task-create", "t", "--priority", ""],
    ["task-create", "t", "--depends-on", "1,x"],
    ["task-create", "t", "--depends-on", "1,,2"],
    ["task-claim", "a", "--lease-ms", "99999999999999999999"],
    ["task-list", "--nope"],
    ["task-list", "--ready=yes"],
    ["status", "extra"],
    ["register-tenant", "only-one"],
    ["spawn-agent"],
    ["spawn-agent", "local", "--env", "NOEQUALS"],
    ["spawn-agent", "local", "--env", "=v"],
    ["spawn-agent", "local", "--max-restarts", "1.5"],
    ["spawn-local", "/bin/true", "-x"],
    ["call"],
    ["call", "status", "[1]"],
    ["call", "status", "not json"],
    ["watch", "--since", "soon"],
    ["help", "bogus-verb"],
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=lambda a: " ".join(a) or "(none)")
def test_usage_error_exit_2_without_daemon(tmp_path, argv):
    # The socket does not exist: had the CLI tried to connect, it would exit 69.
    r = run(*argv, socket=str(tmp_path / "absent.sock"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("colibri: ") and r.stdout == ""


def test_unreachable_exit_69(tmp_path):
    sock = str(tmp_path / "nobody-home.sock")
    r = run("status", socket=sock)
    assert r.returncode == 69 and sock in r.stderr and r.stdout == ""
    other = str(tmp_path / "other.sock")
    r = run("--socket", other, "task-list")
    assert r.returncode == 69 and other in r.stderr
    r = run("watch", socket=sock)
    assert r.returncode == 69 and sock in r.stderr


def test_socket_precedence(daemon, tmp_path):
    bogus = str(tmp_path / "bogus.sock")
    # --socket wins over COLIBRI_SOCKET, before or after the verb.
    r = run("--socket", daemon.socket, "status", "--json", socket=bogus)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["socket"] == daemon.socket
    assert run("status", "--socket=" + daemon.socket, socket=bogus).returncode == 0
    r = run("--socket", bogus, "status", socket=daemon.socket)
    assert r.returncode == 69 and bogus in r.stderr
    # COLIBRI_SOCKET alone.
    assert run("status", socket=daemon.socket).returncode == 0
    # Neither: the OS default.
    default = "/var/run/colibri/colibri.sock" if os.uname().sysname == "FreeBSD" \
        else "/run/colibri/colibri.sock"
    if os.path.exists(default):
        pytest.skip("a daemon socket exists at " + default)
    r = run("status")
    assert r.returncode == 69 and default in r.stderr


# ---- help ----

def test_help_lists_every_verb():
    r = run("--help")
    assert r.returncode == 0 and r.stderr == ""
    section = r.stdout.split("verbs:\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split()[0] for line in section.splitlines()]
    assert listed == VERBS
    assert run("help").stdout == r.stdout


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help(verb, tmp_path):
    r = run(verb, "--help", socket=str(tmp_path / "absent.sock"))
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: colibri [--socket PATH] " + verb)
    assert run(verb, "-h").stdout == r.stdout
    assert run("help", verb).stdout == r.stdout


def test_verb_help_shows_flags():
    out = run("spawn-agent", "--help").stdout
    for flag in ("--jail-name", "--jail-root", "--session-id", "--env NAME=VALUE", "-p, --prompt",
                 "--max-restarts N", "[-- ARG...]"):
        assert flag in out
    assert "[PROVIDER] [BINARY]" in out
    assert "TENANT_ID JAIL_ROOT_PATH [COLLECTION_ID]" in run("register-tenant", "--help").stdout


# ---- watch ----

class Watcher:
    """colibri watch as a subprocess whose stdout lines are read with a deadline."""

    def __init__(self, daemon, *args):
        env = dict(os.environ)
        env["COLIBRI_SOCKET"] = daemon.socket
        self.proc = subprocess.Popen([bin_path("colibri"), "watch"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.buf = b""

    def line(self, timeout=10.0):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no line from watch; have %r" % self.buf)
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("watch ended: %r" % self.proc.stderr.read())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def wait_subscribed(daemon, clients_before):
    """Until the watcher's connection shows in status (it subscribes right after)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        if daemon.call("status")["clients"] > clients_before:
            return
        time.sleep(0.02)
    raise TimeoutError("watch did not connect")


def test_watch_prints_events_of_another_client(daemon):
    base = daemon.call("status")["clients"]
    w = Watcher(daemon, "--topic", "task")
    try:
        wait_subscribed(daemon, base)
        # Without --since only live events come: probe until the subscription is active.
        deadline = time.time() + 10
        while True:
            daemon.call("task-create", title="probe")
            try:
                assert "title=probe" in w.line(timeout=0.2)
                break
            except TimeoutError:
                assert time.time() < deadline
        daemon.call("agent-register", id="not-a-task-event")
        daemon.call("task-create", title="seen by watch")
        line = w.line()
        while "title=probe" in line:
            line = w.line()
        assert " task.created " in line and "title=\"seen by watch\"" in line
        daemon.call("task-claim", agent="x1")
        assert " task.claimed " in w.line()
    finally:
        w.stop()
    assert w.proc.returncode == -signal.SIGTERM


def test_watch_json_and_since_replay(daemon):
    daemon.call("task-create", title="before")
    w = Watcher(daemon, "--json", "--since", "0", "--topic", "task.created", "--topic",
                "task.completed")
    try:
        ev = json.loads(w.line())
        assert ev["event"] == "task.created" and ev["data"]["title"] == "before"
        daemon.call("task-create", title="after")
        ev2 = json.loads(w.line())
        assert ev2["event"] == "task.created" and ev2["data"]["title"] == "after"
        assert ev2["seq"] > ev["seq"]
    finally:
        w.stop()


def test_watch_exits_69_when_the_daemon_goes_away(make_daemon):
    d = make_daemon()
    base = d.call("status")["clients"]
    w = Watcher(d)
    try:
        wait_subscribed(d, base)
        assert d.stop() == 0
        assert w.proc.wait(10) == 69
        assert d.socket in w.proc.stderr.read().decode()
    finally:
        w.stop()
