"""No command whose cost grows with the board (issue 19): a regression test
that is not timed.

The daemon started with COLIBRI_TEST_VM_STEPS_FILE appends, for every
request, the SQLite VM steps its handler ran (colibri-daemon(8), TEST
FACILITIES; src/daemon/vmsteps.c).  A board is built at two sizes -- the
tasks, their dependencies and the events written straight into the state
directory's database while the daemon is stopped, so that 50,000 tasks take
seconds -- with the same shape at both: most tasks done, some open and ready,
some open behind an unfinished dependency (at the top of the queue, where a
ready query that looks at dependencies row by row would walk them all),
some claimed, cancelled or failed, as many events as tasks.  Then the same
commands run on both, and each one's steps on the large board must stay
within a small constant factor of the small board's (2 x + 50): a table scan
(status counting by status, a ready queue filtering row by row) grows 25 x
and fails.  Commands that list a page run with the same fixed limit on both.

The agents (a registered one and a few runs without a lease) are the same
few on both boards: list-agents has no page (it lists them all), and the
stale-claims count of status is O(claims without a lease), which the
dispatcher's caps bound; neither grows with the tasks.

The figures of the last run are printed (pytest -s) for docs and reviews.
SQLite only: the steps are SQLite's.
"""
import os
import sqlite3

import pytest

from conftest import STORE

pytestmark = pytest.mark.skipif(bool(STORE), reason="VM steps are SQLite's")

SMALL, LARGE = 2000, 50000
NOW = 1_700_000_000_000
FAR = 9_000_000_000_000  # leases that never lapse during the test


ROLES = ["done"] * 12 + ["blocked", "blocked", "dep-done", "ready", "claimed", "claimed",
                         "cancelled", "failed"]


def shape(i):
    """The role of task i (ids cycle through the 20 roles)."""
    return ROLES[i % 20]


