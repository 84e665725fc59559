"""Explainable states: every transition of a spawned agent names its cause.

Each captured pi scenario (fixtures/pi) is replayed through the daemon as pi
would be supervised (provider pi, colibri-test-agent --replay), and
agent-explain must name, for every transition, the event type and the line
of the capture behind it -- the expected lines are found in the capture file
itself -- or, for a transition no line caused, the process exit (with its
status) or the signal.  Line numbers are the session log's, 1-based, as
session-read counts them (line N is the one `since = N - 1` returns first);
a restarted agent's second run goes on counting in the same log.  A plain
local program that exits 3 is explained by its exit; lines no rule knew
are counted (agent-status, agent-explain, the CLI); the chain outlives the
daemon; agent.state events carry the line; a member cannot explain an
agent it does not own, an agent explains only itself.
"""
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import Conn, Daemon
from test_supervision_helpers import (PI_FIXTURES, Watch, agent_bin, fixture_rc, replay_args,
                                      session_lines, spawn, sup_daemon, sup_env, wait_gone,
                                      wait_state)

TAG = "%d" % (os.getpid() % 100000)


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def fixture_types(name):
    """The event type of every line of a capture, in order (None for a line with none)."""
    out = []
    with open(os.path.join(PI_FIXTURES, name + ".jsonl")) as f:
        for ln in f.read().splitlines():
            try:
                out.append(json.loads(ln).get("type"))
            except ValueError:
                out.append(None)
    return out


def line_of(types, t, after=0):
    """The 1-based number of the first line of type t after line `after`."""
    for i in range(after, len(types)):
        if types[i] == t:
            return i + 1
    raise AssertionError("no %s line after line %d" % (t, after))


def expected_chain(name, types):
    """(from, to, cause, line) of every transition a capture's replay goes through.

    pi's harness waits in idle for the run's agent_start; in JSON mode the
    run's end is judged by the process (exit or signal); in RPC mode
    agent_end ends the prompt and the exit ends the agent."""
    start = line_of(types, "agent_start")
    rc = fixture_rc(name)
    if name == "rpc-text":
        end = line_of(types, "agent_end", start)
        return [("idle", "working", "agent_start", start), ("working", "idle", "agent_end", end),
                ("idle", "done", "exit", None)]
    if rc > 128:
        return [("idle", "working", "agent_start", start), ("working", "error", "signal", None)]
    final = "error" if name == "http400" else "done"
    return [("idle", "working", "agent_start", start), ("working", final, "exit", None)]


def chain_of(res):
    return [(t["from"], t["to"], t["cause"], t["line"]) for t in res["transitions"]]


def check_causes(res, types):
    """Every transition caused by a line names that line's own event type."""
    for t in res["transitions"]:
        if t["line"] is not None:
            assert 1 <= t["line"] <= len(types), t
            want = "agent_end" if t["cause"] == "settle" else t["cause"]
            assert types[t["line"] - 1] == want, (t, types[t["line"] - 1])
        else:
            assert t["cause"] in ("start", "exit", "signal", "stall", "restart", "spawner"), t


def spawn_replay(d, name, **extra):
    mode = "rpc" if name == "rpc-text" else "json"
    return spawn(d, provider="pi", binary=agent_bin(), mode=mode,
                 args=replay_args(name, delay_ms=1), **extra)


@pytest.mark.parametrize("name", ["http400", "kill-term", "rpc-text", "text", "tool", "toolslow"])
def test_every_capture_is_explained_by_its_lines(sup, name):
    types = fixture_types(name)
    w = Watch(sup)
    a = spawn_replay(sup, name)
    st = wait_gone(sup, a["id"])
    res = sup.call("agent-explain", id=a["id"])
    assert res["id"] == a["id"] and res["live"] is False
    assert (res["state"], res["reason"]) == (st["state"], st["reason"])
    assert chain_of(res) == expected_chain(name, types), res
    check_causes(res, types)
    # The line a transition names is the capture's line, as session-read numbers it.
    log = session_lines(sup, a["id"])
    for t in res["transitions"]:
        if t["line"] is not None:
            assert json.loads(log[t["line"] - 1])["type"] == t["cause"]
            page = sup.call("session-read", id=a["id"], since=t["line"] - 1, limit=1)
            assert page["lines"] == [log[t["line"] - 1]]
    last = res["transitions"][-1]
    if last["cause"] == "exit":
        assert last["status"] == 0 and "signal" not in last
    else:
        assert last["signal"] == 15 and "status" not in last
    assert res["unrecognized_lines"] == 0 == st["unrecognized_lines"]
    # agent.state events carry the same line and cause.
    w.wait_final(a["id"])
    evs = [(e["data"]["from"], e["data"]["to"], e["data"]["cause"], e["data"]["line"])
           for e in w.of(a["id"], "agent.state")]
    assert evs == chain_of(res)
    # The CLI says it in words, one line per transition.
    out = sup.cli("agent-explain", a["id"]).stdout.splitlines()
    assert len(out) == 1 + len(res["transitions"]), out
    for t, line in zip(res["transitions"], out[1:]):
        assert "%s -> %s" % (t["from"], t["to"]) in line and t["reason"] in line, line
        if t["line"] is not None:
            assert line.endswith("(caused by %s at line %d)" % (t["cause"], t["line"])), line
        elif t["cause"] == "exit":
            assert line.endswith("(caused by the process exit (status 0))"), line
        else:
            assert line.endswith("(caused by the process's death by signal 15)"), line


