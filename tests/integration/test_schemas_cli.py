"""The colibri CLI's --json outputs against schemas/cli/VERB.json.

One scripted session runs the main verbs through the real CLI against a real
daemon (tasks with a dependency, an external agent, a spawned test agent in
RPC mode and one in JSON mode, skills, a prompt, a tenant, usage, events,
`call`, and `watch --json` replaying the stored events) and checks each
verb's stdout against its CLI schema.  Every verb of the CLI's table must be
run here, except provision-tenant (it needs the vault's bw: test_vault covers
its result through the protocol check).
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import bin_path
from test_schemas import CHECK, schema_files
from test_supervision_helpers import agent_bin, sup_env, wait_gone, wait_state

NOT_RUN = {"provision-tenant"}


class CliRun:
    def __init__(self, daemon):
        self.d = daemon
        self.ran = set()

    def json(self, verb, *args):
        """Run `colibri --json VERB ARGS`, check it succeeded and matches cli/VERB.json."""
        r = self.d.cli("--json", verb, *args)
        assert r.returncode == 0, "%s: %s" % (verb, r.stderr)
        out = json.loads(r.stdout)
        CHECK.check("cli/%s.json" % verb, out, "colibri %s --json" % verb)
        self.ran.add(verb)
        return out


@pytest.fixture
def cli_daemon(tmp_path, make_daemon):
    skills = tmp_path / "skills" / "review"
    skills.mkdir(parents=True)
    (skills / "SKILL.md").write_text("---\nname: review\ndescription: Review a change\n---\n"
                                     "Read the whole diff.\n")
    env = sup_env({"COLIBRI_SKILLS_DIRS": str(tmp_path / "skills")})
    return make_daemon(env=env)


def wait_host_status(d, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if d.call("status")["host_status"] is not None:
            return
        time.sleep(0.05)
    raise AssertionError("no host inventory")


def test_cli_json_outputs_match_their_schemas(cli_daemon, tmp_path):
    d = cli_daemon
    c = CliRun(d)
    c.json("status")
    base = c.json("task-create", "base", "--body", "b", "--priority", "2")
    top = c.json("task-create", "top", "--depends-on", str(base["id"]))
    c.json("task-list")
    c.json("task-list", "--status", "open", "--ready")
    c.json("task-ready", "--limit", "5")
    c.json("task-show", str(top["id"]))
    c.json("task-update", str(top["id"]), "--progress", "waiting")
    c.json("agent-register", "ext-1", "--name", "external", "--lease-ms", "60000")
    c.json("agent-heartbeat", "ext-1", "--activity", "reading")
    claimed = c.json("task-claim", "ext-1", "--lease-ms", "60000")
    assert claimed["id"] == base["id"]
    c.json("task-release", str(base["id"]), "--agent", "ext-1")
    c.json("task-claim", "ext-1", "--id", str(base["id"]))
    done = c.json("task-complete", str(base["id"]), "--agent", "ext-1", "--result", '{"ok": 1}')
    assert done["status"] == "done" and done["result"] == {"ok": 1}

    # a spawned agent in JSON mode, then its session and usage
    a = c.json("spawn-local", agent_bin(), "--id", "cli-json", "--cwd", str(tmp_path),
               "--", "--scenario", "text", "--delay-ms", "0")
    assert a["state"] in ("idle", "working")
    wait_gone(d, "cli-json")
    c.json("agent-status", "cli-json")
    c.json("agent-result", "cli-json")
    c.json("agent-explain", "cli-json")
    c.json("session-read", "cli-json", "--limit", "3")
    c.json("usage")
    c.json("usage", "--agent", "cli-json")
    # an RPC agent: prompt, abort, kill
    c.json("spawn-agent", "local", agent_bin(), "--id", "cli-rpc", "--mode", "rpc",
           "--", "--scenario", "text", "--delay-ms", "300")
    wait_state(d, "cli-rpc", ("idle",))
    c.json("agent-prompt", "cli-rpc", "hello")
    c.json("agent-abort", "cli-rpc")
    c.json("kill-agent", "cli-rpc", "--grace-ms", "500")
    c.json("list-agents")
    c.json("list-agents", "--kind", "spawned")
    wait_gone(d, "cli-rpc")
    assert c.json("agent-forget", "cli-rpc")["id"] == "cli-rpc"
    c.json("gc")

    c.json("skills-list")
    c.json("skills-list", "rev")
    c.json("skill-show", "review")
    c.json("skills-reload")
    c.json("prompt-assemble", "--session-id", "s1", "--system", '"you are terse"',
           "--turn", '"hi"')
    c.json("prompt-assemble", "--session-id", "s1", "--system", '"you are brief"',
           "--turn", '"hi"')
    wait_host_status(d)
    c.json("host-status")
    c.json("profiles")
    c.json("dispatch", "status")
    c.json("dispatch", "off")  # no dispatch.json: off already, and it stays so

    root = tmp_path / "jails" / "acme" / "root"
    root.mkdir(parents=True)
    c.json("register-tenant", "acme", str(root))
    c.json("list-tenants")
    c.json("delete-tenant", "acme")
    c.json("events-read", "--since", "0", "--limit", "500")

    # call: the result of the command it names
    r = d.cli("--json", "call", "task-show", json.dumps({"id": top["id"]}))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    CHECK.check("cli/call.json", out, "colibri call --json")
    CHECK.check("commands/task-show.result.json", out, "colibri call task-show --json")
    c.ran.add("call")

    # watch --json: every stored event replayed as one line each
    last = d.call("status")["last_seq"]
    env = dict(d.env, COLIBRI_SOCKET=d.socket)
    p = subprocess.Popen([bin_path("colibri"), "--json", "watch", "--since", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        seen = 0
        while seen < last:
            line = p.stdout.readline()
            assert line, "watch ended early: %s" % p.stderr.read()
            ev = json.loads(line)
            CHECK.check("cli/watch.json", ev, "colibri watch --json line")
            CHECK.check("events/%s.json" % ev["event"], ev["data"], "watched " + ev["event"])
            seen = ev["seq"]
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        p.stdout.close()
        p.stderr.close()
    c.ran.add("watch")

    # agent-resume: a pi run (the test agent speaking pi) a killed daemon interrupted
    a = d.call("spawn-agent", {"provider": "pi", "binary": agent_bin(), "id": "cli-resume",
                               "args": ["--scenario", "hang-until-resumed"]})
    wait_state(d, "cli-resume", ("working",))
    d.kill9()
    d.start()
    c.json("agent-resume", "cli-resume")
    wait_gone(d, "cli-resume")

    verbs = {f[:-5] for f in schema_files("cli")}
    assert verbs - c.ran - NOT_RUN == set(), "CLI verbs not exercised"
