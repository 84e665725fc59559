"""Issue 15, the store's share of the trust model: its files and their durability.

- The WAL and SHM files were 0640, readable by the socket group where the
  state directory is group-owned (the rc.d layout; a FreeBSD file takes its
  directory's group, as a setgid directory does here).  A real member of
  the socket group, made with groupadd/useradd and run with setpriv, reads
  none of the database, its -wal and -shm, or the lock, all 0600; it still
  connects (the state directory holding the socket stays 0750, its
  subdirectories are 0700).  A database left 0644 by an older daemon is
  narrowed at start.  With the socket elsewhere the state directory is
  0700 and the member cannot even list it.
- synchronous=NORMAL was undocumented: `--sync full` turns on
  synchronous=FULL, read back from the database into `status.sync`; the
  default reads "normal"; anything else is a usage error.

Root only for the user cases (creating users and groups, changing uid).
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

TAG = "%d" % (os.getpid() % 100000)
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                                or shutil.which("groupadd") is None
                                or shutil.which("setpriv") is None,
                                reason="needs root, useradd, groupadd and setpriv")

STATUS = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(b'{"id": 1, "cmd": "status", "args": {}}\n')
f.flush()
print(json.loads(f.readline())["ok"])
"""


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture(scope="module")
def member():
    """A group (the daemon's --group) and a user in it."""
    g, u = "colibri-tg" + TAG, "colibri-tm" + TAG
    made_group = made_user = False
    try:
        subprocess.run(["groupadd", "--system", g], check=True, capture_output=True)
        made_group = True
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", "--groups", g, u], check=True, capture_output=True)
        made_user = True
        yield {"group": g, "user": pwd.getpwnam(u)}
    finally:
        if made_user:
            subprocess.run(["userdel", u], capture_output=True)
            subprocess.run(["groupdel", u], capture_output=True)
        if made_group:
            subprocess.run(["groupdel", g], capture_output=True)


@pytest.fixture
def world_dir():
    """A directory other users can traverse (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix="colibri-trust-store-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_member(m, *argv):
    u = m["user"]
    return subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                           "--init-groups"] + list(argv), capture_output=True, text=True,
                          timeout=30)


def daemon_files(sd):
    db = os.path.join(sd, "colibri.sqlite")
    return [db, db + "-wal", db + "-shm", db + ".lock"]


def write_some(d):
    for i in range(20):
        d.call("task-create", title="t%d" % i, body="x" * 500)


@needs_root
def test_socket_group_member_reads_no_database_file(member, world_dir):
    sd = os.path.join(world_dir, "state")
    os.makedirs(sd)
    gid = grp.getgrnam(member["group"]).gr_gid
    # The rc.d layout: the state directory group-owned by the socket group,
    # files taking the directory's group (FreeBSD; setgid on Linux).
    os.chown(sd, 0, gid)
    os.chmod(sd, 0o2750)
    d = Daemon(sd, ["--group", member["group"]]).start()
    try:
        write_some(d)
        assert stat.S_IMODE(os.stat(sd).st_mode) & 0o777 == 0o750
        for p in daemon_files(sd):
            st = os.lstat(p)
            assert stat.S_ISREG(st.st_mode) and st.st_gid == gid, p
            assert mode(p) == 0o600, "%s is %o" % (p, mode(p))
            r = as_member(member, "/bin/cat", p)
            assert r.returncode != 0 and "Permission denied" in r.stderr, (p, r)
        assert mode(os.path.join(sd, "sessions")) & 0o777 == 0o700  # setgid inherited
        r = as_member(member, "/bin/ls", os.path.join(sd, "sessions"))
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        # The member still connects: the directory holding the socket is traversable.
        r = as_member(member, "/usr/bin/python3", "-c", STATUS, d.socket)
        assert r.stdout.strip() == "True", r
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


@needs_root
def test_wider_files_of_an_older_daemon_are_narrowed(member, world_dir):
    sd = os.path.join(world_dir, "state")
    d = Daemon(sd, ["--group", member["group"]]).start()
    write_some(d)
    assert d.stop() == 0
    db = os.path.join(sd, "colibri.sqlite")
    os.chmod(db, 0o644)
    os.chmod(db + ".lock", 0o644)
    d = Daemon(sd, ["--group", member["group"]]).start()
    try:
        write_some(d)
        for p in daemon_files(sd):
            assert mode(p) == 0o600, "%s is %o" % (p, mode(p))
            r = as_member(member, "/bin/cat", p)
            assert r.returncode != 0, (p, r)
        assert d.call("status")["counts"]["tasks"]["open"] == 40
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


@needs_root
def test_state_dir_without_the_socket_is_0700(member, world_dir):
    sd = os.path.join(world_dir, "state")
    run = os.path.join(world_dir, "run")
    os.makedirs(sd, mode=0o750)
    d = Daemon(sd, ["--group", member["group"], "--socket", os.path.join(run, "colibri.sock")])
    d.socket = os.path.join(run, "colibri.sock")
    d.start()
    try:
        write_some(d)
        assert mode(sd) == 0o700
        assert "%s had mode 0750; setting 0700" % sd in d.read_log()
        assert mode(run) == 0o750
        r = as_member(member, "/bin/ls", sd)
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        r = as_member(member, "/usr/bin/python3", "-c", STATUS, d.socket)
        assert r.stdout.strip() == "True", r
        for p in daemon_files(sd):
            assert mode(p) == 0o600, p
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


# ---- --sync --------------------------------------------------------------------

def test_sync_default_is_normal(make_daemon):
    d = make_daemon()
    assert d.call("status")["sync"] == "normal"
    assert "sync normal" in d.read_log()


def test_sync_full_is_read_back(make_daemon):
    d = make_daemon(extra_args=["--sync", "full"])
    assert d.call("status")["sync"] == "full"
    write_some(d)
    assert d.call("status")["sync"] == "full"
    assert "sync full" in d.read_log()
    d.stop()
    d = make_daemon(name="state2", extra_args=["--sync", "normal"])
    assert d.call("status")["sync"] == "normal"


@pytest.mark.parametrize("bad", ["FULL", "off", "extra", ""])
def test_sync_bad_value_is_a_usage_error(tmp_path, bad):
    p = subprocess.run([bin_path("colibri-daemon"), "--state-dir", str(tmp_path / "s"),
                        "--foreground", "--sync", bad], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, (p.returncode, p.stderr)  # EXIT_USAGE
    assert "--sync wants normal or full" in p.stderr
    assert not os.path.exists(tmp_path / "s" / "colibri.sock")
