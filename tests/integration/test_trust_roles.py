"""Roles: admin, member and agent, as real different users and processes.

Issue 15's attack review found that anyone who could connect had the
daemon's power: a member spawned an unconfined script that printed the
vault's bootstrap secrets and registered a tenant; any client could kill,
prompt, abort or read an admin's agent; events-read and subscribe handed
every client the tenant.* and vault.* events.  Each test below reproduces
one of those attacks against a real colibri-daemon and shows it refused,
with nothing written and the daemon still serving, next to a control that
shows the same request succeeding for whoever may make it (so a test
cannot pass by the daemon refusing everything).

People (created here, removed afterwards): a member (in --group only), an
admin (in --group and --admin-group), and for the ownership test a user who
spawned as an admin and then left the admin group.  Root only.
"""
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import Conn, Daemon, bin_path
from test_supervision_helpers import sup_env, wait_state

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mcp"))
from mcp_helpers import McpProc  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                                or shutil.which("groupadd") is None
                                or shutil.which("setpriv") is None
                                or shutil.which("gpasswd") is None,
                                reason="needs root, useradd, groupadd, gpasswd and setpriv")

TAG = "%d" % (os.getpid() % 100000)

# A client run as another user.  Steps: [cmd, args] sends a request and waits
# for its reply; ["@ready"] prints {"ready": true}; ["@until", title] reads
# events until a task.created event with that title.  Prints every message.
CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def out(m):
    print(json.dumps(m), flush=True)
for i, step in enumerate(json.loads(sys.argv[2]), 1):
    if step[0] == "@ready":
        out({"ready": True})
        continue
    if step[0] == "@until":
        while True:
            m = json.loads(f.readline())
            out(m)
            if m.get("event") == "task.created" and m["data"]["title"] == step[1]:
                break
        continue
    f.write((json.dumps({"id": i, "cmd": step[0], "args": step[1]}) + "\n").encode())
    f.flush()
    while True:
        m = json.loads(f.readline())
        out(m)
        if m.get("id") == i:
            break
