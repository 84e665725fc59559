"""colibri-jail-spawn, the setuid helper, driven against stand-in jexec/jail.

The helper runs unprivileged here (getuid() == geteuid()), which is the only
mode where it honours COLIBRI_JAIL_SPAWN_TEST_BINDIR and
COLIBRI_JAIL_ROOT_BASE; one test installs a setuid copy to show that it then
ignores both.  The stand-ins record their argv and environment in
record.jsonl (see standins/standin.py).
"""
import json
import os
import shutil
import stat
import subprocess

import pytest

from conftest import bin_path

HERE = os.path.dirname(os.path.abspath(__file__))
SAFE_PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
LAUNCH = "/home/clawdie/.cache/colibri/stage/a1/launch.sh"


def make_bindir(d):
    os.makedirs(d, mode=0o755, exist_ok=True)
    for name in ("jexec", "jail"):
        shutil.copy(os.path.join(HERE, "standins", "standin.py"), os.path.join(d, name))
        os.chmod(os.path.join(d, name), 0o755)
    return d


class Helper:
    def __init__(self, tmp):
        self.exe = bin_path("colibri-jail-spawn")
        self.base = os.path.join(tmp, "jails")
        os.makedirs(self.base, mode=0o755)
        os.chmod(tmp, 0o755)
        self.bindir = make_bindir(os.path.join(tmp, "bin"))
        self.record = os.path.join(self.bindir, "record.jsonl")

    def jail_dir(self, name):
        p = os.path.join(self.base, name)
        os.makedirs(p, mode=0o755, exist_ok=True)
        return p

    def run(self, *args, env=None, exe=None):
        e = {"COLIBRI_JAIL_ROOT_BASE": self.base,
             "COLIBRI_JAIL_SPAWN_TEST_BINDIR": self.bindir,
             "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        e.update(env or {})
        return subprocess.run([exe or self.exe] + list(args), env=e, capture_output=True,
                              text=True, timeout=30)

    def calls(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f]


@pytest.fixture
def helper(tmp_path):
    return Helper(str(tmp_path))


def refused(h, r, code, needle):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert needle in r.stderr, r.stderr
    assert r.stderr.startswith("colibri-jail-spawn: ")
    assert h.calls() == [], "nothing may run after a refusal"


def test_exec_builds_jexec_argv(helper):
    r = helper.run("exec", "-U", "clawdie", "box", "--", "/bin/sh", LAUNCH)
    assert r.returncode == 0, r.stderr
    (call,) = helper.calls()
    assert call["prog"] == "jexec"
    assert call["argv"] == ["-U", "clawdie", "box", "/bin/sh", LAUNCH]


def test_create_builds_jail_argv(helper):
    j = helper.jail_dir("dev.box")
    r = helper.run("create", "-4", "10.0.0.7", "-U", "clawdie", j, "--", "/bin/sh", LAUNCH)
    assert r.returncode == 0, r.stderr
    (call,) = helper.calls()
    assert call["prog"] == "jail"
    assert call["argv"] == ["-c", "path=" + j, "name=colibri-dev_box", "ip4.addr=10.0.0.7",
                            "exec.jail_user=clawdie", "command=/bin/sh", LAUNCH]
    helper.run("create", j, "--", "/bin/sh")
    assert helper.calls()[1]["argv"] == ["-c", "path=" + j, "name=colibri-dev_box",
                                         "ip4=inherit", "command=/bin/sh"]


@pytest.mark.parametrize("name,needle", [
    ("a/b", "may contain only"),
    ("../etc", "may contain only"),
    ("a..b", "must not contain \"..\""),
    ("..", "must not contain \"..\""),
    ("123", "all digits"),
    ("x" * 65, "too long"),
])
def test_refuses_bad_names(helper, name, needle):
    refused(helper, helper.run("exec", name, "--", "/bin/sh"), 65, needle)


def test_refuses_path_outside_base(helper, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir(mode=0o755)
    refused(helper, helper.run("create", str(other), "--", "/bin/sh"), 77, "not under the root base")
    refused(helper, helper.run("create", helper.base, "--", "/bin/sh"), 77, "not under the root base")
    refused(helper, helper.run("create", helper.base + "/../bin", "--", "/bin/sh"), 65,
            "\"..\" components")


def test_refuses_path_through_symlink(helper, tmp_path):
    real = helper.jail_dir("real")
    os.symlink(real, os.path.join(helper.base, "alias"))
    refused(helper, helper.run("create", os.path.join(helper.base, "alias"), "--", "/bin/sh"),
            77, "not canonical")
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    os.symlink(str(outside), os.path.join(helper.base, "escape"))
    refused(helper, helper.run("create", os.path.join(helper.base, "escape"), "--", "/bin/sh"),
            77, "not canonical")


def test_refuses_unsafe_directory(helper):
    j = helper.jail_dir("loose")
    os.chmod(j, 0o775)
    refused(helper, helper.run("create", j, "--", "/bin/sh"), 77, "not writable by group")


@pytest.mark.parametrize("args,code,needle", [
    (["exec", "box", "extra", "--", "/bin/sh"], 64, "expected \"--\""),
    (["exec", "box", "/bin/sh"], 64, "expected \"--\""),
    (["exec", "box", "--"], 64, "no program"),
    (["exec", "-4", "10.0.0.1", "box", "--", "/bin/sh"], 64, "expected a jail name"),
    (["exec", "-U", "a", "-U", "b", "box", "--", "/bin/sh"], 64, "given twice"),
    (["exec", "-U"], 64, "needs a value"),
    (["run", "box", "--", "/bin/sh"], 64, "usage"),
    ([], 64, "usage"),
    (["exec", "box", "--", "sh"], 65, "absolute path"),
    (["exec", "-U", "-root", "box", "--", "/bin/sh"], 65, "user"),
    (["create", "-4", "1.2.3", "/x/y", "--", "/bin/sh"], 65, "ip4"),
    (["create", "relative/path", "--", "/bin/sh"], 65, "absolute path"),
])
def test_refuses_malformed_requests(helper, args, code, needle):
    refused(helper, helper.run(*args), code, needle)


def test_clears_hostile_environment(helper):
    hostile = {"LD_PRELOAD": "/nonexistent/evil.so", "LD_LIBRARY_PATH": "/tmp/evil",
               "PATH": "/tmp/evil:/usr/bin:/bin", "IFS": "x", "ENV": "/tmp/evil.sh",
               "COLIBRI_SECRET": "s3cret", "BASH_ENV": "/tmp/evil.sh"}
    r = helper.run("exec", "box", "--", "/bin/sh", "-c", "true", env=hostile)
    assert r.returncode == 0, r.stderr
    (call,) = helper.calls()
    assert call["env"] == {"PATH": SAFE_PATH}


def test_config_file(helper, tmp_path):
    conf = tmp_path / "jail-spawn.conf"
    alt = tmp_path / "alt"
    alt.mkdir(mode=0o755)
    (alt / "j").mkdir(mode=0o755)
    conf.write_text("# root base for jails\n root_base = %s \n" % alt)
    os.chmod(conf, 0o644)
    env = {"COLIBRI_JAIL_SPAWN_CONFIG": str(conf), "COLIBRI_JAIL_ROOT_BASE": ""}
    r = helper.run("create", str(alt / "j"), "--", "/bin/sh", env=env)
    assert r.returncode == 0, r.stderr
    os.chmod(conf, 0o666)
    r = helper.run("create", str(alt / "j"), "--", "/bin/sh", env=env)
    assert r.returncode == 78 and "not writable by group" in r.stderr, r.stderr
    os.chmod(conf, 0o644)
    conf.write_text("root_base = %s\njail_cmd = /bin/evil\n" % alt)
    r = helper.run("create", str(alt / "j"), "--", "/bin/sh", env=env)
    assert r.returncode == 78 and "unknown key jail_cmd" in r.stderr, r.stderr
    assert len(helper.calls()) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to install a setuid copy")
def test_setuid_ignores_caller_environment(helper, tmp_path):
    """Setuid, the helper takes neither the stand-in bin dir nor the root base from
    the caller's environment: it uses its compiled-in base (absent here) and
    /usr/sbin, so nothing the caller prepared runs."""
    copy = tmp_path / "suid" / "colibri-jail-spawn"
    copy.parent.mkdir(mode=0o755)
    shutil.copy(helper.exe, copy)
    os.chown(copy, 65534, 65534)
    os.chmod(copy, 0o4755)
    j = helper.jail_dir("j")
    r = helper.run("create", j, "--", "/bin/sh", exe=str(copy))
    assert r.returncode != 0
    assert "/usr/local/bastille/jails" in r.stderr or "not under the root base" in r.stderr, r.stderr
    r = helper.run("exec", "box", "--", "/bin/sh", exe=str(copy))
    assert r.returncode != 0
    assert helper.calls() == []
    assert stat.S_IMODE(os.stat(copy).st_mode) & stat.S_ISUID
