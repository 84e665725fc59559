"""Argument bounds stated in the command table are enforced by the table.

Every cmd_arg of src/daemon/cmd-*.c that carries bounds (min/max of an
integer, the length of a string; parsed by test_schemas.c_commands) is sent
just outside them, on both sides, and must be refused with invalid_argument
naming the argument and both bounds, before the command runs; a value on the
bound itself must not be refused for its bounds.  The usage line in the error
is the one generated from the spec.
"""
import pytest

from test_schemas import COMMANDS

BOUNDED = sorted((name, arg, typ, c["bounds"][arg])
                 for name, c in COMMANDS.items()
                 for arg, typ, _ in c["args"] if arg in c["bounds"])


def _value(typ, n):
    return n if typ == "ARG_INT" else "x" * n


def _usage(name):
    args = COMMANDS[name]["args"]
    if not args:
        return name
    return "%s {%s}" % (name, ", ".join(a + ("" if r else "?") for a, _, r in args))


def test_the_table_has_bounds():
    have = {(n, a) for n, a, _, _ in BOUNDED}
    assert {("events-read", "limit"), ("session-read", "limit"), ("kill-agent", "grace_ms"),
            ("task-list", "limit"), ("session-read", "since"), ("skills-list", "query"),
            ("task-create", "title")} <= have


@pytest.mark.parametrize("name,arg,typ,bounds", BOUNDED,
                         ids=["%s.%s" % (n, a) for n, a, _, _ in BOUNDED])
def test_out_of_bounds_is_refused_naming_them(daemon, name, arg, typ, bounds):
    lo, hi = bounds
    c = daemon.connect()
    outside = ([lo - 1] if lo > 0 or typ == "ARG_INT" else []) + ([hi + 1] if hi else [])
    assert outside
    for n in outside:
        r = c.request(name, {arg: _value(typ, n)})
        assert not r["ok"] and r["error"]["code"] == "invalid_argument", (n, r)
        msg = r["error"]["message"]
        assert '"%s"' % arg in msg, msg
        if hi is not None:
            assert str(hi) in msg, msg
        if lo or hi is None:
            assert str(lo) in msg, msg
        assert msg.endswith("(usage: %s)" % _usage(name)), msg
    for n in [lo] + ([hi] if hi is not None and hi <= 300000 else []):
        r = c.request(name, {arg: _value(typ, n)})
        msg = "" if r["ok"] else r["error"]["message"]
        assert "must be" not in msg or '"%s"' % arg not in msg, (n, msg)
