"""colibri-glasspane, the real dashboard, run inside a private tmux server
against a real daemon with test agents: states appear and change, the
detail view opens, K kills after a y, filter and sort, a resize to 80x24
redraws, a daemon restart is survived (unreachable, then the rows again,
with no event lost or doubled), NO_COLOR is honoured.

Each test starts its own tmux server (-L with a unique name) and kills it at
the end; the dashboard is the pane's process (exec), so it goes with it.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import bin_path
from test_supervision_helpers import sup_daemon, sup_env, wait_state

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

# An SGR sequence that sets a colour (foreground, background, 256/RGB), not
# merely resets it to the default (39/49).
COLOUR_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def has_colour(text):
    for m in COLOUR_SGR.finditer(text):
        for p in m.group(1).split(";"):
            if p.isdigit() and (30 <= int(p) <= 38 or 40 <= int(p) <= 48 or
                                90 <= int(p) <= 107):
                return True
    return False


class Pane:
    """A private tmux server running colibri-glasspane in its only pane."""

    def __init__(self, socket, x=100, y=30, env=None):
        self.name = "tui-test-%d-%d" % (os.getpid(), time.monotonic_ns() % 1000000000)
        prog = bin_path("colibri-glasspane")
        envs = " ".join("%s=%s" % kv for kv in (env or {}).items())
        cmd = "exec env %s %s --socket %s" % (envs, prog, socket)
        self.tmux("new-session", "-d", "-x", str(x), "-y", str(y), cmd)
        self.pid = int(self.tmux("list-panes", "-F", "#{pane_pid}").split()[0])

    def tmux(self, *args):
        r = subprocess.run(["tmux", "-L", self.name] + list(args), capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def screen(self, escapes=False):
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def keys(self, *keys):
        self.tmux("send-keys", *keys)

    def wait(self, pattern, timeout=15.0, absent=False):
        """The screen once pattern (a regex) is on it (or, with absent, gone from it)."""
        deadline = time.time() + timeout
        s = ""
        while time.time() < deadline:
            s = self.screen()
            if bool(re.search(pattern, s, re.M)) != absent:
                return s
            time.sleep(0.05)
        raise AssertionError("%r %s the screen:\n%s" % (pattern, "still on" if absent else "not on", s))

    def wait_until(self, pred, what, timeout=15.0):
        """The screen once pred(screen) holds."""
        deadline = time.time() + timeout
        s = ""
        while time.time() < deadline:
            s = self.screen()
            if pred(s):
                return s
            time.sleep(0.05)
        raise AssertionError("%s: not on the screen:\n%s" % (what, s))

    def row(self, aid):
        for line in self.screen().splitlines():
            if line.startswith(aid):
                return line
        return None

    def close(self):
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True, timeout=10)
        # tmux leaves its socket file behind; it is ours, by its unique name.
        sock = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), "tmux-%d" % os.getuid(), self.name)
        try:
            os.unlink(sock)
        except OSError:
            pass


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


@pytest.fixture
def panes():
    made = []

    def make(socket, **kw):
        p = Pane(socket, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def spawn(d, scenario, **extra):
    args = {"binary": "colibri-test-agent", "args": ["--scenario", scenario]}
    args.update(extra)
    return d.call("spawn-local", args)


def wait_last_seq(p, d):
    """The screen once its status line shows the daemon's last seq, re-read each time
    (the daemon logs events of its own, such as host.status, at any moment)."""
    def shows(screen):
        m = re.search(r"seq (\d+)\s+\? help", screen)
        return m is not None and int(m.group(1)) == d.call("status")["last_seq"]
    return p.wait_until(shows, "the daemon's last seq")


def row_re(aid, state):
    return r"^%s\s.*\b%s\b" % (re.escape(aid), state)


def test_states_appear_and_change(sup, panes):
    p = panes(sup.socket)
    p.wait(r"connected")
    hang = spawn(sup, "hang")["id"]
    text = spawn(sup, "text")["id"]
    p.wait(row_re(hang, "working"))
    s = p.wait(row_re(text, "done"))
    assert re.search(row_re(text, r"done\s+exited cleanly"), s, re.M), s
    # The text agent used tokens: the row shows them (after its refresh), and
    # the header counts agents.
    st = sup.call("agent-status", id=text)
    assert st["usage"]["total_tokens"] > 0
    s = p.wait(r"^%s\s.*\s%d\s+\S+\s+\$" % (re.escape(text), st["usage"]["total_tokens"]))
    assert "agents 2" in s.splitlines()[0]
    # The recent-events area shows the transitions.
    p.wait(r"agent\.state %s working->done exited cleanly" % re.escape(text))
    # The status line shows the daemon's last seq once everything arrived.
    wait_last_seq(p, sup)


def test_detail_opens_on_enter(sup, panes):
    text = spawn(sup, "text")["id"]
    wait_state(sup, text)
    p = panes(sup.socket)
    p.wait(row_re(text, "done"))
    p.keys("Enter")
    s = p.wait(r"-- session log %s" % re.escape(text))
    assert re.search(r"^ agent %s\s+done" % re.escape(text), s, re.M), s
    assert "reason: exited cleanly" in s
    assert re.search(r"recent events of %s" % re.escape(text), s), s
    assert '{"type":"agent_end"' in s or '{"type":"turn_end"' in s, s
    p.keys("Escape")
    p.wait(r"^ID\s+PROVIDER")


def test_detail_switches_to_stderr(sup, panes):
    aid = spawn(sup, "stderr")["id"]
    wait_state(sup, aid)
    err = sup.call("session-read", id=aid, stream="stderr")["lines"]
    assert err
    p = panes(sup.socket)
    p.wait(row_re(aid, "done"))
    p.keys("Enter")
    p.wait(r"-- session log %s" % re.escape(aid))
    p.keys("e")
    s = p.wait(r"-- stderr of %s" % re.escape(aid))
    assert err[-1][:40] in s, s
    p.keys("e")
    p.wait(r"-- session log %s" % re.escape(aid))


def test_kill_asks_then_kills(sup, panes):
    hang = spawn(sup, "hang")["id"]
    p = panes(sup.socket)
    p.wait(row_re(hang, "working"))
    p.keys("K")
    p.wait(r"kill agent %s\? \(y/n\)" % re.escape(hang))
    p.keys("n")
    p.wait(r"kill cancelled")
    assert sup.call("agent-status", id=hang)["state"] == "working"
    p.keys("K")
    p.wait(r"kill agent %s\? \(y/n\)" % re.escape(hang))
    p.keys("y")
    p.wait(row_re(hang, "error"))
    p.wait(r"killed %s" % re.escape(hang))
    st = wait_state(sup, hang)
    assert st["state"] == "error" and st["signal"] == 15, st


def test_filter_and_sort(sup, panes):
    hang = spawn(sup, "hang")["id"]
    text = spawn(sup, "text")["id"]
    wait_state(sup, text)
    p = panes(sup.socket)
    p.wait(row_re(text, "done"))
    p.wait(row_re(hang, "working"))
    p.keys("/", "d", "o", "n", "e", "Enter")
    s = p.wait(r"filter: done")
    assert p.row(text) is not None and p.row(hang) is None, s
    p.keys("Escape")
    p.wait(row_re(hang, "working"))
    p.keys("s")
    s = p.wait(r"sort: state")
    ids = [l.split()[0] for l in s.splitlines() if l.startswith("local-")]
    assert ids.index(hang) < ids.index(text), s  # working before done


def test_resize_redraws(sup, panes):
    hang = spawn(sup, "hang")["id"]
    p = panes(sup.socket, x=100, y=30)
    s = p.wait(row_re(hang, "working"))
    assert "TENANT/JAIL" in s
    p.tmux("resize-window", "-x", "80", "-y", "24")
    s = p.wait_until(lambda s: "TENANT/JAIL" not in s and re.search(row_re(hang, "working"), s, re.M),
                     "the 80x24 table")
    lines = s.split("\n")
    assert len([l for l in lines if l]) <= 24
    assert all(len(l) <= 80 for l in lines), s
    assert re.search(row_re(hang, "working"), s, re.M), s
    assert re.search(r"^ID\s+PROVIDER\s+STATE\s+ACTIVITY", s, re.M), s
    p.wait(r"seq \d+\s+\? help$")
    # And back: the dropped column returns.
    p.tmux("resize-window", "-x", "120", "-y", "30")
    p.wait(r"TENANT/JAIL")


def test_daemon_restart_is_survived(sup, panes):
    text = spawn(sup, "text")["id"]
    wait_state(sup, text)
    p = panes(sup.socket)
    p.wait(row_re(text, "done"))
    assert sup.stop() == 0
    p.wait(r"daemon unreachable")
    sup.start()
    p.wait(r"connected")
    p.wait(row_re(text, "done"))
    # Events after the restart arrive, each once: the shown seq is the daemon's.
    hang = spawn(sup, "hang")["id"]
    p.wait(row_re(hang, "working"))
    s = wait_last_seq(p, sup)
    spawned = [l for l in s.splitlines() if re.search(r"agent\.spawned %s$" % re.escape(hang), l)]
    assert len(spawned) <= 1, s


def test_unreachable_at_start_then_connects(make_daemon, panes):
    d = make_daemon(name="late", env=sup_env(), start=False)
    p = panes(d.socket)
    p.wait(r"daemon unreachable, retrying every second")
    d.start()
    p.wait(r"^connected  sort")
    hang = spawn(d, "hang")["id"]
    p.wait(row_re(hang, "working"))


def test_no_color_is_honoured(sup, panes):
    hang = spawn(sup, "hang")["id"]
    coloured = panes(sup.socket)
    coloured.wait(row_re(hang, "working"))
    assert has_colour(coloured.screen(escapes=True))
    plain = panes(sup.socket, env={"NO_COLOR": "1"})
    plain.wait(row_re(hang, "working"))
    s = plain.screen(escapes=True)
    assert not has_colour(s), repr(s[:2000])


def test_task_counts_follow_the_board(sup, panes):
    p = panes(sup.socket)
    p.wait(r"tasks open 0 ready 0 claimed 0 done 0 stale claims 0")
    a = sup.call("task-create", title="first")
    sup.call("task-create", title="second", depends_on=[a["id"]])
    p.wait(r"tasks open 2 ready 1 claimed 0 done 0")
    sup.call("task-claim", agent="someone", id=a["id"])
    p.wait(r"tasks open 1 ready 0 claimed 1 done 0")
    sup.call("task-complete", id=a["id"])
    p.wait(r"tasks open 1 ready 1 claimed 0 done 1")
    p.wait(r"task\.completed #%d" % a["id"])
