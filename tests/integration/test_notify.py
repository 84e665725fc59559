"""Notifications (issue 18): CONFIG_DIR/notify.json and its command hook.

The daemon runs the operator's hook, one at a time, with one notification as
JSON on stdin, on the transitions an operator acts on: an agent blocked
needing input (agent.blocked), parked by a quota (agent.parked), a task
failed for good (task.failed), the ready queue drained (queue.drained).
These tests use a hook that appends its stdin to a file, and check: each
transition notifies once (deduplicated per agent), a slow hook is killed at
timeout_ms and the next one still runs, a flood keeps the daemon answering
and the queue bounded with the dropped count told, the hook's environment
holds none of the daemon's secrets, the file is reloaded on SIGHUP (a bad
one keeps the old policy) and a bad file refuses the start.

Notifications go out in order (one FIFO, one hook at a time), so a test
waits for a later one (a sentinel: a task created and claimed, which drains
the queue) to know that every earlier one has gone out.
"""
import json
import os
import signal
import time

import pytest

from conftest import Daemon
from test_supervision_helpers import agent_bin, sup_daemon, wait_gone

KINDS = ["agent.blocked", "agent.parked", "task.failed", "queue.drained"]


def write_hook(tmp_path, body, name="hook.sh", mode=0o755):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    os.chmod(p, mode)
    return str(p)


def write_policy(conf, policy, mode=0o644):
    p = conf / "notify.json"
    p.write_text(policy if isinstance(policy, str) else json.dumps(policy))
    os.chmod(p, mode)
    return p


def make_conf(tmp_path, policy=None, hook_body=None):
    """A config dir with notify.json (policy, its command the appending hook by default)."""
    out = tmp_path / "notes.jsonl"
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    hook = write_hook(tmp_path, hook_body if hook_body is not None else 'cat >> "%s"\n' % out)
    pol = dict(policy or {})
    pol.setdefault("command", [hook])
    write_policy(conf, pol)
    return conf, out, hook


def notes(out):
    if not os.path.exists(out):
        return []
    with open(out) as f:
        return [json.loads(l) for l in f if l.strip()]


def wait_notes(out, pred, timeout=30.0, d=None):
    deadline = time.time() + timeout
    ns = []
    while time.time() < deadline:
        ns = notes(out)
        if pred(ns):
            return ns
        time.sleep(0.05)
    raise AssertionError("notifications never got there: %s\n%s" % (
        json.dumps(ns)[-3000:], d.read_log()[-3000:] if d else ""))


def drain(d, title="sentinel", conn=None):
    """Create a task and claim it: the queue goes non-empty then empty.  Its id."""
    call = conn.call if conn is not None else d.call
    tid = call("task-create", title=title)["id"]
    call("task-claim", agent="claimer", id=tid)
    return tid


def drained_by(ns, tid):
    return [n for n in ns if n["kind"] == "queue.drained" and n["event"]["data"]["id"] == tid]


def sentinel(d, out):
    """Drain once more and wait for that notification: every earlier one has gone out."""
    tid = drain(d)
    return wait_notes(out, lambda ns: drained_by(ns, tid), d=d)


def of_kind(ns, kind):
    return [n for n in ns if n["kind"] == kind]


def check_note(n, kind):
    assert n["kind"] == kind and isinstance(n["at_ms"], int) and n["host"]
    assert set(n) <= {"kind", "at_ms", "host", "agent", "task", "title", "reason", "event",
                      "dropped"}, n
    ev = n["event"]
    assert set(ev) == {"event", "seq", "ts", "data"} and isinstance(ev["seq"], int)


