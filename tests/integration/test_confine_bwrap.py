"""Confined spawns end to end through confine-try (tests/unit/test_confine_try.c).

Real bubblewrap: the generated argv runs a command that sees its env from
env.sh and its cwd, cannot write outside its root, cannot see host
processes, shares the host's network unless ip4 is "disable"/"none", and leaves no stage
behind.
FreeBSD argv: COLIBRI_CONFINE=freebsd-jail with stand-in jexec/jail that
emulate a jail with bubblewrap (standins/standin.py), to check the in-jail
stage path and that the status file recovers the exit code jail -c loses.
"""
import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import BUILD

HERE = os.path.dirname(os.path.abspath(__file__))
TRY = os.path.join(BUILD, "tests", "unit", "confine-try")


def bwrap_works():
    try:
        return subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")


class Try:
    def __init__(self, tmp):
        self.tmp = tmp
        self.root = os.path.join(tmp, "jails", "a", "root")
        os.makedirs(self.root, mode=0o755)
        self.result_path = os.path.join(tmp, "result.json")

    def run(self, cmd, jail=None, env=None, cwd=None, extra_env=None, sid="a1"):
        jail = jail if jail is not None else {"path": self.root}
        args = [TRY, "--id", sid, "--jail", json.dumps(jail), "--result", self.result_path]
        if env is not None:
            args += ["--env", json.dumps(env)]
        if cwd is not None:
            args += ["--cwd", cwd]
        e = dict(os.environ)
        for k in ("COLIBRI_CONFINE", "COLIBRI_JAIL_PRIV_MODE", "COLIBRI_JAIL_STAGE_DIR",
                  "COLIBRI_JAIL_ROOT_BASE"):
            e.pop(k, None)
        e.update(extra_env or {})
        p = subprocess.run(args + ["--"] + cmd, capture_output=True, env=e, timeout=60)
        assert p.returncode == 0, p.stderr
        with open(self.result_path) as f:
            self.result = json.load(f)
        return p


@pytest.fixture
def t(tmp_path):
    return Try(str(tmp_path))


def test_env_cwd_and_status(t):
    work = os.path.join(t.root, "work")
    os.makedirs(work)
    hostile = "it's $(id) `id` \\ -n\nline2 ✓"
    p = t.run(["/bin/sh", "-c", 'printf "%s|%s|%s" "$VAL" "$(pwd)" "$HOME"; exit 7'],
              env={"VAL": hostile, "EMPTY": ""}, cwd=work)
    assert p.stdout.decode() == "%s|%s|%s" % (hostile, work, t.root + "/home/clawdie")
    r = t.result
    assert r["argv"][0] == "bwrap"
    assert (r["status"], r["exit_code"]) == ("exited", 7)
    assert r["removed"] is True
    assert not os.path.exists(r["stage"])
    # The daemon's own environment does not leak in (--clearenv + env.sh).
    os.environ["COLIBRI_LEAK_CHECK"] = "leaked"
    try:
        p = t.run(["/bin/sh", "-c", 'printf "%s" "${COLIBRI_LEAK_CHECK-unset}"'])
    finally:
        del os.environ["COLIBRI_LEAK_CHECK"]
    assert p.stdout == b"unset"


def test_cannot_write_outside_root(t, tmp_path):
    outside = tmp_path / "outside.txt"
    p = t.run(["/bin/sh", "-c",
               'echo in > "$1/inside.txt"; echo out > "$2" 2>/dev/null; '
               'touch /usr/colibri-x 2>/dev/null && echo usr-writable; '
               'touch /etc/colibri-x 2>/dev/null && echo etc-writable; '
               'touch /colibri-x 2>/dev/null && echo root-writable; exit 0',
               "sh", t.root, str(outside)])
    assert b"writable" not in p.stdout
    assert open(os.path.join(t.root, "inside.txt")).read() == "in\n"
    assert not outside.exists()
    assert not os.path.exists("/usr/colibri-x") and not os.path.exists("/etc/colibri-x")


