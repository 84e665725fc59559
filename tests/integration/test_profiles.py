"""Agent profiles (issue 17): CONFIG_DIR/profiles.json, spawn-agent's profile,
the profiles command, SIGHUP reload.

A profile spawn of a /bin/sh agent gets the profile's args and env and its
env file's secret in its environment; the secret is in no argv
(/proc/PID/cmdline of the agent), agent row, event, reply or daemon log.
The request's own args and env override the profile's.  The files are held
to the MCP host configuration's strictness: an env file not 0600 or not the
daemon's, a malformed or unknown-keyed profiles file, a reserved env name:
each refuses the start with a clear message (exit 1), and on SIGHUP a bad
file keeps the old profiles.  A member may list profiles and may not spawn
with one.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import Daemon

TAG = "%d" % (os.getpid() % 100000)
SECRET = "sekrit-value-" + TAG

# The agent: its argv (as the kernel holds it), then its environment.
AGENT = """#!/bin/sh
tr '\\0' '\\n' < /proc/$$/cmdline > "$OUT.tmp"
echo ---ENV--- >> "$OUT.tmp"
env >> "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
"""


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


@pytest.fixture
def conf(tmp_path):
    """A config dir with the agent script, an env file and one profile "sh"."""
    cd = tmp_path / "conf"
    cd.mkdir(mode=0o700)
    agent = str(tmp_path / "agent.sh")
    write(agent, AGENT, 0o755)
    envf = str(cd / "sh.env")
    write(envf, "# the provider's key\n\nSECRET_TOKEN=%s\n" % SECRET)
    prof = {"name": "sh", "provider": "local", "binary": agent, "args": ["--from-profile"],
            "env": {"PLAIN_X": "plain-val", "OUT": str(tmp_path / "out-profile")},
            "env_file": envf, "restart": {"max_restarts": 0}, "max_attempts": 2}
    write(str(cd / "profiles.json"), json.dumps({"profiles": [prof]}))
    return {"dir": str(cd), "agent": agent, "envf": envf, "profile": prof, "tmp": tmp_path}


def wait_file(path, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        time.sleep(0.05)
    raise AssertionError("%s never written" % path)


def split_out(text):
    argv, env = text.split("---ENV---\n", 1)
    return argv.splitlines(), dict(l.split("=", 1) for l in env.splitlines() if "=" in l)


def all_logs(d):
    text = d.read_log()
    p = os.path.join(d.state_dir, "colibri.log")
    if os.path.exists(p):
        text += open(p, errors="replace").read()
    return text


def start_fail(tmp_path, conf_dir, name="bad"):
    d = Daemon(tmp_path / name, ["--config-dir", conf_dir])
    d.start(wait=False)
    try:
        rc = d.proc.wait(20)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d.log.close()
    return rc, d.read_log()


def test_profile_spawn_gets_args_env_and_secret_which_leaks_nowhere(make_daemon, conf):
    d = make_daemon(extra_args=["--config-dir", conf["dir"]])
    reply = d.call("spawn-agent", {"profile": "sh", "id": "prof-a"})
    argv, env = split_out(wait_file(str(conf["tmp"] / "out-profile")))
    assert argv[1:] == [conf["agent"], "--from-profile"], argv
    assert env["PLAIN_X"] == "plain-val"
    assert env["SECRET_TOKEN"] == SECRET
    assert all(SECRET not in a for a in argv), "the secret is in the agent's argv"
    assert SECRET not in json.dumps(reply)
    deadline = time.time() + 20
    while d.call("agent-status", {"id": "prof-a"})["state"] not in ("done", "error"):
        assert time.time() < deadline
        time.sleep(0.1)
    row = d.call("agent-status", {"id": "prof-a"})
    assert row["state"] == "done", row
    assert SECRET not in json.dumps(row)
    assert SECRET not in json.dumps(d.call("list-agents"))
    assert SECRET not in json.dumps(d.call("events-read", {"after": 0, "limit": 10000}))
    listed = d.call("profiles")
    assert SECRET not in json.dumps(listed) and "plain-val" not in json.dumps(listed)
    p = listed["profiles"][0]
    assert listed["config_dir"] == conf["dir"]
    assert (p["name"], p["provider"], p["env_file"], p["env_file_names"], p["max_attempts"]) == \
        ("sh", "local", conf["envf"], ["SECRET_TOKEN"], 2)
    assert sorted(p["env_names"]) == ["OUT", "PLAIN_X"]
    cli = d.cli("profiles", "--json")
    assert cli.returncode == 0 and json.loads(cli.stdout)["profiles"][0]["name"] == "sh"
    assert SECRET not in cli.stdout
    assert d.stop() == 0
    assert SECRET not in all_logs(d)


def test_explicit_arguments_override_the_profile(make_daemon, conf):
    d = make_daemon(extra_args=["--config-dir", conf["dir"]])
    out = str(conf["tmp"] / "out-explicit")
    d.call("spawn-agent", {"profile": "sh", "args": ["--explicit"],
                           "env": {"PLAIN_X": "over", "OUT": out}})
    argv, env = split_out(wait_file(out))
    assert argv[1:] == [conf["agent"], "--explicit"], argv
    assert env["PLAIN_X"] == "over" and env["SECRET_TOKEN"] == SECRET
    # the CLI's verb carries the profile too
    out2 = str(conf["tmp"] / "out-cli")
    r = d.cli("spawn-agent", "local", "--profile", "sh", "--env", "OUT=" + out2, "--json")
    assert r.returncode == 0, r.stderr
    argv, env = split_out(wait_file(out2))
    assert argv[1:] == [conf["agent"], "--from-profile"] and env["SECRET_TOKEN"] == SECRET
    # an unknown profile, and neither provider nor profile
    with pytest.raises(Exception) as e:
        d.call("spawn-agent", {"profile": "nope"})
    assert "not_found" in str(e.value)
    with pytest.raises(Exception) as e:
        d.call("spawn-agent", {})
    assert "invalid_argument" in str(e.value)


def test_env_file_not_0600_or_not_ours_refuses_start(tmp_path, conf):
    os.chmod(conf["envf"], 0o644)
    rc, log = start_fail(tmp_path, conf["dir"], "b1")
    assert rc == 1 and "must be mode 0600" in log and conf["envf"] in log, log
    assert SECRET not in log
    os.chmod(conf["envf"], 0o600)
    os.chown(conf["envf"], 65534, -1)
    rc, log = start_fail(tmp_path, conf["dir"], "b2")
    assert rc == 1 and "owned by uid 65534" in log, log


@pytest.mark.parametrize("body,msg", [
    ("{not json", "profiles.json:1"),
    (json.dumps({"profiles": [{"name": "x", "provider": "local", "colour": "red"}]}),
     'unknown key "colour"'),
    (json.dumps({"profiles": [{"name": "x", "provider": "local", "env": {"LD_PRELOAD": "/x"}}]}),
     "LD_PRELOAD is reserved"),
    (json.dumps({"profiles": [{"name": "x", "provider": "local", "model": "m"}]}),
     '"model" is for pi and zot'),
    (json.dumps({"profiles": [{"name": "x", "provider": "nope"}]}), '"provider" must be'),
    (json.dumps({"servers": []}), 'must be {"profiles"'),
])
def test_a_bad_profiles_file_refuses_start(tmp_path, conf, body, msg):
    write(os.path.join(conf["dir"], "profiles.json"), body)
    rc, log = start_fail(tmp_path, conf["dir"])
    assert rc == 1 and msg in log, log


def test_reserved_name_in_the_env_file_refuses_start(tmp_path, conf):
    write(conf["envf"], "COLIBRI_SOCKET=/tmp/x\n")
    rc, log = start_fail(tmp_path, conf["dir"])
    assert rc == 1 and "COLIBRI_SOCKET is reserved" in log, log


def test_group_writable_profiles_file_refuses_start(tmp_path, conf):
    os.chmod(os.path.join(conf["dir"], "profiles.json"), 0o620)
    rc, log = start_fail(tmp_path, conf["dir"])
    assert rc == 1 and "group or others may write it" in log, log


def test_sighup_reloads_and_a_bad_file_keeps_the_old(make_daemon, conf):
    d = make_daemon(extra_args=["--config-dir", conf["dir"]])
    assert [p["name"] for p in d.call("profiles")["profiles"]] == ["sh"]
    path = os.path.join(conf["dir"], "profiles.json")
    write(path, '{"profiles": [{"name": "broken", "provider": "local", "oops": 1}]}')
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 20
    while "profiles not reloaded" not in all_logs(d):
        assert time.time() < deadline, all_logs(d)
        time.sleep(0.05)
    assert 'unknown key "oops"' in all_logs(d)
    assert [p["name"] for p in d.call("profiles")["profiles"]] == ["sh"]
    prof2 = dict(conf["profile"], name="sh2")
    write(path, json.dumps({"profiles": [conf["profile"], prof2]}))
    d.proc.send_signal(signal.SIGHUP)
    while [p["name"] for p in d.call("profiles")["profiles"]] != ["sh", "sh2"]:
        assert time.time() < deadline, all_logs(d)
        time.sleep(0.05)


def test_no_profiles_file_is_no_profiles(make_daemon, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    d = make_daemon(extra_args=["--config-dir", str(empty)])
    assert d.call("profiles") == {"config_dir": str(empty), "profiles": []}


CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for i, (cmd, args) in enumerate(json.loads(sys.argv[2]), 1):
    f.write((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode())
    f.flush()
    print(f.readline().decode().strip(), flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                    or shutil.which("setpriv") is None, reason="needs root, useradd and setpriv")
def test_member_lists_profiles_and_cannot_spawn_with_one(conf):
    g, user = "colibri-pg" + TAG, "colibri-pm" + TAG
    world = tempfile.mkdtemp(prefix="colibri-prof-")
    os.chmod(world, 0o755)
    d = None
    try:
        subprocess.run(["groupadd", "--system", g], check=True, capture_output=True)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", "--groups", g, user], check=True, capture_output=True)
        u = pwd.getpwnam(user)
        d = Daemon(os.path.join(world, "state"), ["--group", g, "--config-dir", conf["dir"]]).start()
        out = str(conf["tmp"] / "out-member")
        steps = [["profiles", {}], ["spawn-agent", {"profile": "sh", "env": {"OUT": out}}]]
        p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                            "--init-groups", "/usr/bin/python3", "-c", CLIENT, d.socket,
                            json.dumps(steps)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        listed, spawned = [json.loads(l) for l in p.stdout.splitlines()]
        assert listed["ok"] and [x["name"] for x in listed["result"]["profiles"]] == ["sh"]
        assert SECRET not in p.stdout
        assert not spawned["ok"] and spawned["error"]["code"] == "permission_denied", spawned
        time.sleep(0.5)
        assert not os.path.exists(out)
    finally:
        if d is not None:
            assert d.stop() == 0, d.read_log()[-3000:]
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        subprocess.run(["groupdel", g], capture_output=True)
        shutil.rmtree(world, ignore_errors=True)


def _bwrap_ok():
    try:
        from test_jailed_spawn_helpers import bwrap_works
        return os.geteuid() == 0 and bwrap_works()
    except ImportError:
        return False


@pytest.mark.skipif(not _bwrap_ok(), reason="needs a root daemon and bubblewrap")
def test_confined_profile_spawn_gets_the_secret_through_env_sh(tmp_path):
    from test_jailed_spawn_helpers import give_to_agent, jail_env, stage_dir
    from test_supervision_helpers import wait_gone
    root = str(tmp_path / "jails" / "box")
    os.makedirs(os.path.join(root, "bin"))
    agent = os.path.join(root, "bin", "agent.sh")
    write(agent, AGENT, 0o755)
    out = os.path.join(root, "out-confined")
    give_to_agent(root)
    cd = tmp_path / "conf"
    cd.mkdir(mode=0o700)
    envf = str(cd / "c.env")
    write(envf, "SECRET_TOKEN=%s\n" % SECRET)
    prof = {"name": "boxed", "provider": "local", "binary": agent, "args": ["--boxed"],
            "env": {"OUT": out}, "env_file": envf, "jail": {"path": root}}
    write(str(cd / "profiles.json"), json.dumps({"profiles": [prof]}))
    d = Daemon(tmp_path / "state", ["--config-dir", str(cd)], env=jail_env(),
               allow_unconfined=False).start()
    try:
        reply = d.call("spawn-agent", {"profile": "boxed", "id": "box1"})
        st = wait_gone(d, "box1")
        assert st["state"] == "done", st
        argv, env = split_out(wait_file(out))
        assert argv[-1] == "--boxed" and env["SECRET_TOKEN"] == SECRET, (argv, env)
        assert all(SECRET not in a for a in argv)
        assert SECRET not in json.dumps(reply) and SECRET not in json.dumps(st)
        assert SECRET not in json.dumps(d.call("events-read", {"after": 0, "limit": 10000}))
        assert not os.path.exists(stage_dir(root, "box1"))
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]
    assert SECRET not in all_logs(d)


def test_model_and_prompt_template_reach_pi_as_flags(tmp_path, conf):
    out = str(tmp_path / "out-pi")
    prof = {"name": "pim", "provider": "pi", "binary": conf["agent"], "args": ["--x"],
            "model": "m-1", "prompt_template": "the template", "env": {"OUT": out}}
    write(os.path.join(conf["dir"], "profiles.json"), json.dumps({"profiles": [prof]}))
    d = Daemon(tmp_path / "state", ["--config-dir", conf["dir"]]).start()
    try:
        assert d.call("profiles")["profiles"][0]["has_prompt_template"] is True
        d.call("spawn-agent", {"profile": "pim"})
        argv, _ = split_out(wait_file(out))
        assert argv[1:] == [conf["agent"], "--mode", "json", "--model", "m-1", "--x", "-p",
                            "the template"], argv
        os.unlink(out)
        d.call("spawn-agent", {"profile": "pim", "prompt": "mine", "args": ["--y"]})
        argv, _ = split_out(wait_file(out))
        assert argv[1:] == [conf["agent"], "--mode", "json", "--model", "m-1", "--y", "-p",
                            "mine"], argv
    finally:
        assert d.stop() == 0, d.read_log()[-3000:]