def wait_task(d, tid, pred, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = d.call("task-show", id=tid)
        if pred(t):
            return t
        time.sleep(0.05)
    raise AssertionError("task %s: %s" % (tid, t))


def test_task_failed_for_good_notifies_once(make_daemon, tmp_path):
    conf, out, _ = make_conf(tmp_path)
    d = sup_daemon(make_daemon, extra_args=["--config-dir", str(conf)])
    tid = d.call("task-create", title="Doomed")["id"]
    # A failed run that puts the task back is no news; the second fails it for good.
    a = d.call("spawn-local", {"binary": "/bin/sh", "args": ["-c", "exit 3"], "task": tid,
                               "max_attempts": 2})
    wait_task(d, tid, lambda t: t["status"] == "open")
    wait_gone(d, a["id"])
    a = d.call("spawn-local", {"binary": "/bin/sh", "args": ["-c", "exit 3"], "task": tid})
    wait_task(d, tid, lambda t: t["status"] == "failed")
    wait_gone(d, a["id"])
    ns = sentinel(d, out)
    failed = of_kind(ns, "task.failed")
    assert len(failed) == 1, ns
    n = failed[0]
    check_note(n, "task.failed")
    assert n["task"] == tid and n["title"] == "Doomed" and "3" in n["reason"]
    assert n["event"]["event"] == "task.failed" and n["event"]["data"]["status"] == "failed"
    # Each spawn claimed the only ready task: two drains, then the sentinel's.
    assert len(of_kind(ns, "queue.drained")) == 3, ns
    for x in ns:
        check_note(x, x["kind"])


UI_REPLAY = [
    {"type": "agent_start"},
    {"type": "extension_ui_request", "id": "u1", "method": "confirm", "title": "Delete A?"},
    {"type": "extension_ui_request", "id": "u2", "method": "confirm", "title": "Delete B?"},
    {"type": "tool_execution_start", "toolName": "bash"},
    {"type": "extension_ui_request", "id": "u3", "method": "confirm", "title": "Delete C?"},
]


def test_agent_blocked_on_ui_notifies_once_per_block(make_daemon, tmp_path):
    conf, out, _ = make_conf(tmp_path, {"on": ["agent.blocked", "queue.drained"]})
    d = sup_daemon(make_daemon, extra_args=["--config-dir", str(conf)])
    fx = tmp_path / "ui.jsonl"
    fx.write_text("".join(json.dumps(l) + "\n" for l in UI_REPLAY))
    tid = d.call("task-create", title="Needs input")["id"]
    a = d.call("spawn-local", {"binary": agent_bin(), "task": tid, "max_attempts": 1,
                               "args": ["--replay", str(fx), "--delay-ms", "100"]})
    wait_gone(d, a["id"])
    ns = sentinel(d, out)
    blocked = of_kind(ns, "agent.blocked")
    # Blocked on A; B while still blocked is no news; working, then blocked on C is.
    assert len(blocked) == 2, json.dumps(ns)
    for n, title in zip(blocked, ("Delete A?", "Delete C?")):
        check_note(n, "agent.blocked")
        assert n["agent"] == a["id"] and n["task"] == tid and title in n["reason"]
        assert n["reason"].startswith("waiting for extension UI")
        assert n["event"]["event"] == "agent.state" and n["event"]["data"]["to"] == "blocked"
    assert blocked[0]["event"]["seq"] < blocked[1]["event"]["seq"]
    # The transitions themselves are there: three blocks in the log, two notifications.
    states = [e["data"] for e in d.call("events-read", limit=10000)["items"]
              if e["event"] == "agent.state" and e["data"]["id"] == a["id"]]
    assert sum(1 for s in states if s["to"] == "blocked") == 3, states


def test_queue_drained_when_the_last_ready_task_goes(make_daemon, tmp_path):
    conf, out, _ = make_conf(tmp_path, {"on": ["queue.drained"]})
    d = make_daemon(extra_args=["--config-dir", str(conf)])
    t1 = d.call("task-create", title="one")["id"]
    t2 = d.call("task-create", title="two")["id"]
    d.call("task-claim", agent="w", id=t1)       # one left: no news
    d.call("task-claim", agent="w", id=t2)       # the last one: drained
    d.call("task-complete", agent="w", id=t2)    # still empty: no news
    ns = sentinel(d, out)
    assert len(ns) == 2, ns
    check_note(ns[0], "queue.drained")
    assert ns[0]["event"]["event"] == "task.claimed" and ns[0]["event"]["data"]["id"] == t2
    assert ns[0]["reason"] and "agent" not in ns[0]
    # A task whose dependency completes becomes ready; claiming it drains again.
    t3 = d.call("task-create", title="three")["id"]
    t4 = d.call("task-create", title="after three", depends_on=[t3])["id"]
    d.call("task-claim", agent="w", id=t3)       # t4 still waits on t3: empty
    d.call("task-complete", agent="w", id=t3)    # t4 ready
    d.call("task-claim", agent="w", id=t4)       # drained
    ns = wait_notes(out, lambda ns: drained_by(ns, t4), d=d)
    assert [n["event"]["data"]["id"] for n in ns][2:] == [t3, t4], ns


def test_slow_hook_is_killed_and_the_next_runs(make_daemon, tmp_path):
    mark, pidf = tmp_path / "mark", tmp_path / "sleep.pid"
    out = tmp_path / "notes.jsonl"
    body = ('cat >> "%s"\nif [ ! -e "%s" ]; then : > "%s"; echo "i am slow" >&2; '
            'sleep 30 & echo $! > "%s"; wait; fi\necho "second run, bad news" >&2\nexit 7\n'
            % (out, mark, mark, pidf))
    conf, out, _ = make_conf(tmp_path, {"on": ["queue.drained"], "timeout_ms": 1000}, hook_body=body)
    d = make_daemon(extra_args=["--config-dir", str(conf)])
    t0 = time.time()
    drain(d)
    tid = drain(d)
    wait_notes(out, lambda ns: drained_by(ns, tid), timeout=20, d=d)
    assert time.time() - t0 < 20
    pid = int(pidf.read_text())
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the hook's child %d outlived the timeout" % pid)
    # Its outcome is logged: the kill with the start of its stderr, then the next one's exit
    # (the second hook wrote its notification at its start: its exit may come a moment later).
    deadline = time.time() + 10
    while "hook for queue.drained exited 7 after" not in d.read_log():
        assert time.time() < deadline, d.read_log()[-2000:]
        time.sleep(0.05)
    log = d.read_log()
    assert "killed after" in log and "(timeout_ms): i am slow" in log, log[-2000:]
    assert "second run, bad news" in log


def test_a_hook_that_cannot_start_is_counted_as_dropped(make_daemon, tmp_path):
    conf, out, hook = make_conf(tmp_path, {"on": ["queue.drained"]})
    d = make_daemon(extra_args=["--config-dir", str(conf)])
    os.rename(hook, hook + ".away")
    drain(d)
    deadline = time.time() + 10
    while "hook for queue.drained not started" not in d.read_log():
        assert time.time() < deadline, d.read_log()[-2000:]
        time.sleep(0.05)
    os.rename(hook + ".away", hook)
    ns = sentinel(d, out)
    assert len(ns) == 1 and ns[0]["dropped"] == 1, ns


def test_flood_keeps_the_daemon_answering_and_the_queue_bounded(make_daemon, tmp_path):
    out, busy, overlap = tmp_path / "notes.jsonl", tmp_path / "busy", tmp_path / "overlap"
    body = ('[ -e "%s" ] && : > "%s"\n: > "%s"\ncat >> "%s"\nsleep 0.05\nrm -f "%s"\n'
            % (busy, overlap, busy, out, busy))
    conf, out, _ = make_conf(tmp_path, {"on": ["queue.drained"], "max_queue": 5}, hook_body=body)
    d = make_daemon(extra_args=["--config-dir", str(conf)])
    c = d.connect()
    worst = 0.0
    for i in range(500):
        drain(d, "flood %d" % i, conn=c)
        if i % 20 == 0:
            t = time.time()
            c.call("status")
            worst = max(worst, time.time() - t)
    assert worst < 1.0, worst

    def told(ns):
        return len(ns) + sum(n.get("dropped", 0) for n in ns)

    ns = wait_notes(out, lambda ns: told(ns) >= 500, timeout=60, d=d)
    time.sleep(0.5)
    ns = notes(out)
    assert told(ns) == 500, (len(ns), told(ns))
    assert any(n.get("dropped", 0) > 0 for n in ns)
    assert len(ns) < 500
    assert not overlap.exists(), "two hooks ran at once"
    # The queue kept the newest: the last drain is the last notification.
    assert ns[-1]["event"]["data"]["title"] == "flood 499"
    assert "the queue is full (5)" in d.read_log()


def test_hook_environment_has_no_daemon_secret(make_daemon, tmp_path):
    envout, out = tmp_path / "env.txt", tmp_path / "notes.jsonl"
    conf, out, _ = make_conf(tmp_path, {"on": ["queue.drained"]},
                         hook_body='env > "%s"\ncat >> "%s"\n' % (envout, out))
    secret = "s3cr3t-%d" % os.getpid()
    d = make_daemon(extra_args=["--config-dir", str(conf)],
                    env=dict(os.environ, BW_SESSION=secret, BW_PASSWORD=secret,
                             COLIBRI_SECRET_TOKEN=secret, API_TOKEN=secret))
    sentinel(d, out)
    env = dict(l.split("=", 1) for l in envout.read_text().splitlines() if "=" in l)
    assert secret not in envout.read_text()
    for k in ("BW_SESSION", "BW_PASSWORD", "COLIBRI_SECRET_TOKEN", "API_TOKEN"):
        assert k not in env
    assert env["COLIBRI_NOTIFY_KIND"] == "queue.drained"
    assert "PATH" in env
    assert secret not in d.read_log()


def hup_and_wait(d, text):
    before = d.read_log().count(text)
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while d.read_log().count(text) <= before:
        assert time.time() < deadline, "no %r after SIGHUP:\n%s" % (text, d.read_log()[-2000:])
        time.sleep(0.05)


def test_reloaded_on_sighup(make_daemon, tmp_path):
    conf, out, hook = make_conf(tmp_path, {"on": ["task.failed"]})
    d = make_daemon(extra_args=["--config-dir", str(conf)])
    t1 = drain(d)                                            # not wanted: no news
    write_policy(conf, {"command": [hook], "on": ["queue.drained"]})
    hup_and_wait(d, "notifications: reloaded")
    t2 = drain(d)
    wait_notes(out, lambda ns: drained_by(ns, t2), d=d)
    write_policy(conf, {"command": [hook], "colour": "red"})  # bad: the old policy stays
    hup_and_wait(d, "not reloaded, the old policy stays")
    assert '"colour"' in d.read_log()
    t3 = drain(d)
    wait_notes(out, lambda ns: drained_by(ns, t3), d=d)
    os.unlink(conf / "notify.json")                          # gone: notifications off
    hup_and_wait(d, "notifications: reloaded: no")
    t4 = drain(d)
    write_policy(conf, {"command": [hook], "on": ["queue.drained"], "dedup_ms": 600000})
    hup_and_wait(d, "notifications: reloaded from")
    t5 = drain(d)
    t6 = drain(d)                                            # within dedup_ms: no news
    wait_notes(out, lambda ns: drained_by(ns, t5), d=d)
    time.sleep(1.5)
    assert [n["event"]["data"]["id"] for n in notes(out)] == [t2, t3, t5], (t1, t4, t6)


def start_fail(tmp_path, conf, name):
    d = Daemon(tmp_path / name, ["--config-dir", str(conf)])
    d.start(wait=False)
    try:
        rc = d.proc.wait(20)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d.log.close()
    return rc, d.read_log()


def test_bad_file_refuses_start(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    hook = write_hook(tmp_path, "cat >/dev/null\n")
    loose = write_hook(tmp_path, "cat >/dev/null\n", "loose.sh", 0o777)
    noexec = write_hook(tmp_path, "cat >/dev/null\n", "noexec.sh", 0o644)
    cases = [
        ('{"command": ["%s"], "command": ["%s"]}' % (hook, hook), "duplicate"),
        ("{", "notify.json:1"),
        ("[]", "one JSON object"),
        ({"on": ["task.failed"]}, '"command" is missing'),
        ({"command": []}, '"command" must be an array'),
        ({"command": "/bin/true"}, '"command" must be an array'),
        ({"command": ["hook.sh"]}, "absolute path"),
        ({"command": [hook, 5]}, '"command"[1]'),
        ({"command": ["/nonexistent/hook"]}, "No such file"),
        ({"command": [str(tmp_path)]}, "not a regular file"),
        ({"command": [noexec]}, "not executable"),
        ({"command": [loose]}, "group or others may write it"),
        ({"command": [hook], "bogus": 1}, 'unknown key "bogus"'),
        ({"command": [hook], "on": []}, '"on" must be a non-empty array'),
        ({"command": [hook], "on": ["agent.exploded"]}, '"on"[0] is no kind'),
        ({"command": [hook], "timeout_ms": 0}, '"timeout_ms" must be an integer'),
        ({"command": [hook], "max_queue": "10"}, '"max_queue" must be an integer'),
        ({"command": [hook], "max_queue": 1001}, '"max_queue" must be an integer from 1 to 1000'),
        ({"command": [hook], "dedup_ms": -1}, '"dedup_ms" must be an integer'),
    ]
    for i, (pol, msg) in enumerate(cases):
        write_policy(conf, pol)
        rc, log = start_fail(tmp_path, conf, "bad%d" % i)
        assert rc == 1 and msg in log, (pol, log[-1500:])
    # The file itself: writable by others, or someone else's -- refused.
    p = write_policy(conf, {"command": [hook]}, mode=0o666)
    rc, log = start_fail(tmp_path, conf, "mode")
    assert rc == 1 and "group or others may write it" in log, log[-1500:]
    os.chmod(p, 0o644)
    os.chown(p, 65534, -1)
    rc, log = start_fail(tmp_path, conf, "owner")
    assert rc == 1 and "owned by uid 65534" in log, log[-1500:]
    # A hook owned by someone else is refused too: it would run as the daemon.
    os.chown(p, 0, -1)
    os.chown(hook, 65534, -1)
    rc, log = start_fail(tmp_path, conf, "hookowner")
    assert rc == 1 and "owned by uid 65534" in log and "not root's" in log, log[-1500:]


def test_no_file_no_notifications(make_daemon, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    d = make_daemon(extra_args=["--config-dir", str(conf)])
    drain(d)
    assert "notifications: loaded: no" in d.read_log()
    assert "hook for" not in d.read_log()


def test_agent_parked_by_quota_notifies_once(make_daemon, tmp_path):
    """A run refused by a provider's 429 parks (quota parking): one agent.parked
    notification naming the agent, its task and the reset."""
    conf, out, _ = make_conf(tmp_path, {"on": ["agent.parked", "queue.drained"]})
    qf = str(tmp_path / "runs")
    d = sup_daemon(make_daemon, extra_args=["--config-dir", str(conf)],
                   env={"TEST_AGENT_QUOTA_FILE": qf})
    tid = d.call("task-create", title="Rate limited")["id"]
    a = d.call("spawn-local", {"binary": agent_bin(), "task": tid, "args": ["--scenario", "quota"]})
    wait_task(d, tid, lambda t: t["status"] == "done", timeout=30)
    ns = sentinel(d, out)
    parked = of_kind(ns, "agent.parked")
    assert len(parked) == 1, json.dumps(ns)
    check_note(parked[0], "agent.parked")
    assert parked[0]["agent"] == a["id"] and parked[0]["task"] == tid
    assert parked[0]["reason"].startswith("quota until ")
