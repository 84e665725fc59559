"""The agent channel (issue 17): one connection every run inherits.

Every spawned agent, confined or not, inherits one connected socket, its
descriptor named by COLIBRI_FD (always 3), that speaks the daemon's protocol
with the role agent bound to the agent's own id.  Through it the agent reads
the board, claims and heartbeats as itself, and updates, completes or
releases only what it holds; spawning, tenants, kill-agent and acting as
another agent id are permission_denied.  It passes through bwrap unchanged,
so a confined agent -- whose jail holds neither the daemon's socket nor its
files -- still reaches the board.  `colibri` uses it when COLIBRI_FD is set.

The agent here is a python3 program run as spawn-local: it runs a plan of
requests over COLIBRI_FD and prints what each got as one JSON line, which
the test reads back from the session log.
"""
import json
import os
import time

import pytest

from conftest import CallError, bin_path
from test_jailed_spawn_helpers import bwrap_works, give_to_agent, jail_env
from test_supervision_helpers import session_lines, sup_daemon, wait_gone

PY = "/usr/bin/python3"

AGENT = r"""
import json, os, socket, subprocess, sys
me = os.environ["COLIBRI_AGENT_ID"]
fd = int(os.environ["COLIBRI_FD"])
s = socket.socket(fileno=os.dup(fd))
f = s.makefile("rwb")
n = 0
def call(cmd, args):
    global n
    n += 1
    f.write((json.dumps({"id": n, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    r = json.loads(f.readline())
    if not r["ok"]:
        return {"error": r["error"]["code"]}
    res = r["result"]
    return {k: res.get(k) for k in ("role", "owner", "status", "id")} if isinstance(res, dict) else "ok"
out = {"fd": fd, "socket_seen": os.path.exists(os.environ.get("SOCK", "/nonexistent"))}
for name, cmd, args in json.loads(sys.argv[1]):
    out[name] = call(cmd, {k: (me if v == "$ME" else v) for k, v in args.items()})
if len(sys.argv) > 2:
    env = dict(os.environ, COLIBRI_SOCKET="/nonexistent/colibri.sock")
    p = subprocess.run([sys.argv[2], "status", "--json"], capture_output=True, text=True,
                       pass_fds=(fd,), env=env)
    out["cli"] = [p.returncode, p.stdout, p.stderr]
if len(sys.argv) > 3:
    env = dict(os.environ, COLIBRI_SOCKET="/nonexistent/colibri.sock")
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "task_claim", "arguments": {"agent": me, "id": int(sys.argv[4])}}},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
             "params": {"name": "task_claim", "arguments": {"agent": "someone-else", "id": int(sys.argv[5])}}}]
    p = subprocess.run([sys.argv[3]], input="".join(json.dumps(m) + "\n" for m in msgs),
                       capture_output=True, text=True, pass_fds=(fd,), env=env, timeout=30)
    replies = {}
    for line in p.stdout.splitlines():
        m = json.loads(line)
        if m.get("id") in (2, 3):
            r = m["result"]
            replies[m["id"]] = [r.get("isError", False), r.get("structuredContent", {}).get("owner"),
                                r["content"][0]["text"][:200]]
    out["mcp"] = [p.returncode, replies]
print(json.dumps(out), flush=True)
"""


def plan_of(tid):
    return [
        ["status", "status", {}],
        ["claim", "task-claim", {"id": tid}],
        ["heartbeat", "agent-heartbeat", {"activity": "working"}],
        ["heartbeat_self", "agent-heartbeat", {"id": "$ME"}],
        ["complete", "task-complete", {"id": tid, "agent": "$ME"}],
        ["list", "task-list", {}],
        ["spawn", "spawn-local", {"binary": "/bin/true"}],
        ["tenant", "register-tenant", {"tenant_id": "t1", "jail_root_path": "/tmp"}],
        ["kill", "kill-agent", {"id": "$ME"}],
        ["profiles", "profiles", {}],
        ["dispatch_status", "dispatch", {"action": "status"}],
        ["dispatch_on", "dispatch", {"action": "on"}],
        ["claim_other", "task-claim", {"id": tid, "agent": "someone-else"}],
        ["heartbeat_other", "agent-heartbeat", {"id": "someone-else"}],
    ]


def run_agent(d, plan, extra=(), **kw):
    a = d.call("spawn-local", dict({"binary": PY, "args": ["-c", AGENT, json.dumps(plan)] + list(extra)},
                                   **kw))
    st = wait_gone(d, a["id"], timeout=30)
    lines = session_lines(d, a["id"])
    assert (st["state"], st["exit_code"]) == ("done", 0), (st, lines)
    assert len(lines) == 1, lines
    return a["id"], json.loads(lines[0])


