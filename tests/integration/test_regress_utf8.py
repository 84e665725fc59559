"""Regression (2026-11-24): an error message cut in the middle of a UTF-8
character (a 64-byte "%.64s" of a client's command name, a 512-byte message
buffer) made an invalid JSON string; the envelope could not be built and
the daemon crashed on the NULL reply.  Now every error message is scrubbed
to valid UTF-8 and a reply that cannot be encoded becomes an internal error."""
import json


def test_unknown_command_cut_mid_character(daemon):
    c = daemon.connect()
    for pad in range(4):
        name = "x" * pad + "\u00e9" * 40  # 2-byte characters straddle the 64-byte cut
        r = c.request(name, {})
        assert r["ok"] is False and r["error"]["code"] == "unknown_command"
        json.dumps(r)  # valid JSON, valid UTF-8
    assert daemon.call("status")["pid"] > 0


def test_long_messages_with_multibyte_arguments(daemon):
    c = daemon.connect()
    for pad in range(3):
        title = "y" * pad + "\u20ac" * 3000  # 3-byte characters past every buffer size
        r = c.request("task-claim", {"agent": title})
        assert r["ok"] is False
        r = c.request("session-read", {"id": "\u20ac" * 300})
        assert r["ok"] is False
    assert daemon.call("status")["pid"] > 0