def test_a_restarted_agent_goes_on_counting_its_session_lines(sup):
    """http400 fails (exit 0, error): one restart replays it again into the same log."""
    types = fixture_types("http400")
    n = len(types)
    a = spawn_replay(sup, "http400", restart={"max_restarts": 1, "backoff_ms": 50,
                                              "on_error": True})
    st = wait_gone(sup, a["id"], timeout=30)
    assert st["restarts"] == 1, st
    res = sup.call("agent-explain", id=a["id"])
    start = line_of(types, "agent_start")
    assert chain_of(res) == [
        ("idle", "working", "agent_start", start), ("working", "error", "exit", None),
        ("error", "idle", "restart", None),
        ("idle", "working", "agent_start", n + start), ("working", "error", "exit", None)], res
    assert len(session_lines(sup, a["id"])) == 2 * n


def test_a_plain_program_is_explained_by_its_exit(sup):
    a = sup.call("spawn-local", {"binary": "/bin/sh", "args": ["-c", "echo working; exit 3"]})
    wait_gone(sup, a["id"])
    res = sup.call("agent-explain", id=a["id"])
    assert [(t["from"], t["to"], t["reason"], t["cause"], t["line"]) for t in res["transitions"]] == [
        ("idle", "working", "process started", "start", None),
        ("working", "error", "exited with status 3", "exit", None)], res
    assert res["transitions"][-1]["status"] == 3
    assert res["unrecognized_lines"] == 1  # "working" is no event
    out = sup.cli("agent-explain", a["id"]).stdout.splitlines()
    assert out[0] == "agent %s: error (exited with status 3), 1 unrecognized lines" % a["id"]
    assert out[1].endswith("idle -> working  process started  (caused by the process start)")
    assert out[2].endswith(
        "working -> error  exited with status 3  (caused by the process exit (status 3))")


GARBAGE = r"""
echo 'not json at all'
echo '{"type":"no_such_event_type"}'
echo '{"truncated":'
echo '{"type":"agent_start"}'
echo '{"type":"turn_start"}'
printf '{"type":"another_unknown"}\n'
echo
exit 0
"""


def test_unrecognized_lines_are_counted(sup):
    a = sup.call("spawn-local", {"binary": "/bin/sh", "args": ["-c", GARBAGE]})
    st = wait_gone(sup, a["id"])
    # Four lines no rule knew (text, two unknown types, a cut object) and an empty one.
    assert st["unrecognized_lines"] == 5, st
    assert sup.call("agent-explain", id=a["id"])["unrecognized_lines"] == 5
    assert ["unrecognized_lines:", "5"] in [
        line.split() for line in sup.cli("agent-status", a["id"]).stdout.splitlines()]
    assert "transitions" not in st
    assert all("transitions" not in x for x in sup.call("list-agents")["items"])


def test_a_live_agent_is_explained_from_memory(sup):
    w = Watch(sup)
    a = spawn(sup, provider="pi", binary=agent_bin(), mode="rpc",
              args=["--scenario", "text", "--delay-ms", "0"])
    wait_state(sup, a["id"], ("idle",))
    sup.call("agent-prompt", id=a["id"], message="hello")
    w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == a["id"]
           and e["data"]["to"] == "idle")
    res = sup.call("agent-explain", id=a["id"])
    assert res["live"] is True and res["state"] == "idle"
    log = session_lines(sup, a["id"])
    assert [t["cause"] for t in res["transitions"]] == ["agent_start", "agent_end"], res
    for t in res["transitions"]:
        assert json.loads(log[t["line"] - 1])["type"] == t["cause"]
    killed = sup.call("kill-agent", id=a["id"], grace_ms=1000)
    assert killed["state"] in ("done", "error") and "transitions" not in killed
    assert sup.call("agent-explain", id=a["id"])["transitions"][-1]["cause"] in ("exit", "signal")


