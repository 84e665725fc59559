#!/usr/bin/python3
"""bench/agents-rss.py [BUILD] -- daemon memory per supervised agent.

Starts a daemon, spawns AGENTS (default 1000) idle agents
(colibri-test-agent --scenario hang, stall detection off: stall_ms 0), and
reads the daemon's VmRSS before (RSS_0) and with all of them live
(RSS_N): per agent = (RSS_N - RSS_0) / N.  Target: under 64 KiB per agent.
Then kills them all and shows what the daemon keeps.

Each agent costs the daemon four descriptors (stdout and stderr pipes, the
session log and the stderr log): the soft RLIMIT_NOFILE is raised to fit.
"""
import os
import resource
import sys
import time

from spawn_client import Conn, Daemon, build_dir, rss_kib, tool

TARGET_KIB = 64


def main():
    build = build_dir(sys.argv)
    n = int(os.environ.get("AGENTS", "1000"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * n + 256
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SystemExit("bench: RLIMIT_NOFILE hard limit %d < %d needed" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    agent = tool(build, "colibri-test-agent")
    d = Daemon(build)
    ids = []
    try:
        conn = Conn(d.socket)
        # One spawn and kill first, so that start-up allocations (SQLite's
        # statement cache, the first session log) are in RSS_0.
        a = conn.call("spawn-agent", {"provider": "local", "binary": agent, "args": ["--scenario", "hang"],
                                      "stall_ms": 0})
        conn.call("kill-agent", {"id": a["id"], "grace_ms": 1000})
        time.sleep(0.2)
        rss0 = rss_kib(d.pid)
        t0 = time.monotonic()
        for i in range(n):
            a = conn.call("spawn-agent", {"provider": "local", "binary": agent, "args": ["--scenario", "hang"],
                                          "stall_ms": 0})
            ids.append(a["id"])
        t_spawn = time.monotonic() - t0
        # Every agent has started its run (agent_start read): all are live and parsed.
        deadline = time.monotonic() + 60
        while True:
            items = conn.call("list-agents", {"kind": "spawned", "state": "working"})["items"]
            if len(items) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        working = len(items)
        time.sleep(0.5)
        rss_n = rss_kib(d.pid)
        fds = len(os.listdir("/proc/%d/fd" % d.pid))
        t0 = time.monotonic()
        for aid in ids:
            conn.send("kill-agent", {"id": aid, "grace_ms": 2000})
        for _ in ids:
            m = conn.read_msg(120)
            while "event" in m:
                m = conn.read_msg(120)
        t_kill = time.monotonic() - t0
        time.sleep(0.5)
        rss_after = rss_kib(d.pid)
    finally:
        d.stop()
    per = (rss_n - rss0) / float(n)
    print("agents RSS: %d idle agents (test-agent --scenario hang, stall off), %d working" % (n, working))
    print("  daemon RSS_0 %d KiB, RSS_%d %d KiB, after killing them all %d KiB; %d descriptors"
          % (rss0, n, rss_n, rss_after, fds))
    print("  spawned in %.2f s (%.2f ms each), killed in %.2f s" % (t_spawn, t_spawn * 1000 / n, t_kill))
    verdict = "PASS" if per < TARGET_KIB and working == n else "FAIL"
    print("  per agent: (RSS_%d - RSS_0) / %d = %.1f KiB   target < %d KiB (%.1fx under): %s"
          % (n, n, per, TARGET_KIB, TARGET_KIB / per if per > 0 else float("inf"), verdict))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