def test_cannot_see_host_processes(t):
    marker = "31.4159265"
    sleeper = subprocess.Popen(["sleep", marker])
    try:
        p = t.run(["/bin/sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; "
                   "ls -d /proc/[0-9]* | wc -l"])
        out = p.stdout.decode()
        assert marker not in out
        assert int(out.strip().splitlines()[-1]) < 10
        assert os.path.exists("/proc/%d" % sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def connect_cmd(port):
    return ["/usr/bin/python3", "-c",
            "import socket,sys\n"
            "try:\n socket.create_connection(('127.0.0.1', %d), 2); print('connected')\n"
            "except OSError as e:\n print('refused', e)\n" % port]


def test_network_inherited_unless_cut(t):
    # issue 17: an unset ip4 inherits the host's network as on FreeBSD;
    # "disable" (or "none") cuts it.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    try:
        p = t.run(connect_cmd(port))
        assert p.stdout.startswith(b"connected"), p.stdout
        p = t.run(connect_cmd(port), jail={"path": t.root, "ip4": "none"})
        assert p.stdout.startswith(b"refused"), p.stdout
        assert "--share-net" not in t.result["argv"]
        p = t.run(connect_cmd(port), jail={"path": t.root, "ip4": "127.0.0.1"})
        assert p.stdout.startswith(b"connected"), p.stdout
        assert "--share-net" in t.result["argv"]
        p = t.run(connect_cmd(port), jail={"path": t.root, "ip4": "disable"})
        assert p.stdout.startswith(b"refused"), p.stdout
    finally:
        srv.close()


def test_killed_agent_and_leftovers_removed(t):
    t.run(["/bin/sh", "-c", "mkdir -p d/e; ln -s /etc/passwd d/link; "
           "cd \"${0%/*}\" 2>/dev/null; kill -KILL $$"])
    assert (t.result["status"], t.result["signal"]) == ("signaled", 9)
    assert t.result["removed"] is True
    assert os.path.exists("/etc/passwd")


def test_stage_override_outside_root_is_bound(t, tmp_path):
    base = tmp_path / "stages"
    base.mkdir(mode=0o700)
    p = t.run(["/bin/sh", "-c", 'printf %s "$V"'], env={"V": "via override"},
              extra_env={"COLIBRI_JAIL_STAGE_DIR": str(base)})
    assert p.stdout == b"via override"
    assert t.result["stage"] == str(base / "a1")
    assert t.result["jail_dir"] is None
    assert t.result["removed"] is True


# ---- the FreeBSD argv, end to end with stand-ins ----------------------------

@pytest.fixture
def freebsd(t, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("jexec", "jail"):
        shutil.copy(os.path.join(HERE, "standins", "standin.py"), bindir / name)
        os.chmod(bindir / name, 0o755)
    (bindir / "jails.json").write_text(json.dumps({"box": t.root}))
    env = {"COLIBRI_CONFINE": "freebsd-jail", "COLIBRI_JAIL_PRIV_MODE": "none",
           "COLIBRI_JAIL_ROOT_BASE": str(tmp_path / "jails"),
           "PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))}
    return env, bindir


def test_freebsd_jexec_end_to_end(t, freebsd):
    env, bindir = freebsd
    p = t.run(["/bin/sh", "-c", 'printf "%s|%s" "$V" "$(pwd)"; exit 7'],
              jail={"name": "box", "root_path": t.root}, env={"V": "in jail"},
              cwd="/home/clawdie", extra_env=env)
    assert p.stdout == b"in jail|/home/clawdie"
    r = t.result
    assert r["argv"] == ["jexec", "box", "/bin/sh",
                         "/home/clawdie/.cache/colibri/stage/a1/launch.sh"]
    assert (r["status"], r["exit_code"], r["wrapper_exit"]) == ("exited", 7, 7)
    assert r["removed"] is True


def test_freebsd_jail_c_loses_code_stage_keeps_it(t, freebsd):
    env, _ = freebsd
    t.run(["/bin/sh", "-c", "exit 5"], jail={"path": t.root, "ip4": "10.0.0.3"},
          extra_env=env)
    r = t.result
    assert r["argv"][:5] == ["jail", "-c", "path=" + t.root, "name=colibri-root",
                             "ip4.addr=10.0.0.3"]
    assert r["argv"][-2:] == ["command=/bin/sh",
                              "/home/clawdie/.cache/colibri/stage/a1/launch.sh"]
    assert r["wrapper_exit"] == 0
    assert (r["status"], r["exit_code"]) == ("exited", 5)


def test_freebsd_jexec_failure_is_not_agent_status(t, freebsd):
    env, _ = freebsd
    t.run(["/bin/sh", "-c", "exit 0"], jail={"name": "nosuch", "root_path": t.root},
          extra_env=env)
    assert t.result["wrapper_exit"] == 1
    assert t.result["status"] == "unknown"
    assert t.result["removed"] is True


def test_freebsd_root_outside_base_refused(t, freebsd, tmp_path):
    env, _ = freebsd
    other = tmp_path / "other"
    other.mkdir()
    args = [TRY, "--jail", json.dumps({"name": "box", "root_path": str(other)}), "--",
            "/bin/true"]
    p = subprocess.run(args, capture_output=True, env=dict(os.environ, **env), timeout=30)
    assert p.returncode == 1
    assert b"not strictly under" in p.stderr
