"""Supervision limits: an output flood past COLIBRI_MAX_SESSION_BYTES, or a
line past COLIBRI_MAX_AGENT_LINE without a newline, marks the agent error with
that reason; the daemon's memory stays bounded and it keeps serving.
"""
import os

from test_supervision_helpers import Watch, session_lines, spawn, sup_daemon, wait_gone

MiB = 1024 * 1024


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def test_output_flood_is_an_error_and_costs_bounded_memory(make_daemon):
    d = sup_daemon(make_daemon, env={"COLIBRI_MAX_SESSION_BYTES": str(2 * MiB)})
    base = vm_kib(d.proc.pid, "VmRSS")
    w = Watch(d)
    # 512 MiB of valid message_update lines: far past the cap.
    a = spawn(d, provider="local", args=["--scenario", "flood", "--flood-bytes", str(512 * MiB)])
    st = wait_gone(d, a["id"], timeout=30)
    assert st["state"] == "error"
    assert st["reason"] == "output flood: session log passed %d bytes" % (2 * MiB), st
    last = w.wait_final(a["id"])
    assert last["data"]["cause"] == "spawner"
    size = os.path.getsize(os.path.join(d.state_dir, "sessions", a["session_id"] + ".jsonl"))
    assert size <= 2 * MiB
    # The peak over the whole run: the daemon did not hold the flood.
    assert vm_kib(d.proc.pid, "VmHWM") - base < 24 * 1024, (base, vm_kib(d.proc.pid, "VmHWM"))
    assert d.call("status")["pid"] == d.proc.pid
    b = spawn(d, provider="local", args=["--scenario", "text"])
    assert wait_gone(d, b["id"])["state"] == "done"


def test_flood_under_the_cap_is_ingested_in_bounded_memory(make_daemon):
    """64 MiB of output is logged whole, and ingestion does not grow the daemon."""
    d = sup_daemon(make_daemon)
    base = vm_kib(d.proc.pid, "VmRSS")
    a = spawn(d, provider="local", args=["--scenario", "flood", "--flood-bytes", str(64 * MiB)])
    st = wait_gone(d, a["id"], timeout=60)
    assert (st["state"], st["reason"]) == ("done", "exited cleanly"), st
    size = os.path.getsize(os.path.join(d.state_dir, "sessions", a["session_id"] + ".jsonl"))
    assert size >= 64 * MiB
    assert vm_kib(d.proc.pid, "VmHWM") - base < 24 * 1024


def test_line_without_newline_is_an_error(make_daemon):
    d = sup_daemon(make_daemon, env={"COLIBRI_MAX_AGENT_LINE": "65536"})
    base = vm_kib(d.proc.pid, "VmRSS")
    w = Watch(d)
    a = spawn(d, provider="local", args=["--scenario", "no-newline", "--flood-bytes", str(256 * MiB)])
    st = wait_gone(d, a["id"], timeout=30)
    assert (st["state"], st["reason"]) == ("error", "stdout line exceeds 65536 bytes without a newline"), st
    assert w.wait_final(a["id"])["data"]["reason"] == st["reason"]
    assert vm_kib(d.proc.pid, "VmHWM") - base < 24 * 1024
    # The complete lines before the endless one are in the log; the fragment is not.
    lines = session_lines(d, a["id"])
    assert lines[0].startswith('{"type":"session"') and lines[-1] == '{"type":"agent_start"}', lines[-1][:80]
    assert d.call("status")["pid"] == d.proc.pid
    b = spawn(d, provider="local", args=["--scenario", "tool"])
    assert wait_gone(d, b["id"])["state"] == "done"


def test_last_line_without_newline_still_counts(make_daemon):
    """A short final line with no newline (under the limit) is logged and judged."""
    d = sup_daemon(make_daemon)
    a = spawn(d, provider="local", args=["--scenario", "no-newline", "--flood-bytes", "40"])
    st = wait_gone(d, a["id"])
    lines = session_lines(d, a["id"])
    head = '{"type":"message_update","delta":"'
    assert lines[-1] == head + "x" * (40 - len(head)), lines[-1]
    # The run never ended: exit 0 is not success here.
    assert (st["state"], st["reason"]) == ("error", "exited with status 0 before the run ended"), st


def test_stderr_log_is_bounded_and_rotated(make_daemon, tmp_path):
    """3 MiB on stderr: the log rotates at 1 MiB into .stderr.1 and no file grows past the cap."""
    script = tmp_path / "noisy"
    script.write_text("#!/bin/sh\nhead -c %d /dev/zero | tr '\\\\0' e >&2\n"
                      "echo '{\"type\":\"agent_start\"}'\necho '{\"type\":\"agent_end\",\"messages\":[]}'\n"
                      % (3 * MiB))
    script.chmod(0o755)
    d = sup_daemon(make_daemon)
    a = spawn(d, provider="local", binary=str(script))
    assert wait_gone(d, a["id"])["state"] == "done"
    base = os.path.join(d.state_dir, "sessions", a["session_id"] + ".stderr")
    cur, old = os.path.getsize(base), os.path.getsize(base + ".1")
    assert old >= MiB and old <= MiB + 65536, old
    assert cur < MiB + 65536, cur
    assert session_lines(d, a["id"]) == ['{"type":"agent_start"}', '{"type":"agent_end","messages":[]}']
