"""session-read of an agent's stderr log (stream "stderr"), through the
socket and the CLI."""
import os
import time

import pytest

from conftest import CallError, bin_path


def test_session_read_stderr(make_daemon):
    tools = os.path.dirname(bin_path("colibri-test-agent"))
    d = make_daemon(env=dict(os.environ, PATH=tools + ":" + os.environ["PATH"]))
    a = d.call("spawn-local", {"binary": "colibri-test-agent", "args": ["--scenario", "stderr"]})
    deadline = time.time() + 10
    while d.call("agent-status", id=a["id"])["state"] not in ("done", "error"):
        assert time.time() < deadline
        time.sleep(0.05)
    err = d.call("session-read", id=a["id"], stream="stderr")["lines"]
    out = d.call("session-read", id=a["id"])["lines"]
    assert err, "the stderr scenario wrote nothing to the stderr log"
    assert err != out
    with open(os.path.join(d.state_dir, "sessions", a["session_id"] + ".stderr")) as f:
        assert f.read().splitlines() == err
    r = d.cli("session-read", a["id"], "--stream", "stderr")
    assert r.returncode == 0 and r.stdout.splitlines() == err
    with pytest.raises(CallError) as e:
        d.call("session-read", id=a["id"], stream="stdin")
    assert e.value.code == "invalid_argument"
