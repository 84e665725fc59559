"""A confined spawn needs a privileged peer (uid 0, the daemon's uid or the admin group).

A user created for the test (and removed afterwards) connects to a root
daemon's socket -- it may reach it through the socket's group -- and asks for
spawn-local with a jail: permission_denied, and nothing is staged or run.
Root only (creating users, changing uid).
"""
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import Daemon
from test_jailed_spawn_helpers import STAGE_REL, give_to_agent, jail_env
from test_supervision_helpers import agent_bin

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                                or shutil.which("setpriv") is None,
                                reason="needs root, useradd and setpriv")

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


@pytest.fixture
def user():
    name = "colibri-jt%d" % (os.getpid() % 100000)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--user-group", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def world_dir():
    """A directory the other user can traverse (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix="colibri-jt-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_user(u, sock, calls):
    # Supplementary group 0 opens the 0750 root:root state directory and the
    # 0660 socket; it is not the admin group (none was given with --group).
    p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                        "--groups=0", "/usr/bin/python3", "-c", CLIENT, sock, json.dumps(calls)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_unprivileged_peer_cannot_spawn_confined(user, world_dir):
    root = os.path.join(world_dir, "jails", "box")
    os.makedirs(root)
    give_to_agent(root)
    d = Daemon(os.path.join(world_dir, "state"), env=jail_env()).start()
    try:
        replies = as_user(user, d.socket, [
            ["status", {}],
            ["spawn-local", {"binary": agent_bin(), "id": "p1", "jail": {"path": root}}],
            ["spawn-agent", {"provider": "local", "binary": agent_bin(), "id": "p2",
                             "jail": {"name": "box", "root_path": root}}],
            # Read-only paths (issue 17) are no way around it.
            ["spawn-local", {"binary": agent_bin(), "id": "p4", "jail": {"path": root},
                             "ro_paths": [world_dir]}],
        ])
        assert replies[0]["ok"], replies[0]
        for r in replies[1:]:
            assert not r["ok"], r
            assert r["error"]["code"] == "permission_denied", r
        assert not os.path.exists(os.path.join(root, STAGE_REL))
        items = d.call("list-agents")["items"]
        assert [a for a in items if a["id"] in ("p1", "p2", "p4")] == []
        # The same request from root (the daemon's uid) is accepted.
        d.call("spawn-local", {"binary": agent_bin(), "id": "p3", "jail": {"path": root}})
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]