def check_plan(out, me, tid):
    assert out["fd"] == 3
    assert out["status"]["role"] == "agent", out
    assert out["claim"] == {"role": None, "owner": me, "status": "claimed", "id": tid}, out
    assert "error" not in out["heartbeat"] and "error" not in out["heartbeat_self"], out
    assert out["complete"]["status"] == "done" and out["complete"]["owner"] == me, out
    assert out["list"] != {"error": "permission_denied"}, out
    for k in ("spawn", "tenant", "kill", "profiles", "dispatch_status", "dispatch_on",
              "claim_other", "heartbeat_other"):
        assert out[k] == {"error": "permission_denied"}, (k, out)


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def test_unconfined_agent_uses_its_channel(sup):
    tid = sup.call("task-create", title="for the agent")["id"]
    mine = sup.call("task-create", title="through mcp")["id"]
    other = sup.call("task-create", title="not for another")["id"]
    me, out = run_agent(sup, plan_of(tid), [bin_path("colibri"), bin_path("colibri-mcp"),
                                            str(mine), str(other)])
    check_plan(out, me, tid)
    t = sup.call("task-show", id=tid)
    assert (t["status"], t["owner"]) == ("done", me), t
    # Nothing of what was refused happened.
    assert [x["id"] for x in sup.call("list-agents")["items"]] == [me]
    # The CLI, with COLIBRI_FD set and no reachable socket, spoke over the channel.
    rc, stdout, stderr = out["cli"]
    assert rc == 0, stderr
    assert json.loads(stdout)["role"] == "agent", stdout
    # colibri-mcp too: it claims as the agent, and not as another.
    rc, replies = out["mcp"]
    assert rc == 0 and replies["2"][:2] == [False, me], out["mcp"]
    assert replies["3"][0] is True and "permission_denied" in replies["3"][2], out["mcp"]
    assert sup.call("task-show", id=other)["status"] == "open"
    # A channel takes no connection slot of the socket's (--max-clients counts the socket's).
    assert sup.call("status")["clients"] == 1


def test_a_second_agent_cannot_complete_the_firsts_task(sup):
    tid = sup.call("task-create", title="held by the first")["id"]
    first, out = run_agent(sup, [["claim", "task-claim", {"id": tid}]])
    assert out["claim"]["owner"] == first, out
    second, out = run_agent(sup, [
        ["as_first", "task-complete", {"id": tid, "agent": first}],
        ["release_as_first", "task-release", {"id": tid, "agent": first}],
        ["update_as_first", "task-update", {"id": tid, "agent": first, "title": "mine now"}],
        ["as_itself", "task-complete", {"id": tid}],
    ])
    assert second != first
    for k in ("as_first", "release_as_first", "update_as_first"):
        assert out[k] == {"error": "permission_denied"}, (k, out)
    assert out["as_itself"] == {"error": "conflict"}, out  # the store: not claimed by it
    t = sup.call("task-show", id=tid)
    assert t["status"] != "done" and t["title"] == "held by the first", t


def test_the_main_socket_keeps_its_roles(sup):
    """An admin on the socket still claims for any agent id: the binding is the channel's."""
    tid = sup.call("task-create", title="admin's")["id"]
    t = sup.call("task-claim", agent="anyone", id=tid)
    assert t["owner"] == "anyone"
    with pytest.raises(CallError) as e:
        sup.call("task-claim", id=tid)  # no agent: still required off the channel
    assert e.value.code == "invalid_argument"


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")
def test_confined_agent_reaches_the_board_only_through_its_channel(make_daemon, tmp_path):
    root = str(tmp_path / "jails" / "chan")
    os.makedirs(root)
    give_to_agent(root)
    d = make_daemon(env=jail_env())
    tid = d.call("task-create", title="for the jailed agent")["id"]
    me, out = run_agent(d, plan_of(tid), jail={"path": root}, env={"SOCK": d.socket})
    assert out["socket_seen"] is False, out
    check_plan(out, me, tid)
    t = d.call("task-show", id=tid)
    assert (t["status"], t["owner"]) == ("done", me), t


HOLD = r"""
import os, sys, time
print("up", flush=True)
deadline = time.time() + 30
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
"""


def test_a_channel_takes_no_slot_of_the_socket(make_daemon, tmp_path):
    """--max-clients 1: a running agent holds its channel, and the one socket slot stays free."""
    d = sup_daemon(make_daemon, extra_args=["--max-clients", "1"])
    go = str(tmp_path / "go")
    a = d.call("spawn-local", {"binary": PY, "args": ["-c", HOLD, go]})
    deadline = time.time() + 15
    while session_lines(d, a["id"]) != ["up"]:
        assert time.time() < deadline, "the agent did not start"
        time.sleep(0.05)
    st = d.call("status")
    assert st["clients"] == 1, st
    assert d.call("agent-status", id=a["id"])["live"] is True
    open(go, "w").close()
    st = wait_gone(d, a["id"], timeout=30)
    assert (st["state"], st["exit_code"]) == ("done", 0), st
