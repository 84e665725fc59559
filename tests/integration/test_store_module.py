"""The PostgreSQL backend as a module loaded on demand (issue 16).

colibri-daemon does not link libpq: the PostgreSQL backend is a shared
module, store-postgres.so, that the daemon loads with dlopen only when
--store names a PostgreSQL URL.  These tests hold that promise and its
errors:

- an idle daemon on its SQLite file maps neither the module nor libpq (its
  small RSS); a daemon on PostgreSQL (the integration-pg suite) maps both;
- a daemon that is not the build tree's own binary and finds no module
  refuses --store with an error naming the packages to install;
- a module that does not load (here a file that is not a library) is
  refused with the loader's reason and the libpq packages to install;
- COLIBRI_STORE_MODULE_DIR points such a daemon at a module, and then
  --version lists the postgres store.
"""
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, STORE, Conn, bin_path

MODULE = os.path.join(BUILD, "src", "store", "store-postgres.so")
PG_URL = "postgresql:///colibri_none?host=/nonexistent-colibri-socket-dir"


def maps_of(pid):
    path = "/proc/%d/maps" % pid
    if not os.path.exists(path):
        pytest.skip("no /proc/PID/maps on this system")
    with open(path) as f:
        return f.read()


def idle_daemon(tmp_path, extra=()):
    state = str(tmp_path / "state")
    p = subprocess.Popen([bin_path("colibri-daemon"), "--state-dir", state, "--foreground",
                          "--allow-unconfined"] + list(extra),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        assert p.poll() is None, "daemon exited %s" % p.returncode
        try:
            c = Conn(os.path.join(state, "colibri.sock"))
            c.call("status")
            c.close()
            return p
        except (OSError, ConnectionError):
            assert time.time() < deadline, "daemon did not come up"
            time.sleep(0.02)


def stop(p):
    p.terminate()
    assert p.wait(timeout=15) == 0


def test_sqlite_daemon_maps_no_libpq(tmp_path):
    p = idle_daemon(tmp_path, ["--db", str(tmp_path / "own.sqlite")])
    try:
        maps = maps_of(p.pid)
        assert "libpq" not in maps
        assert "store-postgres" not in maps
        assert "colibri-daemon" in maps  # the maps of the daemon itself
    finally:
        stop(p)


@pytest.mark.skipif(not STORE, reason="needs COLIBRI_STORE (the integration-pg suite)")
def test_postgres_daemon_maps_the_module(tmp_path):
    from conftest import pg_fresh_db
    p = idle_daemon(tmp_path, ["--store", pg_fresh_db(STORE, str(tmp_path))])
    try:
        maps = maps_of(p.pid)
        assert "store-postgres.so" in maps
        assert "libpq" in maps
    finally:
        stop(p)


def copied_daemon(tmp_path):
    """The daemon copied out of the build tree: it no longer looks in the build's src/store."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = str(d / "colibri-daemon")
    shutil.copy2(bin_path("colibri-daemon"), exe)
    return exe


def run(exe, args, moddir, tmp_path):
    env = dict(os.environ, COLIBRI_STORE_MODULE_DIR=str(moddir))
    return subprocess.run([exe, "--state-dir", str(tmp_path / "state"), "--foreground"] + args,
                          env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def installed_module(exe, tmp_path):
    """Is a module installed where this daemon would find it (then 'missing' cannot be shown)?"""
    empty = tmp_path / "probe-empty"
    empty.mkdir()
    out = run(exe, ["--version"], empty, tmp_path).stdout
    return "postgres" in out.split("stores:", 1)[-1]


def test_missing_module_names_the_package(tmp_path):
    exe = copied_daemon(tmp_path)
    if installed_module(exe, tmp_path):
        pytest.skip("a PostgreSQL module is installed on this host")
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run(exe, ["--store", PG_URL], empty, tmp_path)
    assert p.returncode == 1, p.stderr
    assert "no PostgreSQL backend" in p.stderr
    assert "store-postgres.so is missing" in p.stderr
    assert "PostgreSQL module" in p.stderr and "libpq5" in p.stderr
    assert "postgresqlNN-client" in p.stderr
    # A daemon that cannot load the module says so in --version too.
    v = run(exe, ["--version"], empty, tmp_path)
    assert v.returncode == 0
    assert v.stdout.split("stores:", 1)[-1].strip(" )\n") == "sqlite"


def test_broken_module_is_refused_with_the_reason(tmp_path):
    exe = copied_daemon(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "store-postgres.so").write_text("not a shared library\n")
    p = run(exe, ["--store", PG_URL], bad, tmp_path)
    assert p.returncode == 1, p.stderr
    assert "no PostgreSQL backend: install libpq (Debian: libpq5" in p.stderr
    assert str(bad / "store-postgres.so") in p.stderr


@pytest.mark.skipif(not os.path.exists(MODULE), reason="this build has no PostgreSQL module")
def test_module_dir_points_at_the_module(tmp_path):
    exe = copied_daemon(tmp_path)
    v = run(exe, ["--version"], os.path.dirname(MODULE), tmp_path)
    assert v.returncode == 0
    assert "stores: sqlite postgres" in v.stdout
    # The module loads, then the URL is tried: the error is the connection's, not the loader's.
    p = run(exe, ["--store", PG_URL], os.path.dirname(MODULE), tmp_path)
    assert p.returncode == 1
    assert "no PostgreSQL backend" not in p.stderr
    assert "nonexistent-colibri-socket-dir" in p.stderr
