"""Any local binary means any (issue 17).

The `local` provider runs exactly `binary` + `args`: no `--mode json`, no
`-p PROMPT`.  Those flags belong to pi (and `--json` / the positional prompt
to zot), and they still get them.  A local program hears the spawn's mode and
prompt through the environment instead: COLIBRI_MODE=rpc for an RPC-mode
spawn, COLIBRI_PROMPT when the spawn has a prompt.  A program whose lines
are not agent events is supervised by its process: working from its start,
done on exit 0, error with the exit status otherwise, and every line it prints
kept in the session log as it was written.  colibri-test-agent, given no flag,
speaks pi's JSON events, so the README walk-through runs as written.
"""
import json
import os
import time

import pytest

from conftest import CallError
from test_jailed_spawn_helpers import bwrap_works, give_to_agent, jail_env
from test_supervision_helpers import (Watch, agent_bin, session_lines, status, sup_daemon,
                                      wait_gone, wait_state)

PY = "/usr/bin/python3"


@pytest.fixture
def sup(make_daemon):
    return sup_daemon(make_daemon)


def local(d, binary, args=(), **kw):
    return d.call("spawn-local", dict({"binary": binary, "args": list(args)}, **kw))


def session_bytes(d, a):
    with open(os.path.join(d.state_dir, "sessions", a["session_id"] + ".jsonl"), "rb") as f:
        return f.read()


def test_echo_hello_logs_exactly_hello(sup):
    w = Watch(sup)
    a = local(sup, "/bin/echo", ["hello"])
    assert a["args"] == ["hello"] and a["binary"] == "/bin/echo"
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"], st["exit_code"], st["signal"]) == ("done", "exited cleanly", 0, None), st
    assert session_bytes(sup, a) == b"hello\n"
    assert session_lines(sup, a["id"]) == ["hello"]
    w.wait_final(a["id"])
    assert w.states(a["id"]) == [("idle", "working", "process started", "start"),
                                 ("working", "done", "exited cleanly", "exit")]


def test_echo_hello_through_the_cli(sup):
    r = sup.cli("spawn-local", "/bin/echo", "--id", "echo-cli", "--json", "--", "hello")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["args"] == ["hello"]
    wait_gone(sup, "echo-cli")
    r = sup.cli("session-read", "echo-cli")
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


def test_sh_exit_3_is_error_with_its_status(sup):
    w = Watch(sup)
    a = local(sup, "/bin/sh", ["-c", "exit 3"])
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"], st["exit_code"], st["signal"]) == \
        ("error", "exited with status 3", 3, None), st
    ex = w.wait_exited(a["id"])["data"]
    assert (ex["exit_code"], ex["signal"], ex["state"], ex["reason"]) == (3, None, "error", "exited with status 3")
    assert session_lines(sup, a["id"]) == []
    # A signal is an error too, named.
    b = local(sup, "/bin/sh", ["-c", "kill -TERM $$"])
    st = wait_gone(sup, b["id"])
    assert (st["state"], st["reason"], st["signal"]) == ("error", "killed by signal 15 (SIGTERM)", 15), st


PLAIN = r"""
import os, sys, time
print("plain text, not an event")
print('{"type": "not-an-agent-event", "n": 1}')
print("caf\u00e9 \u2713 tab\there")
sys.stdout.flush()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("last line, no newline", end="")
"""


def test_python_plain_program_is_working_then_done_with_its_lines(sup, tmp_path):
    go = str(tmp_path / "go")
    w = Watch(sup)
    a = local(sup, PY, ["-c", PLAIN, go], stall_ms=200)
    assert a["state"] == "working" and a["reason"] == "process started", a
    # Running, and silent well past stall_ms: a program that speaks no events never stalls.
    deadline = time.time() + 15
    while len(session_lines(sup, a["id"])) < 3:
        assert time.time() < deadline, session_lines(sup, a["id"])
        time.sleep(0.05)
    time.sleep(1.5)  # past stall_ms and at least one of the daemon's once-a-second ticks
    st = status(sup, a["id"])
    assert (st["state"], st["reason"], st["live"]) == ("working", "process started", True), st
    assert st["activity"] == "running" and st["last_event_ms"] == 0
    open(go, "w").close()
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"], st["exit_code"]) == ("done", "exited cleanly", 0), st
    assert session_lines(sup, a["id"]) == [
        "plain text, not an event", '{"type": "not-an-agent-event", "n": 1}',
        "caf\u00e9 \u2713 tab\there", "last line, no newline"]
    assert session_bytes(sup, a).endswith(b"last line, no newline\n")
    assert (st["turns"], st["tool_calls"]) == (0, 0)
    w.wait_final(a["id"])
    assert [t[:2] for t in w.states(a["id"])] == [("idle", "working"), ("working", "done")]


def test_python_failing_program_is_error(sup):
    a = local(sup, PY, ["-c", "import sys; print('about to fail'); sys.exit(7)"])
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"], st["exit_code"]) == ("error", "exited with status 7", 7), st
    assert session_lines(sup, a["id"]) == ["about to fail"]


ARGV = r"""
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "prompt": os.environ.get("COLIBRI_PROMPT"),
                  "mode": os.environ.get("COLIBRI_MODE")}))
"""

HOSTILE = ["two words", "it's", '"double"', "", "--mode", "json", "-p", "$HOME", "*",
           "`id`", "back\\slash", "new\nline", "\u2713"]


