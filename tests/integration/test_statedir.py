"""The state directory at start: modes, owners and planted symlinks.

A state or socket directory with a too-open mode is fixed with a log line; one
owned by another uid is refused with a message naming it and a non-zero exit.
A symlink planted where the daemon keeps a file or a directory -- the
database, the sessions directory, a session log before its spawn, the socket,
the vault's directory, the log file -- is refused, and the file or directory
it points at is left exactly as it was.  The ownership cases need root (to
chown to another uid); the others run as anyone.
"""
import os
import stat
import subprocess

import pytest

from conftest import Conn, Daemon, bin_path
from test_supervision_helpers import agent_bin

PRECIOUS = b"precious: not to be written through a symlink\n"


def start_fails(state_dir, *args, timeout=15):
    """Start the daemon on state_dir expecting a refusal; returns its stderr."""
    p = subprocess.run([bin_path("colibri-daemon"), "--state-dir", str(state_dir),
                        "--foreground"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode != 0, p.stderr
    return p.stderr


def target_file(tmp_path):
    t = tmp_path / "elsewhere" / "target"
    t.parent.mkdir()
    t.write_bytes(PRECIOUS)
    os.chmod(t, 0o644)
    return t


def untouched(t):
    st = os.lstat(t)
    return t.read_bytes() == PRECIOUS and stat.S_IMODE(st.st_mode) == 0o644


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


# ---- modes and owners -------------------------------------------------------

def test_open_state_dir_is_fixed_with_a_log_line(tmp_path):
    sd = tmp_path / "state"
    sd.mkdir()
    os.chmod(sd, 0o777)
    d = Daemon(sd).start()
    try:
        assert mode(sd) == 0o750
        assert "%s had mode 0777; setting 0750" % sd in d.read_log()
    finally:
        assert d.stop() == 0


def test_open_socket_dir_is_fixed_with_a_log_line(tmp_path):
    sock_dir = tmp_path / "run"
    sock_dir.mkdir()
    os.chmod(sock_dir, 0o757)
    d = Daemon(tmp_path / "state", ["--socket", str(sock_dir / "colibri.sock")])
    d.socket = str(sock_dir / "colibri.sock")
    d.start()
    try:
        assert mode(sock_dir) == 0o750
        assert mode(d.socket) == 0o660
        assert "socket directory %s had mode 0757; setting 0750" % sock_dir in d.read_log()
    finally:
        assert d.stop() == 0


def test_open_sessions_dir_is_fixed(tmp_path):
    sd = tmp_path / "state"
    (sd / "sessions").mkdir(parents=True)
    os.chmod(sd / "sessions", 0o775)
    d = Daemon(sd).start()
    try:
        # 0700: the socket's group traverses the state dir, not its subdirectories.
        assert mode(sd / "sessions") == 0o700
        assert "sessions had mode 0775; setting 0700" in d.read_log()
    finally:
        assert d.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_state_dir_of_another_uid_is_refused(tmp_path):
    sd = tmp_path / "state"
    sd.mkdir(mode=0o750)
    os.chown(sd, 65534, -1)
    err = start_fails(sd)
    assert "%s belongs to uid 65534, not to the daemon's uid 0" % sd in err, err
    assert os.listdir(sd) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_socket_dir_of_another_uid_is_refused(tmp_path):
    sock_dir = tmp_path / "run"
    sock_dir.mkdir(mode=0o750)
    os.chown(sock_dir, 65534, -1)
    err = start_fails(tmp_path / "state", "--socket", sock_dir / "colibri.sock")
    assert "socket directory %s belongs to uid 65534" % sock_dir in err, err
    assert os.listdir(sock_dir) == []


# ---- planted symlinks -------------------------------------------------------

def test_symlink_database_is_refused(tmp_path):
    t = target_file(tmp_path)
    sd = tmp_path / "state"
    sd.mkdir(mode=0o750)
    os.symlink(t, sd / "colibri.sqlite")
    err = start_fails(sd)
    assert "colibri.sqlite" in err and "symlink" in err, err
    assert untouched(t)


def test_symlink_sessions_dir_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    sd = tmp_path / "state"
    sd.mkdir(mode=0o750)
    os.symlink(elsewhere, sd / "sessions")
    err = start_fails(sd)
    assert "sessions is not a directory (a symlink is refused)" in err, err
    assert os.listdir(elsewhere) == [] and mode(elsewhere) == 0o755


def test_symlink_socket_is_refused(tmp_path):
    t = target_file(tmp_path)
    sd = tmp_path / "state"
    sd.mkdir(mode=0o750)
    os.symlink(t, sd / "colibri.sock")
    err = start_fails(sd)
    assert "colibri.sock exists and is not a socket" in err, err
    assert untouched(t)
    assert os.path.islink(sd / "colibri.sock")


def test_symlink_vault_dir_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    sd = tmp_path / "state"
    sd.mkdir(mode=0o750)
    os.symlink(elsewhere, sd / "vault")
    err = start_fails(sd)
    assert "vault is not a directory (a symlink is refused)" in err, err
    assert os.listdir(elsewhere) == [] and mode(elsewhere) == 0o755


def test_symlink_log_file_is_refused(tmp_path):
    t = target_file(tmp_path)
    sd = tmp_path / "state"
    sd.mkdir(mode=0o750)
    os.symlink(t, sd / "colibri.log")
    err = start_fails(sd, "--log", sd / "colibri.log")
    assert "colibri.log" in err and "symlink" in err, err
    assert untouched(t)


def test_symlink_session_log_is_not_followed(tmp_path):
    """Planted after start, before the spawn: the spawn is refused, the target untouched."""
    t = target_file(tmp_path)
    d = Daemon(tmp_path / "state").start()
    try:
        for suffix in (".jsonl", ".stderr"):
            sid = "planted" + suffix.replace(".", "-")
            os.symlink(t, os.path.join(d.state_dir, "sessions", sid + suffix))
            c = Conn(d.socket)
            try:
                m = c.request("spawn-local", {"binary": agent_bin(), "session_id": sid,
                                             "args": ["--scenario", "text"]})
            finally:
                c.close()
            assert not m["ok"], m
            assert "session file" in m["error"]["message"], m
            assert untouched(t)
        assert [a for a in d.call("list-agents")["items"] if a.get("session_id", "")
                .startswith("planted")] == []
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]
