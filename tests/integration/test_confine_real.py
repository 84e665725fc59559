"""Real agents run confined (issue 17): npm-style programs, read-only paths, the network.

Under a root daemon with bubblewrap (the sandbox runs as nobody), as an
operator would meet them:

- a program reached through npm's symlink (node_modules/.bin/x ->
  ../pkg/bin/x.js, `#!/usr/bin/env node`) that needs its package, a hoisted
  dependency and an interpreter found on the daemon's PATH in a directory
  the sandbox does not show by itself: it runs, sees its files read-only,
  and finds node through PATH inside.  Before issue 17 it died with 127.
- `ro_paths` on a spawn: readable inside, not writable (even for a directory
  the agent user owns), and refused when relative, not canonical,
  overlapping the daemon's files, or given without a jail.
- the network: with ip4 unset the sandbox shares the host's network
  namespace (same /proc/self/ns/net, a loopback listener reachable); with
  ip4 "none" it has its own and the listener is not reachable.
"""
import json
import os
import shutil
import socket

import pytest

from conftest import CallError
from test_jailed_spawn_helpers import agent_uid, bwrap_works, give_to_agent, jail_env
from test_supervision_helpers import agent_bin, wait_gone

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs a root daemon")
BWRAP = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")
NODE = shutil.which("node")

pytestmark = [ROOT_ONLY, BWRAP]

X_JS = r"""#!/usr/bin/env node
// The package's entry point, reached through node_modules/.bin/x.
const fs = require('fs');
const cp = require('child_process');
const out = process.env.OUT;
const r = {helper: require('../lib/helper.js').word, dep: require('dep').word,
           path: process.env.PATH, exe: process.execPath};
try { fs.writeFileSync(__dirname + '/written', 'x'); r.pkg_write = 'yes'; }
catch (e) { r.pkg_write = e.code; }
fs.writeFileSync(out + '/result.json', JSON.stringify(r));
const p = cp.spawnSync(process.env.AGENT, process.argv.slice(2), {stdio: 'inherit'});
process.exit(p.status === null ? 1 : p.status);
"""

PROBE_PY = r"""#!/usr/bin/env python3
# What the sandbox sees: read-only paths, the network namespace, a listener.
import json, os, socket, sys
out, r = os.environ["OUT"], {}
ro = os.environ.get("RO")
if ro:
    with open(os.path.join(ro, "data.txt")) as f:
        r["ro_read"] = f.read()
    try:
        with open(os.path.join(ro, "data.txt"), "a") as f:
            f.write("changed")
        r["ro_write"] = "yes"
    except OSError as e:
        r["ro_write"] = e.errno
    try:
        open(os.path.join(ro, "new.txt"), "w").close()
        r["ro_create"] = "yes"
    except OSError as e:
        r["ro_create"] = e.errno
r["netns"] = os.stat("/proc/self/ns/net").st_ino
try:
    socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), 2).close()
    r["connect"] = "connected"
except OSError as e:
    r["connect"] = "refused %s" % e
with open(os.path.join(out, "probe.json"), "w") as f:
    json.dump(r, f)
agent = os.environ["AGENT"]
os.execv(agent, [agent] + sys.argv[1:])
"""