def recorded(d, aid):
    lines = session_lines(d, aid)
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def test_argv_is_passed_exactly_and_the_prompt_through_env(sup):
    a = local(sup, PY, ["-c", ARGV] + HOSTILE, prompt="Fix the parser; it's 'broken'")
    assert a["args"] == ["-c", ARGV] + HOSTILE
    st = wait_gone(sup, a["id"])
    assert st["state"] == "done", st
    seen = recorded(sup, a["id"])
    assert seen == {"argv": HOSTILE, "prompt": "Fix the parser; it's 'broken'", "mode": None}
    b = local(sup, PY, ["-c", ARGV])
    wait_gone(sup, b["id"])
    assert recorded(sup, b["id"]) == {"argv": [], "prompt": None, "mode": None}
    # RPC mode is said in COLIBRI_MODE, not in argv.
    c = local(sup, PY, ["-c", ARGV], mode="rpc", prompt="p")
    wait_gone(sup, c["id"])
    assert recorded(sup, c["id"]) == {"argv": [], "prompt": "p", "mode": "rpc"}


def test_a_spawn_cannot_set_colibri_prompt_itself(sup):
    with pytest.raises(CallError) as e:
        local(sup, PY, ["-c", ARGV], env={"COLIBRI_PROMPT": "forged"})
    assert e.value.code == "invalid_argument" and "COLIBRI_PROMPT" in e.value.message


def recorder(tmp_path):
    p = tmp_path / "record"
    p.write_text("#!%s\n%s" % (PY, ARGV))
    p.chmod(0o755)
    return str(p)


@pytest.mark.parametrize("provider,mode,want", [
    ("pi", "json", ["--mode", "json", "--x", "y z", "-p", "the prompt"]),
    ("pi", "rpc", ["--mode", "rpc", "--x", "y z"]),
    ("zot", "json", ["--json", "--x", "y z", "the prompt"]),
    ("zot", "rpc", ["rpc", "--x", "y z"]),
])
def test_pi_and_zot_still_get_their_flags(sup, tmp_path, provider, mode, want):
    a = sup.call("spawn-agent", {"provider": provider, "binary": recorder(tmp_path), "mode": mode,
                                 "args": ["--x", "y z"], "prompt": "the prompt"})
    st = wait_gone(sup, a["id"])
    assert st["state"] == "done", st
    assert recorded(sup, a["id"]) == {"argv": want, "prompt": None, "mode": None}


def test_test_agent_takes_the_prompt_from_env_without_flags(sup):
    a = local(sup, agent_bin(), prompt="Summarise the parser")
    assert a["args"] == []
    st = wait_gone(sup, a["id"])
    assert (st["state"], st["reason"], st["turns"]) == ("done", "exited cleanly", 1), st
    lines = [json.loads(l) for l in session_lines(sup, a["id"])]
    assert lines[0]["type"] == "session" and lines[-1]["type"] == "agent_end"
    user = [l for l in lines if l["type"] == "message_end" and l["message"]["role"] == "user"]
    assert user and user[0]["message"]["content"][0]["text"] == "Summarise the parser", user


def test_readme_walk_through(sup):
    """README.md "A walk-through", the agent part, word for word (the daemon finds
    colibri-test-agent on its PATH)."""
    r = sup.cli("spawn-local", "colibri-test-agent", "--json", "--", "--scenario", "tool")
    assert r.returncode == 0, r.stderr
    aid = json.loads(r.stdout)["id"]
    st = wait_gone(sup, aid)
    assert (st["state"], st["reason"], st["tool_calls"], st["exit_code"]) == ("done", "exited cleanly", 1, 0), st
    r = sup.cli("list-agents")
    assert r.returncode == 0 and aid in r.stdout and "done" in r.stdout, r.stdout
    r = sup.cli("agent-status", aid)
    assert r.returncode == 0 and "exited cleanly" in r.stdout, r.stdout
    r = sup.cli("session-read", aid)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert json.loads(lines[0])["type"] == "session" and json.loads(lines[-1])["type"] == "agent_end"
    assert any(json.loads(l)["type"] == "tool_execution_start" for l in lines)
    r = sup.cli("spawn-local", "colibri-test-agent", "--json", "--", "--scenario", "hang")
    assert r.returncode == 0, r.stderr
    hid = json.loads(r.stdout)["id"]
    wait_state(sup, hid, ("working",), live=True)
    r = sup.cli("kill-agent", hid)
    assert r.returncode == 0, r.stderr
    st = status(sup, hid)
    assert (st["state"], st["reason"], st["live"]) == ("error", "killed by signal 15 (SIGTERM)", False), st


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")
def test_confined_local_program_runs_exactly_its_argv(make_daemon, tmp_path):
    """Confined too: launch.sh runs binary + args, and the prompt reaches the
    agent's environment through the stage."""
    root = str(tmp_path / "jails" / "plain")
    os.makedirs(root)
    give_to_agent(root)
    d = make_daemon(env=jail_env())
    a = d.call("spawn-local", {"binary": "/bin/sh", "prompt": "it's a prompt",
                               "args": ["-c", 'printf "%s|%s|%s\\n" "$1" "$COLIBRI_PROMPT" "$COLIBRI_MODE"; exit 4',
                                        "sh", "two words"],
                               "jail": {"path": root}})
    st = wait_gone(d, a["id"])
    assert (st["state"], st["reason"], st["exit_code"]) == ("error", "exited with status 4", 4), st
    assert session_lines(d, a["id"]) == ["two words|it's a prompt|"]