"""

# An agent: connects to $COLIBRI_SOCKET, makes the calls in its second
# argument and writes the replies to its first.  With "orphan" third, it leaves the
# calls to a grandchild in a session of its own whose parent has exited, so
# the caller is an orphan the daemon reaps, no longer a descendant of the agent.
AGENT = r"""#!/usr/bin/python3
import json, os, socket, sys, time
argv = sys.argv[3:] if sys.argv[1] == "--mode" else sys.argv[1:]  # the spawner adds --mode json
out, steps = argv[0], json.loads(argv[1])
if len(argv) > 2 and argv[2] == "orphan":
    mid = os.fork()
    if mid != 0:
        # The agent itself waits (the daemon ends an agent's leftovers when it exits).
        os.waitpid(mid, 0)
        for _ in range(200):
            if os.path.exists(out):
                break
            time.sleep(0.05)
        sys.exit(0)
    os.setsid()
    mid = os.getpid()
    if os.fork() != 0:
        os._exit(0)
    while os.getppid() == mid:  # until reparented to the subreaper
        time.sleep(0.01)
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["COLIBRI_SOCKET"])
f = s.makefile("rwb")
res = []
for i, (cmd, args) in enumerate(steps, 1):
    f.write((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            res.append(m)
            break
with open(out + ".tmp", "w") as fp:
    json.dump({"pid": os.getpid(), "ppid": os.getppid(), "replies": res}, fp)
os.rename(out + ".tmp", out)
"""

# The original attack's payload: print the environment and the daemon's secrets.
STEAL = """#!/bin/sh
env > "%(out)s"
cat "%(secret)s" >> "%(out)s" 2>&1
"""


def run(*argv):
    subprocess.run(list(argv), check=True, capture_output=True)


@pytest.fixture(scope="module")
def people():
    """--group G (everyone below), --admin-group A; a member, an admin, a former admin."""
    g, a = "colibri-rg" + TAG, "colibri-ra" + TAG
    users = {"member": ("colibri-rm" + TAG, g), "admin": ("colibri-rd" + TAG, g + "," + a),
             "former": ("colibri-rf" + TAG, g + "," + a)}
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
    """A directory other users can traverse (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix="colibri-roles-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def roles_daemon(people, world_dir):
    """A daemon with --group and --admin-group, the vault's secrets in its env and state dir."""
    env = sup_env({"BW_CLIENTSECRET": "s3cret-client-" + TAG, "BW_PASSWORD": "s3cret-pass-" + TAG})
    d = Daemon(os.path.join(world_dir, "state"),
               ["--group", people["group"], "--admin-group", people["admin_group"]], env=env).start()
    secret = os.path.join(d.state_dir, "provider.env")
    with open(secret, "w") as f:
        f.write("BW_CLIENTSECRET=s3cret-client-%s\n" % TAG)
    os.chmod(secret, 0o600)
    d.secret = secret
    yield d
    assert d.stop() == 0, d.read_log()[-3000:]


def argv_as(u, *argv):
    """argv run as user u with exactly its groups from /etc/group (read now)."""
    return ["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid, "--init-groups"] + list(argv)


def as_user(u, sock, steps):
    p = subprocess.run(argv_as(u, "/usr/bin/python3", "-c", CLIENT, sock, json.dumps(steps)),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def replies(msgs):
    return [m for m in msgs if "id" in m]


def events(msgs):
    return [m for m in msgs if "event" in m]


def code(reply):
    return "ok" if reply["ok"] else reply["error"]["code"]


def sessions(d):
    p = os.path.join(d.state_dir, "sessions")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def agent_ids(d):
    return sorted(a["id"] for a in d.call("list-agents")["items"])


def test_status_reports_the_role(people, roles_daemon):
    d = roles_daemon
    assert d.call("status")["role"] == "admin"  # root; schema-checked by Conn
    assert as_user(people["member"], d.socket, [["status", {}]])[0]["result"]["role"] == "member"
    assert as_user(people["admin"], d.socket, [["status", {}]])[0]["result"]["role"] == "admin"


def test_member_cannot_spawn_the_original_attack(people, roles_daemon, world_dir):
    """A member spawns a script that prints BW_* and reads provider.env: refused, every way."""
    d = roles_daemon
    jail = os.path.join(world_dir, "jail")
    os.makedirs(jail)
    out = os.path.join(world_dir, "stolen")
    script = os.path.join(world_dir, "steal.sh")
    with open(script, "w") as f:
        f.write(STEAL % {"out": out, "secret": d.secret})
    os.chmod(script, 0o755)
    before_sessions = sessions(d)
    attempts = [
        ["spawn-local", {"binary": script, "id": "m1"}],
        ["spawn-agent", {"provider": "local", "binary": script, "id": "m2"}],
        ["spawn-local", {"binary": script, "id": "m3", "jail": {"path": jail}}],
        ["spawn-agent", {"provider": "local", "binary": script, "id": "m4", "jail": {"path": jail}}],
        ["register-tenant", {"tenant_id": "mt", "jail_root_path": jail}],
    ]
    r = replies(as_user(people["member"], d.socket, attempts + [["status", {}]]))
    assert [code(m) for m in r[:5]] == ["permission_denied"] * 5, r
    for m in r[:4]:
        assert "admin only" in m["error"]["message"] and "member role" in m["error"]["message"], m
    assert r[5]["ok"], r[5]  # still serving this very connection
    time.sleep(0.5)
    assert not os.path.exists(out)
    assert agent_ids(d) == []
    assert sessions(d) == before_sessions
    assert d.call("list-tenants")["items"] == []
    assert "s3cret" not in d.read_log()
    # Control: an admin-group user may spawn, and the same script does steal -- which is
    # why the spawn is for admins only.
    r = replies(as_user(people["admin"], d.socket, [["spawn-local", {"binary": script, "id": "a1"}]]))
    assert r[0]["ok"], r
    assert r[0]["result"]["owner_uid"] == people["admin"].pw_uid
    wait_state(d, "a1")
    with open(out) as f:
        assert "s3cret-client-" + TAG in f.read()


def spawn_rpc_agent(d, aid):
    a = d.call("spawn-agent", {"provider": "local", "mode": "rpc", "id": aid,
                                          "args": ["--scenario", "text"]})
    assert a["state"] == "idle" and a["owner_uid"] == 0, a
    return a


def test_member_cannot_control_an_admins_agent(people, roles_daemon):
    d = roles_daemon
    a = spawn_rpc_agent(d, "root1")
    c = Conn(d.socket)
    c.call("agent-prompt", id="root1", message="hello from root")
    time.sleep(0.3)
    lines_before = c.call("session-read", id="root1")["lines"]
    steps = [
        ["kill-agent", {"id": "root1", "grace_ms": 0}],
        ["agent-prompt", {"id": "root1", "message": "injected by a member"}],
        ["agent-abort", {"id": "root1"}],
        ["session-read", {"id": "root1"}],
        ["session-read", {"id": a["session_id"]}],
        ["session-read", {"id": "root1", "stream": "stderr"}],
        ["session-read", {"id": "no-such-session"}],
    ]
    r = replies(as_user(people["member"], d.socket, steps))
    assert [code(m) for m in r] == ["permission_denied"] * 7, r
    assert all("owner or an admin" in m["error"]["message"] for m in r), r
    assert not any("hello from root" in json.dumps(m) for m in r)
    # Nothing happened: the agent lives, got no prompt, was not aborted.
    time.sleep(0.3)
    st = d.call("agent-status", id="root1")
    assert st["live"] and st["state"] == "idle", st
    lines = c.call("session-read", id="root1")["lines"]
    assert lines == lines_before
    assert not any("injected" in ln for ln in lines)
    # Control: an admin (not the owner) may do each of them.
    r = replies(as_user(people["admin"], d.socket, [
        ["session-read", {"id": "root1"}],
        ["agent-prompt", {"id": "root1", "message": "from the admin group"}],
        ["kill-agent", {"id": "root1", "grace_ms": 1000}],
    ]))
    assert [code(m) for m in r] == ["ok"] * 3, r
    assert r[0]["result"]["lines"] == lines_before
    assert r[2]["result"]["state"] in ("done", "error")
    c.close()


def test_owner_who_left_the_admin_group_keeps_its_own_agent_only(people, roles_daemon):
    """Groups are read at connect: once out of --admin-group, a user is a member; its own agent stays its own."""
    d = roles_daemon
    former = people["former"]
    spawn_rpc_agent(d, "root2")
    r = replies(as_user(former, d.socket, [
        ["spawn-agent", {"provider": "local", "mode": "rpc", "id": "mine",
                         "args": ["--scenario", "text"]}]]))
    assert r[0]["ok"] and r[0]["result"]["owner_uid"] == former.pw_uid, r
    run("gpasswd", "-d", former.pw_name, people["admin_group"])
    try:
        r = replies(as_user(former, d.socket, [
            ["status", {}],
            ["session-read", {"id": "mine"}],
            ["agent-prompt", {"id": "mine", "message": "still mine"}],
            ["session-read", {"id": "root2"}],
            ["kill-agent", {"id": "root2", "grace_ms": 0}],
            ["spawn-local", {"binary": "/bin/true"}],
            ["kill-agent", {"id": "mine", "grace_ms": 1000}],
        ]))
        assert r[0]["result"]["role"] == "member"
        assert [code(m) for m in r[1:]] == ["ok", "ok", "permission_denied", "permission_denied",
                                            "permission_denied", "ok"], r
        assert r[6]["result"]["state"] in ("done", "error")
        assert d.call("agent-status", id="root2")["live"]
    finally:
        run("gpasswd", "-a", former.pw_name, people["admin_group"])
    d.call("kill-agent", id="root2", grace_ms=1000)


def tenant_or_vault(msgs):
    return [m["event"] for m in msgs if m["event"].split(".")[0] in ("tenant", "vault")]


def test_tenant_events_reach_admins_only(people, roles_daemon, world_dir):
    d = roles_daemon
    root = os.path.join(world_dir, "troot")
    os.makedirs(root)
    # Tenant events first, so a member's first page would be all hidden ones.
    d.call("register-tenant", tenant_id="t1", jail_root_path=root)
    d.call("delete-tenant", tenant_id="t1")
    d.call("register-tenant", tenant_id="t1", jail_root_path=root)
    d.call("task-create", title="visible")
    steps = [["events-read", {}], ["events-read", {"limit": 1, "topics": ["tenant", "task"]}],
             ["events-read", {"topics": ["tenant", "vault"]}],
             ["subscribe", {"since": 0}], ["@until", "visible"]]
    member = as_user(people["member"], d.socket, steps)
    admin = as_user(people["admin"], d.socket, steps)
    mr, ar = replies(member), replies(admin)
    assert "task.created" in [i["event"] for i in mr[0]["result"]["items"]], mr[0]
    assert tenant_or_vault(mr[0]["result"]["items"]) == []
    # The hidden tenant events do not use up the page: the first visible one fills it.
    assert [i["event"] for i in mr[1]["result"]["items"]] == ["task.created"], mr[1]
    assert mr[2]["result"]["items"] == []
    assert events(member) and tenant_or_vault(events(member)) == []
    assert tenant_or_vault(ar[0]["result"]["items"]) == ["tenant.registered", "tenant.deleted",
                                                         "tenant.registered"]
    assert ar[1]["result"]["items"][0]["event"] == "tenant.registered"
    assert len(ar[2]["result"]["items"]) == 3
    assert tenant_or_vault(events(admin)) == ["tenant.registered", "tenant.deleted", "tenant.registered"]

    # Live: both subscribe, root registers a tenant and then creates a task.
    live = ["@ready"]
    procs = {}
    for who in ("member", "admin"):
        procs[who] = subprocess.Popen(
            argv_as(people[who], "/usr/bin/python3", "-c", CLIENT, d.socket,
                    json.dumps([["subscribe", {}], live, ["@until", "live end"]])),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p in procs.values():
        assert json.loads(p.stdout.readline())["id"] == 1
        assert json.loads(p.stdout.readline()) == {"ready": True}
    d.call("register-tenant", tenant_id="t2", jail_root_path=root)
    d.call("delete-tenant", tenant_id="t2")
    d.call("task-create", title="live end")
    got = {}
    for who, p in procs.items():
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        got[who] = [json.loads(line) for line in out.splitlines()]
    board = ("task", "tenant", "vault")
    assert [e["event"] for e in events(got["member"])
            if e["event"].split(".")[0] in board] == ["task.created"], got["member"]
    assert [e["event"] for e in events(got["admin"])
            if e["event"].split(".")[0] in board] == ["tenant.registered", "tenant.deleted",
                                                      "task.created"], got["admin"]


def write_agent(dirpath):
    path = os.path.join(dirpath, "agent.py")
    with open(path, "w") as f:
        f.write(AGENT)
    os.chmod(path, 0o755)
    return path


AGENT_STEPS = [
    ["status", {}],
    ["spawn-local", {"binary": "/bin/true"}],
    ["spawn-agent", {"provider": "local", "binary": "/bin/true"}],
    ["list-tenants", {}],
    ["register-tenant", {"tenant_id": "byagent", "jail_root_path": "/tmp"}],
    ["kill-agent", {"id": "whoever"}],
    ["task-create", {"title": "from an agent"}],
    ["events-read", {}],
]


@pytest.mark.parametrize("how", ["child", "orphan"])
def test_an_agent_is_not_an_admin_though_it_runs_as_the_daemons_uid(make_daemon, tmp_path, how):
    d = make_daemon(env=sup_env())
    d.call("register-tenant", tenant_id="t0", jail_root_path=str(tmp_path))
    script = write_agent(str(tmp_path))
    out = str(tmp_path / "replies.json")
    a = d.call("spawn-local", {"binary": script, "args": [out, json.dumps(AGENT_STEPS), how]})
    assert a["owner_uid"] == os.getuid() == 0
    deadline = time.time() + 15
    while not os.path.exists(out) and time.time() < deadline:
        time.sleep(0.05)
    with open(out) as f:
        rep = json.load(f)
    if how == "orphan":
        assert rep["ppid"] == d.proc.pid  # reparented to the daemon, the subreaper
    r = rep["replies"]
    assert r[0]["result"]["role"] == "agent"
    assert [code(m) for m in r[1:6]] == ["permission_denied"] * 5, r
    assert "admin only" in r[1]["error"]["message"] and "agent role" in r[1]["error"]["message"]
    assert "admin or member" in r[5]["error"]["message"]
    assert r[6]["ok"] and r[6]["result"]["title"] == "from an agent"
    assert tenant_or_vault(r[7]["result"]["items"]) == []
    # Nothing was spawned or registered; the daemon serves on and root is still admin.
    assert agent_ids(d) == [a["id"]]
    assert [t["tenant_id"] for t in d.call("list-tenants")["items"]] == ["t0"]
    assert d.call("status")["role"] == "admin"


def test_unconfined_spawns_need_allow_unconfined(make_daemon):
    d = make_daemon(env=sup_env(), allow_unconfined=False)
    assert "--allow-unconfined" not in d.extra_args
    for cmd, args in (("spawn-local", {"binary": "/bin/true"}),
                      ("spawn-agent", {"provider": "local"})):
        r = Conn(d.socket).request(cmd, args)
        assert not r["ok"] and r["error"]["code"] == "unavailable", r
        assert "--allow-unconfined" in r["error"]["message"]
    assert agent_ids(d) == [] and sessions(d) == []
    assert d.call("status")["role"] == "admin"
    # Control: with the flag the same spawn runs.
    d2 = make_daemon(name="state2", env=sup_env())
    a = d2.call("spawn-local", binary="/bin/true")
    assert wait_state(d2, a["id"])["state"] == "done"


@pytest.mark.parametrize("name", ["COLIBRI_SOCKET", "COLIBRI_AGENT_ID", "LD_PRELOAD", "LD_LIBRARY_PATH",
                                  "BW_SESSION", "BW_CLIENTSECRET", "DYLD_INSERT_LIBRARIES"])
def test_reserved_env_names_are_refused(make_daemon, tmp_path, name):
    d = make_daemon(env=sup_env())
    for cmd, args in (("spawn-local", {"binary": "/bin/true", "env": {"OK": "1", name: "x"}}),
                      ("spawn-agent", {"provider": "local", "env": {name: "x"}})):
        r = Conn(d.socket).request(cmd, args)
        assert not r["ok"] and r["error"]["code"] == "invalid_argument", r
        assert name in r["error"]["message"] and "reserved" in r["error"]["message"], r
    assert agent_ids(d) == [] and sessions(d) == []
    # Control: an ordinary name passes through to the agent.
    script = tmp_path / "check.sh"
    script.write_text('#!/bin/sh\ntest "$OK_NAME" = yes\n')
    script.chmod(0o755)
    a = d.call("spawn-local", {"binary": str(script), "env": {"OK_NAME": "yes"}})
    st = wait_state(d, a["id"])
    assert st["exit_code"] == 0, st


def test_mcp_offers_no_spawn_tool_unless_configured(make_daemon, tmp_path):
    d = make_daemon(env=sup_env())

    def session(*flags):
        m = McpProc(bin_path("colibri-mcp"), ["--socket", d.socket] + list(flags),
                    log_path=str(tmp_path / ("mcp%d.log" % len(flags))))
        m.initialize()
        names = {t["name"] for t in m.request("tools/list")["result"]["tools"]}
        r = m.call("spawn_local", {"binary": "/bin/true"})
        m.close()
        return names, r

    names, r = session()
    assert "spawn_local" not in names and "task_create" in names
    assert "error" in r and "--allow-spawn" in r["error"]["message"], r
    assert agent_ids(d) == []
    names, r = session("--allow-spawn")
    assert "spawn_local" in names
    res = r["result"]
    assert not res.get("isError"), res
    assert res["structuredContent"]["owner_uid"] == 0
    assert len(agent_ids(d)) == 1