class Box:
    """A jail root (given to nobody) with the test agent and an output directory."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = os.path.join(tmp, "jails", "box")
        os.makedirs(os.path.join(self.root, "bin"))
        self.agent = os.path.join(self.root, "bin", "colibri-test-agent")
        shutil.copy(agent_bin(), self.agent)
        self.out = os.path.join(self.root, "out")
        os.makedirs(self.out)
        give_to_agent(self.root)

    def env(self, **extra):
        e = {"OUT": self.out, "AGENT": self.agent}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def read(self, name):
        with open(os.path.join(self.out, name)) as f:
            return json.load(f)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def open_up(top):
    """Everything under top readable (and directories searchable) by nobody, owned by root."""
    for dirpath, dirnames, filenames in os.walk(top):
        os.chmod(dirpath, 0o755)
    p = os.path.dirname(top)
    while p != "/":
        os.chmod(p, os.stat(p).st_mode & 0o7777 | 0o011)
        p = os.path.dirname(p)


def npm_app(tmp):
    """An npm install as `npm install` leaves it, outside any directory the sandbox shows."""
    app = os.path.join(tmp, "app")
    nm = os.path.join(app, "node_modules")
    write(os.path.join(nm, "pkg", "package.json"), '{"name": "pkg", "bin": {"x": "bin/x.js"}}')
    write(os.path.join(nm, "pkg", "bin", "x.js"), X_JS, 0o755)
    write(os.path.join(nm, "pkg", "lib", "helper.js"), "exports.word = 'helper';\n")
    write(os.path.join(nm, "dep", "package.json"), '{"name": "dep", "main": "index.js"}')
    write(os.path.join(nm, "dep", "index.js"), "exports.word = 'dep';\n")
    os.makedirs(os.path.join(nm, ".bin"))
    os.symlink("../pkg/bin/x.js", os.path.join(nm, ".bin", "x"))
    open_up(app)
    return os.path.join(nm, ".bin", "x")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_npm_bin_symlink_with_env_node_runs_confined(tmp_path, make_daemon):
    tmp = str(tmp_path)
    box = Box(tmp)
    x = npm_app(tmp)
    # node as nvm or a tarball install leaves it: found only through the daemon's PATH.
    nodedir = os.path.join(tmp, "nodehome", "bin")
    os.makedirs(nodedir)
    os.symlink(os.path.realpath(NODE), os.path.join(nodedir, "node"))
    open_up(os.path.join(tmp, "nodehome"))
    env = jail_env()
    env["PATH"] = nodedir + ":" + env["PATH"]
    d = make_daemon(env=env)
    d.call("spawn-local", {"binary": x, "id": "n1", "env": box.env(),
                           "args": ["--scenario", "text"], "jail": {"path": box.root}})
    st = wait_gone(d, "n1", timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    r = box.read("result.json")
    assert (r["helper"], r["dep"]) == ("helper", "dep"), r
    assert r["path"].split(":")[0] == nodedir, r
    assert r["exe"] == os.path.realpath(NODE), r
    assert r["pkg_write"] in ("EROFS", "EACCES"), r
    assert not os.path.exists(os.path.join(os.path.dirname(os.path.realpath(x)), "written"))


def test_script_through_a_symlink_chain_with_a_path_interpreter(tmp_path, make_daemon):
    """Without node: a python3 program reached through two links in two directories."""
    tmp = str(tmp_path)
    box = Box(tmp)
    real = os.path.join(tmp, "opt", "tool", "libexec", "probe.py")
    write(real, PROBE_PY, 0o755)
    os.makedirs(os.path.join(tmp, "opt", "tool", "bin"))
    os.symlink("../libexec/probe.py", os.path.join(tmp, "opt", "tool", "bin", "probe"))
    os.makedirs(os.path.join(tmp, "links"))
    link = os.path.join(tmp, "links", "probe")
    os.symlink(os.path.join(tmp, "opt", "tool", "bin", "probe"), link)
    open_up(os.path.join(tmp, "opt"))
    open_up(os.path.join(tmp, "links"))
    d = make_daemon(env=jail_env())
    d.call("spawn-local", {"binary": link, "id": "p1", "env": box.env(PORT=1),
                           "args": ["--scenario", "text"], "jail": {"path": box.root}})
    st = wait_gone(d, "p1", timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    assert "netns" in box.read("probe.json")


def probe_box(tmp):
    box = Box(tmp)
    probe = os.path.join(tmp, "tools", "probe.py")
    write(probe, PROBE_PY, 0o755)
    open_up(os.path.join(tmp, "tools"))
    return box, probe


def test_ro_paths_readable_not_writable(tmp_path, make_daemon):
    tmp = str(tmp_path)
    box, probe = probe_box(tmp)
    ro = os.path.join(tmp, "shared", "docs")
    write(os.path.join(ro, "data.txt"), "shared data\n", 0o666)
    open_up(os.path.join(tmp, "shared"))
    os.chmod(ro, 0o777)  # only the read-only bind stops the agent user
    d = make_daemon(env=jail_env())
    d.call("spawn-local", {"binary": probe, "id": "r1", "env": box.env(RO=ro, PORT=1),
                           "args": ["--scenario", "text"], "jail": {"path": box.root},
                           "ro_paths": [ro]})
    st = wait_gone(d, "r1", timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    r = box.read("probe.json")
    assert r["ro_read"] == "shared data\n"
    assert r["ro_write"] == 30 and r["ro_create"] == 30, r  # EROFS
    with open(os.path.join(ro, "data.txt")) as f:
        assert f.read() == "shared data\n"
    assert not os.path.exists(os.path.join(ro, "new.txt"))
    # The same through the CLI's --ro-path.
    os.unlink(os.path.join(box.out, "probe.json"))
    args = ["spawn-local", probe, "--id", "r3", "--jail-path", box.root, "--ro-path", ro]
    for k, v in box.env(RO=ro, PORT=1).items():
        args += ["--env", "%s=%s" % (k, v)]
    p = d.cli(*(args + ["--", "--scenario", "text"]))
    assert p.returncode == 0, p.stderr
    st = wait_gone(d, "r3", timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    r = box.read("probe.json")
    assert (r["ro_read"], r["ro_write"]) == ("shared data\n", 30), r
    # Without ro_paths the same directory is not there at all.
    d.call("spawn-local", {"binary": probe, "id": "r2", "env": box.env(RO=ro, PORT=1),
                           "args": ["--scenario", "text"], "jail": {"path": box.root}})
    st = wait_gone(d, "r2", timeout=60)
    assert st["state"] == "error", st


def test_ro_paths_refused(tmp_path, make_daemon):
    tmp = str(tmp_path)
    box, probe = probe_box(tmp)
    d = make_daemon(env=jail_env())
    os.makedirs(os.path.join(tmp, "real"))
    os.symlink(os.path.join(tmp, "real"), os.path.join(tmp, "alias"))
    cases = [
        (["relative/dir"], "is not absolute"),
        ([tmp + "/real/../real"], "is not canonical"),
        ([tmp + "/real/"], "is not canonical"),
        (["/"], "the whole host"),
        ([os.path.join(tmp, "alias")], "resolves to " + os.path.join(tmp, "real")),
        ([os.path.join(tmp, "missing")], "No such file"),
        ([7], "must be absolute paths"),
        ("/etc", "must be an array"),
    ]
    for i, (ro, why) in enumerate(cases):
        with pytest.raises(CallError) as e:
            d.call("spawn-local", {"binary": probe, "id": "x%d" % i, "env": box.env(PORT=1),
                                   "jail": {"path": box.root}, "ro_paths": ro})
        assert e.value.code == "invalid_argument", (ro, e.value.code)
        assert why in e.value.message, (ro, e.value.message)
    # The daemon's own files: its state directory, or a directory holding it.
    for i, ro in enumerate([d.state_dir, os.path.dirname(d.state_dir)]):
        with pytest.raises(CallError) as e:
            d.call("spawn-local", {"binary": probe, "id": "s%d" % i, "env": box.env(PORT=1),
                                   "jail": {"path": box.root},
                                   "ro_paths": [os.path.realpath(ro)]})
        assert "read-only path" in e.value.message, e.value.message
        assert "state directory" in e.value.message, e.value.message
    # A path the agent user (nobody) cannot reach: refused with the reason, not a bwrap error.
    hidden = os.path.join(tmp, "hidden")
    os.makedirs(os.path.join(hidden, "docs"))
    os.chmod(hidden, 0o700)
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": probe, "id": "h1", "env": box.env(PORT=1),
                               "jail": {"path": box.root},
                               "ro_paths": [os.path.join(hidden, "docs")]})
    assert "read-only path" in e.value.message, e.value.message
    assert "is not reachable by the agent user nobody" in e.value.message, e.value.message
    # Unconfined: nothing to bind into.
    with pytest.raises(CallError) as e:
        d.call("spawn-local", {"binary": probe, "id": "u1", "ro_paths": [tmp + "/real"]})
    assert "ro_paths needs a jail" in e.value.message
    assert d.call("status") is not None


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


def test_network_inherited_by_default_and_cut_by_none(tmp_path, make_daemon, listener):
    tmp = str(tmp_path)
    box, probe = probe_box(tmp)
    host_ns = os.stat("/proc/self/ns/net").st_ino
    d = make_daemon(env=jail_env())
    d.call("spawn-local", {"binary": probe, "id": "w1", "env": box.env(PORT=listener),
                           "args": ["--scenario", "text"], "jail": {"path": box.root}})
    st = wait_gone(d, "w1", timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    r = box.read("probe.json")
    assert r["netns"] == host_ns, r
    assert r["connect"] == "connected", r
    os.unlink(os.path.join(box.out, "probe.json"))
    d.call("spawn-local", {"binary": probe, "id": "w2", "env": box.env(PORT=listener),
                           "args": ["--scenario", "text"],
                           "jail": {"path": box.root, "ip4": "none"}})
    st = wait_gone(d, "w2", timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    r = box.read("probe.json")
    assert r["netns"] != host_ns, r
    assert r["connect"].startswith("refused"), r
    assert agent_uid() != 0
