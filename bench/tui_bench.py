#!/usr/bin/python3
"""bench/tui_bench.py [BUILD] -- colibri-glasspane under 1000 agents each
changing state 10 times a second.

A fake daemon (bench/tui_fake_daemon.py) serves 1000 agents and, once the
dashboard subscribes, sends 10,000 agent.state events a second.  The real
colibri-glasspane runs inside a private tmux server (120x40).  Measured:

  cpu        the dashboard's utime+stime from /proc/PID/stat over a 10 s
             window while the events stream, as a share of one core
             (target: under 5%); also over 5 s with no events (idle)
  lag        during the window, the seq shown in the dashboard's status line
             (capture-pane) against the last seq sent at that moment
  keeps up   after the stream stops, the shown seq equals the last sent
  rss        the dashboard's resident memory at the end

TUI_BENCH_SECONDS, TUI_BENCH_AGENTS and TUI_BENCH_RATE change the window,
the agent count and the event rate.  Exit status 1 when a target is missed.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tui_fake_daemon import FakeDaemon  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SEQ_RE = re.compile(r"seq (\d+)\s+\? help")
CPU_TARGET = 5.0


def build_dir():
    if len(sys.argv) > 1:
        return os.path.abspath(sys.argv[1])
    return os.environ.get("COLIBRI_BUILD", os.path.join(ROOT, "build"))


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Tmux:
    def __init__(self, name):
        self.name = name

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.name] + list(args), capture_output=True,
                              text=True, check=check, timeout=10)

    def screen(self):
        return self.run("capture-pane", "-p").stdout

    def shown_seq(self):
        m = SEQ_RE.search(self.screen())
        return int(m.group(1)) if m else -1

    def kill(self):
        self.run("kill-server", check=False)
        sock = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), "tmux-%d" % os.getuid(), self.name)
        try:
            os.unlink(sock)  # tmux leaves it behind; ours by its unique name
        except OSError:
            pass


def cpu_share(pid, seconds, sample=None):
    """Share of one core used by pid over seconds; sample() is called each second."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, end - time.monotonic()))
        if sample is not None:
            sample()
    return 100.0 * (cpu_ticks(pid) - c0) / hz / (time.monotonic() - t0)


def main():
    prog = os.path.join(build_dir(), "src", "tui", "colibri-glasspane")
    if not os.access(prog, os.X_OK):
        sys.exit("tui_bench: %s not built" % prog)
    seconds = float(os.environ.get("TUI_BENCH_SECONDS", "10"))
    agents = int(os.environ.get("TUI_BENCH_AGENTS", "1000"))
    rate = int(os.environ.get("TUI_BENCH_RATE", "10000"))
    tmp = tempfile.mkdtemp(prefix="tui-bench-")
    sock = os.path.join(tmp, "fake.sock")
    fake = FakeDaemon(sock, agents, rate).start()
    tmux = Tmux("tui-bench-%d" % os.getpid())
    try:
        tmux.run("new-session", "-d", "-x", "120", "-y", "40", "exec %s --socket %s" % (prog, sock))
        pid = int(tmux.run("list-panes", "-F", "#{pane_pid}").stdout.split()[0])
        if not fake.streaming.wait(10):
            sys.exit("tui_bench: the dashboard did not subscribe")
        time.sleep(2.0)  # warm-up: initial list, first refreshes
        lags = []

        def sample():
            sent, shown = fake.last_seq(), tmux.shown_seq()
            lags.append(sent - shown)

        busy = cpu_share(pid, seconds, sample)
        sent_at_end = fake.last_seq()
        fake.paused = True
        time.sleep(1.5)
        final_sent, final_shown = fake.last_seq(), tmux.shown_seq()
        idle = cpu_share(pid, 5.0)
        rss = rss_kib(pid)
        achieved = sent_at_end / (seconds + 2.0 + 0.0)
    finally:
        tmux.kill()
        fake.stop()
    print("colibri-glasspane: %d agents, %d agent.state events/s, %.0f s window (tmux 120x40)"
          % (agents, rate, seconds))
    print("  cpu while streaming  %5.2f %% of one core   (target < %.0f %%)" % (busy, CPU_TARGET))
    print("  cpu idle             %5.2f %% of one core" % idle)
    print("  events sent          %d (about %.0f/s)" % (sent_at_end, achieved))
    print("  lag (sent - shown)   median %d, max %d events, sampled once a second"
          % (sorted(lags)[len(lags) // 2] if lags else -1, max(lags) if lags else -1))
    print("  after the stream     shown seq %d, last sent %d -> %s"
          % (final_shown, final_sent, "kept up" if final_shown == final_sent else "BEHIND"))
    print("  rss                  %d KiB" % rss)
    ok = busy < CPU_TARGET and final_shown == final_sent
    print("  result               %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
