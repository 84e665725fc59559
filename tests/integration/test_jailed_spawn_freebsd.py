"""The FreeBSD jail path end to end through a real daemon, on Linux.

COLIBRI_CONFINE=freebsd-jail makes the daemon build the jexec / jail -c argv
with the privilege prefix of COLIBRI_JAIL_PRIV_MODE; stand-in jexec, jail,
mdo and sudo (standins/) come first on the daemon's PATH, record their argv,
environment and a snapshot of the stage, and run the command (chroot-less:
see standins/jexec).  Checked for every privilege mode and both jail kinds:
the exact argv, env.sh and launch.sh (modes, content) while the agent ran,
the agent's real exit status in the glasspane although `jail -c` exits 0 on
its own, and the stage removed afterwards.

The helper mode is covered by test_helper_mode_in_a_mount_namespace, which
shows the daemon the built colibri-jail-spawn at its compiled-in path in a
private mount namespace (root only).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, Daemon, bin_path
from test_jailed_spawn_helpers import (STAGE_REL, copy_standins, jail_env, stage_dir,
                                       standin_calls)
from test_supervision_helpers import TOOLS, Watch, agent_bin, wait_gone

LAUNCH_REL = "/" + STAGE_REL + "/%s/launch.sh"
HOSTILE = "it's $(id) `id` \\ -n\nline2 \u2713"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Jails:
    """A root base with one jail root, stand-ins on PATH, and a daemon per mode."""

    def __init__(self, tmp, make_daemon):
        self.tmp = tmp
        self.base = os.path.join(tmp, "jails")
        self.root = os.path.join(self.base, "box")
        os.makedirs(self.root)
        self.bindir = copy_standins(os.path.join(tmp, "bin"))
        with open(os.path.join(self.bindir, "jails.json"), "w") as f:
            json.dump({"box": self.root}, f)
        self.make_daemon = make_daemon

    def daemon(self, mode):
        env = jail_env({"COLIBRI_CONFINE": "freebsd-jail", "COLIBRI_JAIL_PRIV_MODE": mode,
                        "COLIBRI_JAIL_ROOT_BASE": self.base})
        env["PATH"] = self.bindir + ":" + env["PATH"]
        return self.make_daemon(name="state-" + mode, env=env)

    def calls(self):
        return standin_calls(self.bindir)


@pytest.fixture
def jails(tmp_path, make_daemon):
    return Jails(str(tmp_path), make_daemon)


def expected_argv(mode, jail, aid):
    launch = LAUNCH_REL % aid
    if "name" in jail:
        core = ["jexec"] + (["-U", jail["user"]] if "user" in jail else []) + [jail["name"]]
        core += ["/bin/sh", launch]
    else:
        ip4 = jail.get("ip4")
        core = ["jail", "-c", "path=" + jail["path"],
                "name=colibri-" + os.path.basename(jail["path"]),
                "ip4.addr=" + ip4 if ip4 not in (None, "inherit", "disable") else
                "ip4=" + (ip4 or "inherit")]
        core += (["exec.jail_user=" + jail["user"]] if "user" in jail else [])
        core += ["command=/bin/sh", launch]
    prefix = {"mdo": ["mdo", "-u", "root"], "sudo": ["sudo", "-n"], "none": []}[mode]
    return prefix + core


def run_agent(d, jail, aid, scenario, env=None, cwd=None):
    w = Watch(d)
    args = {"binary": agent_bin(), "args": ["--scenario", scenario], "jail": jail, "id": aid}
    if env is not None:
        args["env"] = env
    if cwd is not None:
        args["cwd"] = cwd
    d.call("spawn-local", args)
    st = wait_gone(d, aid)
    ex = w.wait_exited(aid)
    return st, ex["data"]


def check_payload(call, aid, cwd):
    stage = call["stage"]
    assert stage["."]["mode"] == "0700"
    assert set(stage) == {".", "env.sh", "launch.sh"}, "no status yet while the agent runs"
    assert stage["env.sh"]["mode"] == "0600" and stage["launch.sh"]["mode"] == "0600"
    env_lines = stage["env.sh"]["content"].split("\nexport ")[1:]
    names = [line.split("=", 1)[0] for line in env_lines]
    assert names == sorted(names) == ["COLIBRI_AGENT_ID", "COLIBRI_FD", "COLIBRI_SESSION_ID",
                                      "EMPTY", "VAL"]
    assert "export COLIBRI_FD='3'\n" in stage["env.sh"]["content"]  # the agent channel
    assert "export VAL='it'\\''s $(id) `id` \\ -n\nline2 \u2713'\n" in stage["env.sh"]["content"]
    assert "export COLIBRI_AGENT_ID='%s'\n" % aid in stage["env.sh"]["content"]
    launch = stage["launch.sh"]["content"]
    assert ". \"${0%/*}/env.sh\"" in launch
    assert "cd '%s' ||" % cwd in launch
    # local runs exactly binary + args: no provider flags (issue 17).
    assert "'%s' '--scenario' 'crash'\n" % agent_bin() in launch


JAILS = [
    pytest.param(lambda r: {"name": "box", "root_path": r}, id="jexec"),
    pytest.param(lambda r: {"name": "box", "root_path": r, "user": "clawdie"}, id="jexec-user"),
    pytest.param(lambda r: {"path": r}, id="jail-c"),
    pytest.param(lambda r: {"path": r, "ip4": "10.0.0.3", "user": "clawdie"}, id="jail-c-ip4"),
]


@pytest.mark.parametrize("mode", ["mdo", "sudo", "none"])
@pytest.mark.parametrize("make_jail", JAILS)
def test_argv_payload_status_and_cleanup(jails, mode, make_jail):
    d = jails.daemon(mode)
    jail = make_jail(jails.root)
    # Chroot-less emulation: the cwd must exist on the host too (see standins/jexec).
    st, ex = run_agent(d, jail, "fb1", "crash", env={"VAL": HOSTILE, "EMPTY": ""},
                       cwd=jails.root)
    # The agent's own status (3), although `jail -c` exits 0 and mdo/sudo/jexec exec.
    assert (st["state"], st["reason"], st["exit_code"]) == ("error", "exited with status 3", 3), st
    assert (ex["exit_code"], ex["signal"]) == (3, None)
    calls = jails.calls()
    argv = expected_argv(mode, jail, "fb1")
    assert [c["prog"] for c in calls] == [argv[0]] + (["jexec" if "name" in jail else "jail"]
                                                      if mode != "none" else [])
    assert calls[0]["argv"] == argv[1:]
    # The wrapper gets PATH only: nothing of the daemon's environment (COLIBRI_*).
    assert calls[0]["env"] == {"PATH": PATH_ENV[5:]}
    inner = calls[-1]
    assert inner["root"] == jails.root
    assert inner["cmd"] == ["/bin/sh", jails.root + LAUNCH_REL % "fb1"]
    check_payload(inner, "fb1", jails.root)
    assert not os.path.exists(stage_dir(jails.root, "fb1"))
    assert os.listdir(os.path.join(jails.root, STAGE_REL)) == []


@pytest.mark.parametrize("make_jail", JAILS[::2])
def test_clean_exit_is_done(jails, make_jail):
    d = jails.daemon("mdo")
    st, ex = run_agent(d, make_jail(jails.root), "fb2", "text")
    assert (st["state"], st["reason"], st["exit_code"]) == ("done", "exited cleanly", 0), st
    assert st["usage"]["input"] == 42 and st["turns"] == 1
    lines = d.call("session-read", id="fb2", since=0, limit=100)["lines"]
    assert any('"agent_end"' in line for line in lines)
    assert not os.path.exists(stage_dir(jails.root, "fb2"))


def test_model_error_reaches_the_glasspane(jails):
    d = jails.daemon("sudo")
    st, _ = run_agent(d, {"path": jails.root}, "fb3", "model-error")
    assert (st["state"], st["reason"]) == ("error", "400 colibri-test-agent: model refuses")


def test_jexec_failure_is_not_the_agents_status(jails):
    """jexec exits 1 itself for an unknown jail: no agent ran, so no status 1 is claimed."""
    d = jails.daemon("mdo")
    st, ex = run_agent(d, {"name": "nosuch", "root_path": jails.root}, "fb4", "text")
    assert st["state"] == "error", st
    assert st["reason"] != "exited with status 1"
    assert "no agent status" in st["reason"], st
    assert [c["prog"] for c in jails.calls()] == ["mdo", "jexec"]
    assert not os.path.exists(stage_dir(jails.root, "fb4"))


def test_shell_killed_inside_jail_c_is_not_done(jails, tmp_path):
    """jail -c exits 0 even when launch.sh itself died: that must not read as done."""
    agent = tmp_path / "kill-parent.sh"
    agent.write_text("#!/bin/sh\nkill -KILL $PPID\nsleep 1\n")
    agent.chmod(0o755)
    d = jails.daemon("none")
    w = Watch(d)
    d.call("spawn-local", {"binary": str(agent), "jail": {"path": jails.root}, "id": "fb5"})
    st = wait_gone(d, "fb5")
    w.wait_exited("fb5")
    assert st["state"] == "error", st
    assert "no agent status" in st["reason"], st
    assert not os.path.exists(stage_dir(jails.root, "fb5"))


def test_root_outside_the_base_is_refused(jails, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    d = jails.daemon("mdo")
    r = d.connect().request("spawn-local", {"binary": agent_bin(), "id": "fb6",
                                            "jail": {"name": "box", "root_path": str(other)}})
    assert not r["ok"] and "not strictly under" in r["error"]["message"], r
    assert jails.calls() == []
    assert not (other / "home").exists()


# ---- helper mode: the built colibri-jail-spawn at its compiled-in path ----------

NS_SETUP = r"""
set -e
# Private mounts only (unshare --mount --propagation private): the host is untouched.
helper_dir="$1" upper="$2" work="$3" jails="$4"; shift 4
mount -t tmpfs -o mode=0755 colibri-test /usr/local
mkdir -p /usr/local/libexec /usr/local/bastille/jails
cp "$helper_dir/colibri-jail-spawn" /usr/local/libexec/colibri-jail-spawn
mount --bind "$jails" /usr/local/bastille/jails
mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$upper,workdir=$work" /usr/sbin
exec "$@"
"""


def libexecdir():
    """COLIBRI_LIBEXECDIR of the build: prefix/libexecdir from meson's introspection."""
    p = subprocess.run(["meson", "introspect", BUILD, "--buildoptions"], capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        return None
    opts = {o["name"]: o["value"] for o in json.loads(p.stdout)}
    return os.path.join(opts["prefix"], opts["libexecdir"])


class NsDaemon(Daemon):
    """A daemon started inside a private mount namespace prepared by NS_SETUP."""

    def __init__(self, state_dir, env, ns_args):
        super().__init__(state_dir, env=env)
        self.ns_args = ns_args

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", NS_SETUP, "ns"]
            + self.ns_args + [bin_path("colibri-daemon"), "--state-dir", self.state_dir,
                              "--foreground", "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_ready()
        return self


def helper_mode_possible():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare (a private mount namespace)"
    if libexecdir() != "/usr/local/libexec":
        return "the build's libexecdir is not /usr/local/libexec (the namespace mounts there)"
    return None


@pytest.mark.skipif(helper_mode_possible() is not None, reason=str(helper_mode_possible()))
@pytest.mark.parametrize("kind", ["exec", "create"])
def test_helper_mode_in_a_mount_namespace(tmp_path, kind):
    """COLIBRI_JAIL_PRIV_MODE=helper: daemon -> colibri-jail-spawn -> jexec/jail, for real.

    In the daemon's own mount namespace /usr/local is a tmpfs holding the built
    helper at /usr/local/libexec/colibri-jail-spawn (the compiled-in path) and
    the default root base /usr/local/bastille/jails (bound from tmp_path); the
    stand-in jexec and jail appear in /usr/sbin through an overlay, where the
    helper (which clears the environment and ignores PATH) finds them.
    """
    jails = tmp_path / "jails"
    (jails / "box").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(jails, 0o755)
    os.chmod(jails / "box", 0o755)
    upper, work = tmp_path / "upper", tmp_path / "work"
    work.mkdir()
    copy_standins(str(upper))
    ns_root = "/usr/local/bastille/jails/box"
    (upper / "jails.json").write_text(json.dumps({"box": ns_root}))
    env = jail_env({"COLIBRI_CONFINE": "freebsd-jail", "COLIBRI_JAIL_PRIV_MODE": "helper"})
    d = NsDaemon(str(tmp_path / "state"), env,
                 [os.path.dirname(bin_path("colibri-jail-spawn")), str(upper), str(work),
                  str(jails)]).start()
    try:
        jail = ({"name": "box", "root_path": ns_root, "user": "clawdie"} if kind == "exec"
                else {"path": ns_root, "ip4": "disable", "user": "agent"})
        st, ex = run_agent(d, jail, "hm1", "crash", env={"VAL": HOSTILE, "EMPTY": ""},
                           cwd=ns_root)
        assert (st["state"], st["reason"], st["exit_code"]) == ("error", "exited with status 3",
                                                               3), st
        calls = standin_calls(str(upper))
        assert len(calls) == 1, calls
        launch = LAUNCH_REL % "hm1"
        if kind == "exec":
            assert (calls[0]["prog"], calls[0]["argv"]) == (
                "jexec", ["-U", "clawdie", "box", "/bin/sh", launch])
        else:
            assert (calls[0]["prog"], calls[0]["argv"]) == (
                "jail", ["-c", "path=" + ns_root, "name=colibri-box", "ip4=disable",
                         "exec.jail_user=agent", "command=/bin/sh", launch])
        # The helper's environment, not the daemon's wrapper PATH: it went through the helper.
        assert calls[0]["env"] == {
            "PATH": "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"}
        check_payload(calls[0], "hm1", ns_root)
        assert os.listdir(jails / "box" / STAGE_REL) == []
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]


def cli_or_skip():
    try:
        return bin_path("colibri")
    except FileNotFoundError:
        pytest.skip("the colibri CLI is not built")


def test_cli_jail_flags(jails):
    """colibri spawn-local --jail-name/--jail-root/--jail-user and --jail-path/--jail-ip4."""
    cli_or_skip()
    d = jails.daemon("mdo")
    r = d.cli("spawn-local", agent_bin(), "--id", "cl1", "--jail-name", "box", "--jail-root",
              jails.root, "--jail-user", "clawdie", "--env", "TEST_AGENT_SCENARIO=crash")
    assert r.returncode == 0, r.stderr
    st = wait_gone(d, "cl1")
    assert (st["state"], st["reason"]) == ("error", "exited with status 3"), st
    r = d.cli("spawn-local", agent_bin(), "--id", "cl2", "--jail-path", jails.root,
              "--jail-ip4", "10.0.0.3")
    assert r.returncode == 0, r.stderr
    assert wait_gone(d, "cl2")["state"] == "done"
    calls = [c for c in jails.calls() if c["prog"] == "mdo"]
    assert calls[0]["argv"] == expected_argv(
        "mdo", {"name": "box", "root_path": jails.root, "user": "clawdie"}, "cl1")[1:]
    assert calls[1]["argv"] == expected_argv(
        "mdo", {"path": jails.root, "ip4": "10.0.0.3"}, "cl2")[1:]
    assert os.listdir(os.path.join(jails.root, STAGE_REL)) == []
