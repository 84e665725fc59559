#!/usr/bin/python3
"""bench/ingest.py [BUILD] -- glasspane ingestion throughput.

The real pi captures (fixtures/pi/*.jsonl, json mode) are concatenated and
replicated into a file of about 100 MB under /tmp.  In the same run:

  jq -c . FILE > /dev/null             the reference the issue names
  ingest-jansson FILE                  a full jansson parse of every line
  colibri-daemon                       colibri-test-agent --replay FILE --delay-ms 0
                                       spawned through the daemon: time from the
                                       spawn request to the agent.state "done"
                                       event (pipe, session log, glasspane)

Target: the daemon path at least 10x jq.  Environment: INGEST_MB (default
100), INGEST_RUNS (daemon runs, median taken; default 3).
"""
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from spawn_client import Conn, Daemon, build_dir, cc, rss_kib, tool

FIXTURES = os.environ.get("COLIBRI_FIXTURES", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "..", "shared", "fixtures"))
CAPTURES = ("text", "tool", "toolslow", "http400", "kill-term")


def make_file(path, mb):
    """Whole captures, repeated until the file reaches mb MB; ends with a clean text run."""
    chunks = []
    for name in CAPTURES:
        with open(os.path.join(FIXTURES, "pi", name + ".jsonl"), "rb") as f:
            chunks.append(f.read())
    unit = b"".join(chunks)
    with open(os.path.join(FIXTURES, "pi", "text.jsonl"), "rb") as f:
        last = f.read()
    target = mb * 1000 * 1000
    reps = max(1, (target - len(last)) // len(unit))
    with open(path, "wb") as f:
        for _ in range(reps):
            f.write(unit)
        f.write(last)
    return os.path.getsize(path), unit.count(b"\n") * reps + last.count(b"\n")


def timed(argv):
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("bench: %s failed: %s" % (argv[0], r.stderr))
    return dt, r.stdout


def daemon_run(d, conn, path):
    t0 = time.monotonic()
    a = conn.call("spawn-agent", {"provider": "local", "args": ["--replay", path, "--delay-ms", "0"],
                                  "stall_ms": 0})
    ev = conn.wait_event(lambda e: e["event"] == "agent.state" and e["data"]["id"] == a["id"]
                         and e["data"]["to"] in ("done", "error"), timeout=600)
    dt = time.monotonic() - t0
    if ev["data"]["to"] != "done":
        raise SystemExit("bench: the replay ended %s: %s" % (ev["data"]["to"], ev["data"]["reason"]))
    st = conn.call("agent-status", {"id": a["id"]})
    return dt, st


def main():
    build = build_dir(sys.argv)
    mb = int(os.environ.get("INGEST_MB", "100"))
    runs = int(os.environ.get("INGEST_RUNS", "3"))
    work = tempfile.mkdtemp(prefix="colibri-ingest-")
    try:
        path = os.path.join(work, "pi-replicated.jsonl")
        size, lines = make_file(path, mb)
        mbs = size / 1e6
        print("ingest: %s, %.1f MB, %d lines (real pi captures replicated)" % (path, mbs, lines))
        jansson = cc("ingest-jansson.c", os.path.join(work, "ingest-jansson"), ["jansson"])
        subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        t_jq, _ = timed(["jq", "-c", ".", path]) if shutil.which("jq") else (None, "")
        t_js, out = timed([jansson, path])
        ok, bad = map(int, out.split())
        assert ok == lines and bad == 0, (ok, bad, lines)
        d = Daemon(build)
        try:
            conn = Conn(d.socket)
            conn.call("subscribe", {"topics": ["agent.state"]})
            rss0 = rss_kib(d.pid)
            times = []
            for _ in range(runs):
                dt, st = daemon_run(d, conn, path)
                times.append(dt)
            peak = rss_kib(d.pid, "VmHWM")
        finally:
            d.stop()
        t_d = statistics.median(times)
        print("  %-34s %8.2f s %9.1f MB/s" % ("jq -c . FILE > /dev/null", t_jq, mbs / t_jq) if t_jq else
              "  jq not installed: no jq reference")
        print("  %-34s %8.2f s %9.1f MB/s   %5.1fx jq" % ("jansson full parse (json_loadb)", t_js, mbs / t_js,
                                                         t_jq / t_js if t_jq else float("nan")))
        print("  %-34s %8.2f s %9.1f MB/s   %5.1fx jq  %5.1fx jansson  (median of %d; turns %d, tool calls %d)"
              % ("colibri-daemon spawn -> done", t_d, mbs / t_d, t_jq / t_d if t_jq else float("nan"),
                 t_js / t_d, runs, st["turns"], st["tool_calls"]))
        print("  daemon RSS %d KiB before, peak %d KiB during ingestion" % (rss0, peak))
        if t_jq:
            verdict = "PASS" if t_jq / t_d >= 10 else "FAIL"
            print("  target: daemon >= 10x jq: %.1fx %s" % (t_jq / t_d, verdict))
            return 0 if verdict == "PASS" else 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