def test_the_chain_survives_a_daemon_restart(tmp_path):
    d = Daemon(str(tmp_path / "state"), [], env=sup_env()).start()
    try:
        a = spawn_replay(d, "tool")
        wait_gone(d, a["id"])
        before = d.call("agent-explain", id=a["id"])
        assert len(before["transitions"]) == 2
    finally:
        assert d.stop() == 0
    d = Daemon(str(tmp_path / "state"), [], env=sup_env()).start()
    try:
        after = d.call("agent-explain", id=a["id"])
        assert after == before
        assert "caused by agent_start at line 2" in d.cli("agent-explain", a["id"]).stdout
    finally:
        d.stop()


def test_explain_refuses_unknown_and_registered_agents(sup):
    with pytest.raises(Exception) as e:
        sup.call("agent-explain", id="no-such-agent")
    assert e.value.code == "not_found"
    sup.call("agent-register", id="ext-" + TAG)
    with pytest.raises(Exception) as e:
        sup.call("agent-explain", id="ext-" + TAG)
    assert e.value.code == "invalid_argument" and "registered agent" in str(e.value)


# ---- who may explain ----

CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for i, (cmd, args) in enumerate(json.loads(sys.argv[2]), 1):
    f.write((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            print(json.dumps(m))
            break
"""

# An agent asking through its channel (descriptor COLIBRI_FD) about itself and another.
CHANNEL = r"""
import json, os, socket, sys
s = socket.socket(fileno=int(os.environ["COLIBRI_FD"]))
f = s.makefile("rwb")
res = []
for i, aid in enumerate([os.environ["COLIBRI_AGENT_ID"], sys.argv[2]], 1):
    f.write((json.dumps({"id": i, "cmd": "agent-explain", "args": {"id": aid}}) + "\n").encode())
    f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            res.append(m)
            break
with open(sys.argv[1] + ".tmp", "w") as fp:
    json.dump(res, fp)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""


def run(*argv):
    subprocess.run(list(argv), check=True, capture_output=True)


@pytest.fixture(scope="module")
def people():
    """--group G, --admin-group A; a member, and an admin who is no longer one later."""
    if os.geteuid() != 0 or not all(shutil.which(p) for p in ("useradd", "groupadd", "setpriv",
                                                              "gpasswd")):
        pytest.skip("needs root, useradd, groupadd, gpasswd and setpriv")
    g, a = "colibri-xg" + TAG, "colibri-xa" + TAG
    users = {"member": ("colibri-xm" + TAG, g), "owner": ("colibri-xo" + TAG, g + "," + a)}
    made_groups, made_users = [], []
    try:
        for name in (g, a):
            run("groupadd", "--system", name)
            made_groups.append(name)
        for name, groups in users.values():
            run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                "--user-group", "--groups", groups, name)
            made_users.append(name)
        p = {k: pwd.getpwnam(v[0]) for k, v in users.items()}
        p.update({"group": g, "admin_group": a})
        yield p
    finally:
        for name in made_users:
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)
        for name in made_groups:
            subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def world_dir():
    d = tempfile.mkdtemp(prefix="colibri-explain-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_user(u, sock, steps):
    p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                        "--init-groups", "/usr/bin/python3", "-c", CLIENT, sock, json.dumps(steps)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def code(reply):
    return "ok" if reply["ok"] else reply["error"]["code"]


def test_a_member_explains_only_its_own_agents(people, world_dir):
    d = Daemon(os.path.join(world_dir, "state"),
               ["--group", people["group"], "--admin-group", people["admin_group"]],
               env=sup_env()).start()
    try:
        root_agent = spawn_replay(d, "text", id="root-" + TAG)
        r = as_user(people["owner"], d.socket, [
            ["spawn-agent", {"provider": "pi", "binary": agent_bin(), "id": "own-" + TAG,
                             "args": replay_args("text", delay_ms=1)}]])
        assert r[0]["ok"] and r[0]["result"]["owner_uid"] == people["owner"].pw_uid, r
        wait_gone(d, root_agent["id"])
        wait_gone(d, "own-" + TAG)
        # A member is refused another's agent (root's, the owner's) and learns nothing.
        r = as_user(people["member"], d.socket, [
            ["agent-explain", {"id": root_agent["id"]}],
            ["agent-explain", {"id": "own-" + TAG}]])
        assert [code(m) for m in r] == ["permission_denied"] * 2, r
        assert all("owner or an admin" in m["error"]["message"] for m in r), r
        assert not any("agent_start" in json.dumps(m) for m in r)
        # The owner, once out of the admin group a plain member, still explains its own.
        run("gpasswd", "-d", people["owner"].pw_name, people["admin_group"])
        try:
            r = as_user(people["owner"], d.socket, [
                ["status", {}],
                ["agent-explain", {"id": "own-" + TAG}],
                ["agent-explain", {"id": root_agent["id"]}]])
        finally:
            run("gpasswd", "-a", people["owner"].pw_name, people["admin_group"])
        assert r[0]["result"]["role"] == "member"
        assert [code(m) for m in r[1:]] == ["ok", "permission_denied"], r
        assert r[1]["result"]["transitions"][0]["cause"] == "agent_start"
        # An admin explains any.
        assert d.call("agent-explain", id="own-" + TAG)["transitions"]
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


def test_an_agent_explains_only_itself(sup, tmp_path):
    other = spawn_replay(sup, "text")
    wait_gone(sup, other["id"])
    script = tmp_path / "ask.py"
    script.write_text(CHANNEL)
    out = str(tmp_path / "replies.json")
    a = sup.call("spawn-local", {"binary": "/usr/bin/python3",
                                  "args": [str(script), out, other["id"]]})
    wait_gone(sup, a["id"])
    with open(out) as f:
        r = json.load(f)
    assert r[0]["ok"] and r[0]["result"]["id"] == a["id"] and r[0]["result"]["live"], r
    assert [t["cause"] for t in r[0]["result"]["transitions"]] == ["start"]
    assert code(r[1]) == "permission_denied" and "only itself" in r[1]["error"]["message"], r


def test_lines_no_rule_knew_are_counted_over_every_run(sup):
    a = sup.call("spawn-local", {"binary": "/bin/sh", "args": ["-c", "echo junk; exit 1"],
                                 "restart": {"max_restarts": 1, "backoff_ms": 50,
                                             "on_error": True}})
    st = wait_gone(sup, a["id"], timeout=30)
    assert st["restarts"] == 1 and st["unrecognized_lines"] == 2, st
    res = sup.call("agent-explain", id=a["id"])
    assert res["unrecognized_lines"] == 2
    assert [t["cause"] for t in res["transitions"]] == ["start", "exit", "restart", "start", "exit"]


RETRIES = 40
FLAPPER = """#!/bin/sh
echo '{"type":"agent_start"}'
i=0
while [ $i -lt %d ]; do
  echo '{"type":"auto_retry_start","attempt":1,"maxAttempts":3,"delayMs":1,"errorMessage":"overloaded"}'
  echo '{"type":"message_update"}'
  echo '{"type":"agent_start"}'
  i=$((i + 1))
done
echo '{"type":"agent_end"}'
""" % RETRIES


def test_the_chain_keeps_the_last_64_transitions(sup, tmp_path):
    """A pi run that retries 40 times goes through 82 transitions; the last 64 are kept."""
    script = tmp_path / "flapper"
    script.write_text(FLAPPER)
    script.chmod(0o755)
    a = spawn(sup, provider="pi", binary=str(script))
    wait_gone(sup, a["id"])
    res = sup.call("agent-explain", id=a["id"])
    log = session_lines(sup, a["id"])
    # idle -> working at line 1, then per retry: blocked at 3k+2, working at 3k+4; the exit.
    full = [("idle", "working", "agent_start", 1)]
    for k in range(RETRIES):
        full += [("working", "blocked", "auto_retry_start", 3 * k + 2),
                 ("blocked", "working", "agent_start", 3 * k + 4)]
    full.append(("working", "done", "exit", None))
    assert len(full) == 2 + 2 * RETRIES
    assert chain_of(res) == full[-64:], res
    for t in res["transitions"]:
        if t["line"] is not None:
            assert json.loads(log[t["line"] - 1])["type"] == t["cause"]
    why = {"blocked": "retry 1/3 in 1ms: overloaded", "working": "retry started",
           "done": "exited cleanly"}
    assert [t["reason"] for t in res["transitions"]] == [why[t["to"]] for t in res["transitions"]]


def test_a_failed_rpc_prompt_is_explained_by_its_agent_end(sup):
    """RPC: a failed run's agent_end is judged a moment later (settle): its line is named."""
    w = Watch(sup)
    a = spawn(sup, provider="pi", binary=agent_bin(), mode="rpc",
              args=["--scenario", "model-error", "--delay-ms", "0"])
    wait_state(sup, a["id"], ("idle",))
    sup.call("agent-prompt", id=a["id"], message="fail please")
    w.wait(lambda e: e["event"] == "agent.state" and e["data"]["id"] == a["id"]
           and e["data"]["to"] == "error")
    res = sup.call("agent-explain", id=a["id"])
    log = session_lines(sup, a["id"])
    last = res["transitions"][-1]
    assert (last["from"], last["to"], last["cause"]) == ("working", "error", "settle"), res
    assert json.loads(log[last["line"] - 1])["type"] == "agent_end"
    assert json.loads(log[res["transitions"][0]["line"] - 1])["type"] == "agent_start"
    out = sup.cli("agent-explain", a["id"]).stdout.splitlines()
    assert out[-1].endswith("(caused by the failed agent_end at line %d (no retry followed))"
                            % last["line"]), out
    sup.call("kill-agent", id=a["id"], grace_ms=1000)