def build_board(d, n):
    """Tasks 1..n (n a multiple of 20), their dependencies and n events."""
    d.start()
    c = d.connect()
    c.call("agent-register", id="w1", lease_ms=3_600_000)
    assert d.stop() == 0
    db = sqlite3.connect(os.path.join(d.state_dir, "colibri.sqlite"))
    db.execute("PRAGMA foreign_keys = ON")
    rows, deps = [], []
    for i in range(1, n + 1):
        role = shape(i)
        status = {"blocked": "open", "dep-done": "open", "ready": "open"}.get(role, role)
        owner = lease = lease_ms = None
        if role == "claimed":
            owner, lease, lease_ms = "gone-%d" % i, FAR, 600_000
        prio = 100 if role == "blocked" else 0
        rows.append((i, "task %d" % i, status, prio, owner, lease_ms, lease, NOW, NOW))
        if role == "blocked":
            deps.append((i, i + 2))  # on a "dep-done" or "ready" task: open, not done
        elif role == "dep-done":
            deps.append((i, i - 4))  # on a done task: ready
    with db:
        db.executemany("INSERT INTO tasks (id, title, status, priority, owner, lease_ms, "
                       "lease_expires, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       rows)
        db.executemany("INSERT INTO task_deps (task, dep) VALUES (?, ?)", deps)
        db.executemany("INSERT INTO events (ts, topic, data) VALUES (?, 'task.updated', ?)",
                       (((NOW, '{"id":%d}' % i) for i in range(1, n + 1))))
        # a few claims without a lease (task-bound runs'), the same on both boards
        db.execute("UPDATE tasks SET owner = 'run-' || id, lease_ms = NULL, "
                   "lease_expires = NULL WHERE id IN (17, 37, 57)")
    db.close()


class Steps:
    def __init__(self, path):
        self.path = path
        self.seen = 0

    def last(self, cmd):
        with open(self.path) as f:
            lines = f.read().splitlines()
        new, self.seen = lines[self.seen:], len(lines)
        assert new and new[-1].split()[0] == cmd, (cmd, new)
        return int(new[-1].split()[1])


def run_commands(d, n, steps_file):
    """The same commands on a board of n tasks: {label: steps}."""
    b = n - 20  # the last block of 20: b+12 blocked, b+14 ready (a dependency of b+12)
    d.start()
    c = d.connect()
    st = Steps(steps_file)
    out = {}

    def call(label, cmd, **args):
        r = c.call(cmd, **args)
        out[label] = st.last(cmd)
        return r

    s = call("status", "status")
    tasks = s["counts"]["tasks"]
    assert (tasks["open"], tasks["ready"], tasks["claimed"], tasks["done"]) == \
        (n // 5, n // 10, n // 10, 12 * n // 20), tasks
    call("task-show", "task-show", id=b + 12)
    call("task-list", "task-list")
    call("task-list status=open limit=50", "task-list", status="open", limit=50)
    call("task-list ready limit=50", "task-list", ready=True, limit=50)
    call("task-ready limit=50", "task-ready", limit=50)
    assert len(call("events-read limit=100", "events-read", after=0, limit=100)["items"]) == 100
    assert len(call("events-read tail limit=100", "events-read", after=n - 50,
                    limit=100)["items"]) >= 50
    call("agent-status", "agent-status", id="w1")
    call("list-agents", "list-agents")
    call("agent-heartbeat", "agent-heartbeat", id="w1")
    call("dispatch status", "dispatch", action="status")
    call("agent-register", "agent-register", id="w2", lease_ms=60_000)
    call("list-tenants", "list-tenants")
    call("host-status", "host-status")
    call("usage", "usage")
    call("profiles", "profiles")
    call("task-create", "task-create", title="new")
    call("task-create depends_on", "task-create", title="after", depends_on=[b + 13])
    t = call("task-claim next", "task-claim", agent="w1")
    call("task-update progress", "task-update", id=t["id"], agent="w1", epoch=t["epoch"],
         progress="half")
    call("task-complete", "task-complete", id=t["id"], agent="w1", epoch=t["epoch"])
    t = call("task-claim id", "task-claim", agent="w1", id=b + 14)
    call("task-complete (a dependent)", "task-complete", id=b + 14, agent="w1",
         epoch=t["epoch"])
    t = call("task-claim id (2)", "task-claim", agent="w1", id=b + 15)
    call("task-release", "task-release", id=b + 15, agent="w1", epoch=t["epoch"])
    call("task-update priority", "task-update", id=b + 13, priority=5)
    call("task-update status", "task-update", id=b + 12, status="cancelled")
    s = call("status (after)", "status")
    assert s["counts"]["tasks"]["cancelled"] == n // 20 + 1
    assert d.stop() == 0
    return out


def test_every_command_runs_bounded_steps_whatever_the_board(make_daemon, tmp_path):
    runs = {}
    for n in (SMALL, LARGE):
        steps_file = str(tmp_path / ("steps-%d" % n))
        env = dict(os.environ, COLIBRI_TEST_VM_STEPS_FILE=steps_file)
        d = make_daemon("state-%d" % n, env=env, start=False)
        build_board(d, n)
        runs[n] = run_commands(d, n, steps_file)
    print("\n%-32s %10s %10s" % ("command", SMALL, LARGE))
    for label in runs[SMALL]:
        print("%-32s %10d %10d" % (label, runs[SMALL][label], runs[LARGE][label]))
    grown = {label: (runs[SMALL][label], runs[LARGE][label]) for label in runs[SMALL]
             if runs[LARGE][label] > 2 * runs[SMALL][label] + 50}
    assert grown == {}, "steps grow with the board: %r" % grown
    # the facility measures: a command that reads a page of 50 runs more than status
    assert runs[LARGE]["task-list ready limit=50"] > runs[LARGE]["status"] > 0


def test_the_facility_is_off_by_default(daemon, tmp_path):
    """Without the variable nothing is written, and no reply carries steps."""
    c = daemon.connect()
    r = c.request("status")
    assert "steps" not in r and "steps" not in r["result"]
    assert not any("steps" in name for name in os.listdir(daemon.state_dir))


def test_a_steps_file_that_is_a_symlink_stops_the_start(make_daemon, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "steps-link"
    link.symlink_to(target)
    d = make_daemon(env=dict(os.environ, COLIBRI_TEST_VM_STEPS_FILE=str(link)), start=False)
    with pytest.raises(RuntimeError, match="COLIBRI_TEST_VM_STEPS_FILE"):
        d.start()
