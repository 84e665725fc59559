"""Access control: --group opens the socket, --admin-group grants privilege.

A group and two users are created for the test (and removed afterwards): a
member of the --group and a stranger.  The member connects and reads and
works the board (status, task-list, list-agents, task-create, task-claim)
but a confined spawn and every tenant command are permission_denied; once
the daemon also runs with --admin-group naming a group of the member, the
tenant commands are allowed.  The stranger cannot even connect (EACCES on
the 0660 socket in its 0750 directory).  Root only (creating users and
groups, changing uid).
"""
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import Daemon, bin_path

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                                or shutil.which("groupadd") is None
                                or shutil.which("setpriv") is None,
                                reason="needs root, useradd, groupadd and setpriv")

CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect_errno": e.errno}))
    sys.exit(0)
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

TAG = "%d" % (os.getpid() % 100000)


def run(*argv):
    subprocess.run(list(argv), check=True, capture_output=True)


@pytest.fixture(scope="module")
def people():
    """Groups colibri-ag (--group) and colibri-aa (--admin-group); a member of both; a stranger."""
    g, a = "colibri-ag" + TAG, "colibri-aa" + TAG
    member, stranger = "colibri-am" + TAG, "colibri-as" + TAG
    made_groups, made_users = [], []
    try:
        for name in (g, a):
            run("groupadd", "--system", name)
            made_groups.append(name)
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--user-group", "--groups", g + "," + a, member)
        made_users.append(member)
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--user-group", stranger)
        made_users.append(stranger)
        yield {"group": g, "admin": a, "member": pwd.getpwnam(member),
               "stranger": pwd.getpwnam(stranger)}
    finally:
        for name in made_users:
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)
        for name in made_groups:
            subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def world_dir():
    """A directory other users can traverse (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix="colibri-access-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_user(u, sock, calls):
    """Run calls as user u with exactly its groups from /etc/group."""
    p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                        "--init-groups", "/usr/bin/python3", "-c", CLIENT, sock,
                        json.dumps(calls)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def start(world_dir, *args):
    return Daemon(os.path.join(world_dir, "state"), list(args)).start()


def code(reply):
    return reply["result"] if reply["ok"] else reply["error"]["code"]


def test_group_opens_the_socket_but_grants_no_privilege(people, world_dir):
    jail = os.path.join(world_dir, "jail")
    os.makedirs(jail)
    d = start(world_dir, "--group", people["group"])
    try:
        gid = grp.getgrnam(people["group"]).gr_gid
        sd, ss = os.stat(d.state_dir), os.stat(d.socket)
        assert (sd.st_gid, stat.S_IMODE(sd.st_mode)) == (gid, 0o750)
        assert (ss.st_gid, stat.S_IMODE(ss.st_mode)) == (gid, 0o660)
        assert "belongs to group " + people["group"] in d.read_log()
        r = as_user(people["member"], d.socket, [
            ["status", {}],
            ["task-list", {}],
            ["list-agents", {}],
            ["task-create", {"title": "from a member"}],
            ["task-claim", {"agent": "m1"}],
            ["spawn-local", {"binary": "/bin/true", "id": "j1", "jail": {"path": jail}}],
            ["register-tenant", {"tenant_id": "t1", "jail_root_path": jail}],
            ["list-tenants", {}],
            ["delete-tenant", {"tenant_id": "t1"}],
            ["provision-tenant", {"tenant_id": "t1"}],
            ["agent-resume", {"id": "j1"}],
        ])
        assert all(m["ok"] for m in r[:5]), r[:5]
        assert r[4]["result"]["title"] == "from a member"
        assert [code(m) for m in r[5:]] == ["permission_denied"] * 6, r[5:]
        assert d.call("list-tenants")["items"] == []
        assert [a for a in d.call("list-agents")["items"] if a["id"] == "j1"] == []
        # Not in the group: the socket cannot even be opened.
        r = as_user(people["stranger"], d.socket, [["status", {}]])
        assert r == [{"connect_errno": 13}], r
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


def test_admin_group_grants_privilege(people, world_dir):
    jail = os.path.join(world_dir, "jail")
    os.makedirs(jail)
    d = start(world_dir, "--group", people["group"], "--admin-group", people["admin"])
    try:
        r = as_user(people["member"], d.socket, [
            ["register-tenant", {"tenant_id": "t1", "jail_root_path": jail}],
            ["list-tenants", {}],
            ["delete-tenant", {"tenant_id": "t1"}],
        ])
        assert all(m["ok"] for m in r), r
        assert [t["tenant_id"] for t in r[1]["result"]["items"]] == ["t1"]
        r = as_user(people["stranger"], d.socket, [["list-tenants", {}]])
        assert r == [{"connect_errno": 13}], r
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


def test_admin_group_alone_is_not_the_socket_group(people, world_dir):
    """--admin-group without --group leaves the socket to the daemon's own group."""
    d = start(world_dir, "--admin-group", people["admin"])
    try:
        assert os.stat(d.socket).st_gid == os.getegid()
        r = as_user(people["member"], d.socket, [["status", {}]])
        assert r == [{"connect_errno": 13}], r
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


def test_unknown_groups_are_refused(world_dir):
    for opt in ("--group", "--admin-group"):
        p = subprocess.run([bin_path("colibri-daemon"), "--state-dir", os.path.join(world_dir, "s"), "--foreground", opt,
                            "colibri-no-such-group-" + TAG],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode != 0
        assert opt + ": unknown group" in p.stderr, p.stderr
