"""Helpers shared by the supervision suites (test_supervision*.py, test_spawn*.py).

No tests live here.  `sup_daemon` starts a daemon whose PATH finds the built
colibri-test-agent; `wait_state` polls agent-status until an agent settles;
`Watch` subscribes to agent events and collects them; `pid_gone` tells whether
a process is truly gone (no /proc entry, or a zombie nobody will reap).
"""
import json
import os
import time

from conftest import BUILD, FIXTURES, CallError, bin_path

TOOLS = os.path.join(BUILD, "src", "tools")
PI_FIXTURES = os.path.join(FIXTURES, "pi")
TEST_AGENT = None
FINAL = ("done", "error", "interrupted")


def agent_bin():
    """Absolute path of the built colibri-test-agent."""
    global TEST_AGENT
    if TEST_AGENT is None:
        TEST_AGENT = bin_path("colibri-test-agent")
    return TEST_AGENT


def sup_env(extra=None):
    """The daemon's environment: the build's tools first on PATH."""
    env = dict(os.environ)
    env["PATH"] = TOOLS + ":" + env.get("PATH", "/usr/bin:/bin")
    env.pop("COLIBRI_AGENT_BINARY", None)
    env.update(extra or {})
    return env


def sup_daemon(make_daemon, name="state", extra_args=(), env=None):
    return make_daemon(name=name, extra_args=list(extra_args), env=sup_env(env))


def status(d, aid):
    return d.call("agent-status", id=aid)


def wait_state(d, aid, states=FINAL, timeout=15.0, live=None):
    """Poll agent-status until state is in states (and, if live is given, live matches)."""
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        st = status(d, aid)
        if st["state"] in states and (live is None or bool(st.get("live")) == live):
            return st
        time.sleep(0.02)
    raise AssertionError("agent %s did not reach %s: %s\n%s" % (aid, states, st, d.read_log()[-4000:]))


def wait_gone(d, aid, timeout=15.0):
    """Until the agent has a final state and no live process (kill-agent replies then too)."""
    return wait_state(d, aid, FINAL, timeout, live=False)


def session_lines(d, aid):
    """Every line of the agent's session log, through session-read paging."""
    out, since = [], 0
    while True:
        r = d.call("session-read", id=aid, since=since, limit=1000)
        out += r["lines"]
        if not r["lines"]:
            return out
        since = r["next"]


def fixture_lines(name):
    with open(os.path.join(PI_FIXTURES, name + ".jsonl")) as f:
        return f.read().splitlines()


def fixture_rc(name):
    with open(os.path.join(PI_FIXTURES, name + ".rc")) as f:
        return int(f.read().strip())


def replay_args(name, delay_ms=0):
    """test-agent args replaying a capture and ending as the capture's .rc says."""
    rc = fixture_rc(name)
    args = ["--replay", os.path.join(PI_FIXTURES, name + ".jsonl"), "--delay-ms", str(delay_ms)]
    if rc > 128:
        args += ["--signal", str(rc - 128)]
    else:
        args += ["--exit", str(rc)]
    return args


class Watch:
    """A subscriber connection collecting agent.* events."""

    def __init__(self, d, topics=("agent",)):
        self.conn = d.connect()
        self.seq = self.conn.call("subscribe", topics=list(topics))["seq"]
        self.seen = []

    def pump(self, timeout=0.2):
        while True:
            try:
                m = self.conn.next_event(timeout)
            except OSError:
                return
            if m is None:
                return
            if "event" in m:
                self.seen.append(m)

    def wait(self, pred, timeout=15.0):
        """The first event (so far or arriving) for which pred(event) holds."""
        deadline = time.time() + timeout
        i = 0
        while True:
            while i < len(self.seen):
                if pred(self.seen[i]):
                    return self.seen[i]
                i += 1
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("event not seen; got %s" % json.dumps(self.seen)[-3000:])
            try:
                m = self.conn.next_event(min(left, 0.5))
            except OSError:
                continue
            if m is not None and "event" in m:
                self.seen.append(m)

    def of(self, aid, event=None):
        return [e for e in self.seen if e["data"].get("id") == aid and (event is None or e["event"] == event)]

    def states(self, aid):
        """(from, to, reason, cause) of every agent.state event of aid, in order."""
        return [(e["data"]["from"], e["data"]["to"], e["data"]["reason"], e["data"]["cause"])
                for e in self.of(aid, "agent.state")]

    def wait_final(self, aid, timeout=15.0):
        return self.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == aid
                         and e["data"]["to"] in FINAL, timeout)

    def wait_exited(self, aid, timeout=15.0):
        return self.wait(lambda e: e["event"] == "agent.exited" and e["data"]["id"] == aid, timeout)


def pid_gone(pid):
    """True when pid no longer names a live process (absent, or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = st[st.rindex(")") + 2]
    return state in ("Z", "X")


def wait_pids_gone(pids, timeout=10.0):
    deadline = time.time() + timeout
    left = list(pids)
    while time.time() < deadline:
        left = [p for p in left if not pid_gone(p)]
        if not left:
            return []
        time.sleep(0.05)
    return left


def pids_with_marker(aid):
    """Live pids whose environment carries COLIBRI_AGENT_ID=aid (the agent's processes)."""
    needle = ("COLIBRI_AGENT_ID=%s" % aid).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and not pid_gone(int(name)):
            found.append(int(name))
    return found


def kill_pids(pids):
    """Clean up after a failed test: SIGKILL every pid given (ours, found by marker)."""
    for p in pids:
        try:
            os.kill(p, 9)
        except OSError:
            pass


def spawn(d, **args):
    return d.call("spawn-agent", args)


def spawn_error(d, **args):
    """The CallError a refused spawn raises (fails the test if it succeeds)."""
    try:
        r = d.call("spawn-agent", args)
    except CallError as e:
        return e
    raise AssertionError("spawn unexpectedly succeeded: %s" % r)
