"""colibri-runtime-inventory: the manifest validates against its schema.

The schema is schemas/runtime-inventory.schema.json (JSON Schema 2020-12),
checked with python3-jsonschema.  Besides the real host, a PATH of stand-in
tools checks version probing: a tool that prints its version, one that fails,
one that prints only to stderr after blank lines, and one that hangs and must
be killed (with its child) at the timeout.
"""
import json
import os
import platform
import shutil
import subprocess
import time

import jsonschema
import pytest

from conftest import ROOT, bin_path

SCHEMA_PATH = os.path.join(ROOT, "schemas", "runtime-inventory.schema.json")


def schema():
    with open(SCHEMA_PATH) as f:
        s = json.load(f)
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def run_inventory(args, env=None, timeout=60):
    p = subprocess.run([bin_path("colibri-runtime-inventory")] + args, capture_output=True,
                       env=env, stdin=subprocess.DEVNULL, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def bwrap_works():
    if shutil.which("bwrap") is None:
        return False
    try:
        return subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent",
                               "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_host_manifest_validates(tmp_path):
    before = time.time()
    inv = run_inventory(["--state-dir", str(tmp_path)])
    jsonschema.validate(inv, schema(), cls=jsonschema.Draft202012Validator)
    assert inv["os"] == platform.system()
    assert inv["arch"] == platform.machine()
    assert inv["kernel"]["release"] == platform.release()
    assert inv["cpus"] == os.cpu_count()
    assert inv["memory_bytes"] > 64 * 1024 * 1024
    st = os.statvfs(str(tmp_path))
    assert inv["state_dir"]["path"] == str(tmp_path)
    assert inv["state_dir"]["total_bytes"] == st.f_blocks * st.f_frsize
    assert inv["state_dir"]["free_bytes"] > 0
    with open(os.path.join(ROOT, "src", "common", "proto.h")) as f:
        assert '"%s"' % inv["colibri_version"] in f.read()
    stamp = time.mktime(time.strptime(inv["generated_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 2 <= stamp <= time.time() + 2
    node = shutil.which("node")
    if node is not None:
        assert inv["tools"]["node"]["path"] == node
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
        assert inv["tools"]["node"]["version"] == version.strip()
    else:
        assert inv["tools"]["node"] is None
    assert inv["confinement"]["bwrap"] == (platform.system() == "Linux" and bwrap_works())
    assert ("bwrap" in inv["confinement"]["available"]) == inv["confinement"]["bwrap"]
    assert inv["privilege"]["euid"] == os.geteuid()
    assert inv["privilege"]["available"][-1] == "none"


def write_tool(d, name, body):
    p = d / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)


def test_standin_tools(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pidfile = tmp_path / "zot.pid"
    write_tool(bindir, "pi", 'echo "0.73.1"\n')
    write_tool(bindir, "bw", 'echo "You are not logged in." >&2\nexit 1\n')
    write_tool(bindir, "node", 'echo\necho "   "\necho "v99.1.2  " >&2\n')
    write_tool(bindir, "zot", '/bin/sleep 30 &\necho $! > "%s"\nwait\n' % pidfile)
    write_tool(bindir, "sudo", 'printf "Sudo version 1.9.13\\377\\nSudoers policy plugin\\n"\n')
    (bindir / "bwrap").write_text("not executable")
    env = dict(os.environ, PATH=str(bindir))
    t0 = time.monotonic()
    inv = run_inventory(["--state-dir", str(tmp_path), "--timeout-ms", "700", "--compact"],
                        env=env)
    elapsed = time.monotonic() - t0
    jsonschema.validate(inv, schema(), cls=jsonschema.Draft202012Validator)
    tools = inv["tools"]
    assert tools["pi"] == {"path": str(bindir / "pi"), "version": "0.73.1"}
    assert tools["bw"] == {"path": str(bindir / "bw"), "version": None}
    assert tools["node"]["version"] == "v99.1.2"
    assert tools["zot"] == {"path": str(bindir / "zot"), "version": None}
    assert tools["sudo"]["version"] == "Sudo version 1.9.13?"
    assert tools["bwrap"] is None
    assert inv["confinement"] == {"bwrap": False, "jail": False, "available": []}
    assert inv["privilege"]["sudo"] is True
    assert inv["privilege"]["available"][-2:] == ["sudo", "none"]
    assert elapsed < 10
    # the hung tool's child was killed with its process group
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("sleep child of the timed-out tool is still alive")


def test_missing_state_dir(tmp_path):
    inv = run_inventory(["--state-dir", str(tmp_path / "nope")],
                        env=dict(os.environ, PATH=str(tmp_path)))
    jsonschema.validate(inv, schema(), cls=jsonschema.Draft202012Validator)
    assert inv["state_dir"]["free_bytes"] is None
    assert "No such file" in inv["state_dir"]["error"]


def test_usage_error():
    p = subprocess.run([bin_path("colibri-runtime-inventory"), "--bogus"], capture_output=True)
    assert p.returncode == 2
    assert b"usage:" in p.stderr
