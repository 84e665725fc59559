"""End to end, confined: the real pi (npm @mariozechner/pi-coding-agent) in
bubblewrap, spawned through the agent profile pi-fake whose API key lives
only in the profile's env file (issue 17, "What must be shown").

The world is pi_world.PiWorld: a root daemon runs the sandbox as nobody,
binds pi's npm package (reached through node_modules/.bin/pi) and node
read-only, and the directory of pi's models.json through the profile's
ro_paths.  The fake provider on 127.0.0.1 answers only requests that carry
the key.  Shown here:

- `colibri spawn-agent pi --profile pi-fake -p ...` (the real CLI) ends
  done with the model's answer in the session log; pi ran as the agent user
  in its own pid namespace with the key in its environment;
- the key is nowhere else: not in the argv of any process while pi runs,
  the state directory's files (the database colibri.sqlite and its WAL,
  the session .jsonl and .stderr), events-read, the daemon's log, the sandbox's files
  after the run, any reply or CLI output;
- with the model fake-400 the run ends error with the provider's message;
- the profile without the env file gets the provider's 401: pi found no
  key anywhere else (it sent the variable's name, its fallback).
- pi's own bash tool runs inside the sandbox too (profile pi-fake-cmd: the
  fake model asks for the prompt as a command): as the agent user, writing
  in the root, not in pi's package, and not seeing the daemon's state or
  configuration directory;
- the daemon's configuration directory (profiles.json, the env file) is
  refused as a read-only path: it is never shown to an agent.
"""
import json
import os
import pwd

import pytest

from fake_openai import ERROR_400, ERROR_401
from pi_world import AGENT_USER, PI, PiWorld, SecretWatch, harness, skip_unless_pi_and_bwrap

skip_unless_pi_and_bwrap()


@pytest.fixture
def world():
    w = PiWorld()
    try:
        yield w
        rc = w.close()
        assert rc == 0, w.daemon.read_log()[-3000:]
    finally:
        w.close()
        w.remove()


def spawn_cli(w, profile, aid, prompt="Say hello"):
    p = w.cli("spawn-agent", "pi", "--profile", profile, "-p", prompt, "--id", aid, "--json")
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)
    assert a["id"] == aid, a
    return a


def test_profile_run_is_done_and_the_key_is_only_in_the_agents_environment(world):
    w = world
    listed = json.loads(w.cli("profiles", "--json").stdout)
    prof = [p for p in listed["profiles"] if p["name"] == "pi-fake"][0]
    assert prof["env_file_names"] == ["FAKE_LLM_KEY"], prof

    aid = "pi-c1-%d" % os.getpid()  # SecretWatch finds its processes by COLIBRI_AGENT_ID
    watch = SecretWatch(w.key, aid)
    try:
        spawn_cli(w, "pi-fake", aid)
        st = w.wait_final(aid)
    finally:
        watch.stop()
    assert (st["state"], st["reason"], st["exit_code"]) == ("done", "exited cleanly", 0), st
    assert st["usage"]["input"] == 12 and st["usage"]["output"] == 6, st["usage"]
    assert any('"Hello from the fake model."' in l for l in w.session(aid))

    # The provider saw the key, on the one request pi made, for the profile's model.
    assert [(r["body"]["model"], r["auth"]) for r in w.fake.requests] == \
        [("fake-text", "Bearer " + w.key)], w.fake.requests

    # pi itself (node, started by launch.sh after it sourced the stage's env.sh)
    # had the key in its environment, and ran confined: as the agent user, in
    # a pid namespace of its own.
    assert watch.scans > 0
    assert watch.in_argv == [], "the key is in a process's argv: %s" % watch.in_argv
    keyed = [pid for pid, has in watch.agent_env.items() if has]
    assert keyed, "no process of the agent had the key in its environment: %s" % watch.agent_env
    owners = {pid: info for pid, info in watch.agent_info.items() if pid in keyed}
    host_pidns = os.stat("/proc/self/ns/pid").st_ino
    for pid, (uid, pidns, exe) in owners.items():
        assert pidns != host_pidns, (pid, exe)
        if os.geteuid() == 0:
            assert uid == pwd.getpwnam(AGENT_USER).pw_uid, (pid, uid, exe)
    assert any(os.path.basename(exe).startswith("node") for uid, pidns, exe in owners.values()), \
        owners

    # Nowhere else.
    w.call("list-agents")
    w.call("session-read", id=aid, limit=100000)
    events = w.cli("events-read", "--after", "0", "--limit", "10000", "--json")
    assert events.returncode == 0, events.stderr
    assert '"%s"' % aid in events.stdout
    w.call("events-read", after=0, limit=10000)
    w.cli("agent-status", aid, "--json")
    w.call("profiles")
    leaks = [r for r in w.replies if w.key in r]
    assert leaks == [], "the key is in a reply or CLI output"
    state = w.daemon.state_dir
    names = os.listdir(state)
    if not harness.STORE:  # SQLite: the database, its WAL and shared memory are searched too
        assert "colibri.sqlite" in names and "colibri.sqlite-wal" in names, names
    sessions = sorted(os.listdir(os.path.join(state, "sessions")))
    assert sessions == [aid + ".jsonl", aid + ".stderr"], sessions
    assert w.files_holding_key(w.conf) == [w.env_file]  # the search finds it where it is
    assert w.files_holding_key(state) == []
    assert w.files_holding_key(w.jail) == [], "the key stayed in the sandbox's files"
    assert w.close() == 0
    assert w.key not in w.daemon.read_log()
    assert w.files_holding_key(state) == []  # the WAL checkpointed into the database at exit


