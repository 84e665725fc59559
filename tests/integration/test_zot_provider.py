"""spawn-agent provider zot runs `BINARY --json PROMPT`; colibri-test-agent
accepts that argv, so it stands in for zot directly (zot's RPC mode has no
capture to build a stand-in from: `zot rpc` is spawned but not tested)."""
import os
import time

from conftest import bin_path


def wait_final(d, aid, timeout=10):
    deadline = time.time() + timeout
    while True:
        a = d.call("agent-status", id=aid)
        if a["state"] in ("done", "error"):
            return a
        assert time.time() < deadline, a
        time.sleep(0.05)


def test_zot_json_run_is_done_with_usage(make_daemon):
    d = make_daemon()
    a = d.call("spawn-agent", {"provider": "zot", "binary": bin_path("colibri-test-agent"),
                               "prompt": "Say hi"})
    a = wait_final(d, a["id"])
    assert a["state"] == "done", a
    assert a["args"] == [] and a["provider"] == "zot"
    assert a["usage"]["input"] > 0
    lines = d.call("session-read", id=a["id"])["lines"]
    assert lines[0].startswith('{"type":"turn_start"')


def test_zot_model_error_is_error(make_daemon):
    d = make_daemon()
    a = d.call("spawn-agent", {"provider": "zot", "binary": bin_path("colibri-test-agent"),
                               "prompt": "fail", "env": {"TEST_AGENT_SCENARIO": "model-error"}})
    a = wait_final(d, a["id"])
    assert a["state"] == "error" and a["reason"], a

