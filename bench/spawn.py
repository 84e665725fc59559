#!/usr/bin/python3
"""bench/spawn.py [BUILD] -- spawn latency, request to the agent's first event.

In the same run:
  spawn-bare       posix_spawn of colibri-test-agent --scenario text (stdin
                   /dev/null, stdout a pipe, its own process group) until its
                   agent_start line arrives on the pipe
  colibri-daemon   a subscriber sends spawn-agent for the same program and
                   times until agent.state "working" (caused by that same
                   agent_start line) arrives on its connection: request
                   parsing, validation, the agent row and session logs,
                   posix_spawn, the pipe, the glasspane and the committed event

Each agent runs to its end before the next spawn.  SPAWN_N (default 200)
spawns each, after 10 unmeasured warm-up spawns.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

from spawn_client import Conn, Daemon, build_dir, cc, tool


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def summary(label, xs, ref=None):
    med = statistics.median(xs)
    s = "  %-16s median %7.0f us  p90 %7.0f us  p99 %7.0f us" % (label, med, pct(xs, 90), pct(xs, 99))
    if ref is not None:
        s += "   %.1fx bare posix_spawn (+%.0f us)" % (med / ref, med - ref)
    print(s)
    return med


def daemon_latency(d, agent, n):
    conn = Conn(d.socket)
    conn.call("subscribe", {"topics": ["agent.state"]})
    out = []
    for i in range(n):
        t0 = time.monotonic()
        rid = conn.send("spawn-agent", {"provider": "local", "binary": agent, "args": ["--scenario", "text"]})
        a = conn.wait_reply(rid)
        conn.wait_event(lambda e: e["data"]["id"] == a["id"] and e["data"]["to"] == "working")
        out.append((time.monotonic() - t0) * 1e6)
        conn.wait_event(lambda e: e["data"]["id"] == a["id"] and e["data"]["to"] in ("done", "error"))
    return out


def main():
    build = build_dir(sys.argv)
    n = int(os.environ.get("SPAWN_N", "200"))
    agent = tool(build, "colibri-test-agent")
    with tempfile.TemporaryDirectory(prefix="colibri-spawn-") as work:
        bare = cc("spawn-bare.c", os.path.join(work, "spawn-bare"))
        run = lambda k: subprocess.run([bare, str(k), '"type":"agent_start"', agent, "--scenario", "text"],
                                       check=True, capture_output=True, text=True).stdout.split()
        run(10)
        t_bare = [float(x) for x in run(n)]
        d = Daemon(build)
        try:
            daemon_latency(d, agent, 10)
            t_d = daemon_latency(d, agent, n)
        finally:
            d.stop()
    print("spawn latency: request -> the agent's first event (agent_start), %d spawns each" % n)
    ref = summary("bare posix_spawn", t_bare)
    summary("colibri-daemon", t_d, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