def test_http_400_ends_error(world):
    w = world
    spawn_cli(w, "pi-fake-400", "pi-c400")
    st = w.wait_final("pi-c400")
    assert (st["state"], st["reason"]) == ("error", "400 " + ERROR_400), st
    assert [r["auth"] for r in w.fake.requests] == ["Bearer " + w.key]  # a 400 is not retried


def test_without_the_env_file_the_provider_refuses(world):
    w = world
    spawn_cli(w, "pi-nokey", "pi-c401")
    st = w.wait_final("pi-c401")
    assert (st["state"], st["reason"]) == ("error", "401 " + ERROR_401), st
    # pi's fallback for an unset variable is its name: the key came from nowhere else.
    assert [r["auth"] for r in w.fake.requests] == ["Bearer FAKE_LLM_KEY"], w.fake.requests


def test_the_daemons_configuration_directory_is_never_shown_to_the_agent(world):
    """--config-dir holds profiles.json and the env file: refused as a read-only path."""
    w = world
    p = w.cli("spawn-agent", "pi", "--profile", "pi-fake", "-p", "Say hello", "--id", "pi-cx",
              "--ro-path", w.pi_conf, "--ro-path", w.conf)
    assert p.returncode != 0, p.stdout
    assert "configuration directory" in p.stderr and w.conf in p.stderr, p.stderr
    assert w.call("list-agents")["items"] == [] and w.fake.requests == []


def test_pis_bash_tool_runs_inside_the_sandbox(world):
    w = world
    pkg = os.path.dirname(os.path.realpath(PI))
    cmd = ("echo uid=$(id -u); echo pwd=$PWD; echo made > made-by-pi; touch %s/x; ls -d %s %s; "
           "echo end" % (pkg, w.daemon.state_dir, w.conf))
    spawn_cli(w, "pi-fake-cmd", "pi-tool", prompt=cmd)
    st = w.wait_final("pi-tool")
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    assert st["tool_calls"] == 1, st
    ends = [json.loads(l) for l in w.session("pi-tool") if '"tool_execution_end"' in l]
    assert len(ends) == 1 and ends[0]["toolName"] == "bash", ends
    out = ends[0]["result"]["content"][0]["text"]
    if os.geteuid() == 0:
        assert "uid=%d\n" % pwd.getpwnam(AGENT_USER).pw_uid in out, out
    assert "pwd=%s\n" % w.jail in out, out
    assert "touch: cannot touch '%s/x': Read-only file system" % pkg in out, out
    for hidden in (w.daemon.state_dir, w.conf):
        assert "ls: cannot access '%s': No such file or directory" % hidden in out, out
    assert out.rstrip().endswith("end"), out
    made = os.path.join(w.jail, "made-by-pi")
    with open(made) as f:
        assert f.read() == "made\n"
    if os.geteuid() == 0:
        assert os.stat(made).st_uid == pwd.getpwnam(AGENT_USER).pw_uid
    assert not os.path.exists(os.path.join(pkg, "x"))
