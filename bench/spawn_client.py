"""Shared pieces of the supervision benchmarks (bench/ingest.py, bench/spawn.py,
bench/agents-rss.py): a private daemon on a temporary state dir, a socket
connection that keeps events apart from replies, RSS from /proc, and building
the small C reference programs beside the benchmark with the system cc.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build_dir(argv):
    b = argv[1] if len(argv) > 1 else os.environ.get("COLIBRI_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def tool(build, name):
    for sub in ("src/daemon", "src/tools", "src/client"):
        p = os.path.join(build, sub, name)
        if os.path.exists(p):
            return p
    raise SystemExit("bench: %s is not built in %s" % (name, build))


def cc(src, out, pkgs=()):
    """Compile bench/SRC into OUT with -O2 (and pkg-config flags for pkgs)."""
    flags = []
    if pkgs:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs"] + list(pkgs), check=True,
                               capture_output=True, text=True).stdout.split()
    compiler = os.environ.get("CC", "cc")
    subprocess.run([compiler, "-O2", "-D_GNU_SOURCE", "-o", out, os.path.join(HERE, src)] + flags,
                   check=True)
    return out


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.events = []

    def read_msg(self, timeout=None):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, cmd, args):
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall((json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n").encode())
        return rid

    def wait_reply(self, rid, timeout=60):
        while True:
            m = self.read_msg(timeout)
            if "event" in m:
                self.events.append(m)
            elif m.get("id") == rid:
                if not m["ok"]:
                    raise RuntimeError("%s: %s" % (m["error"]["code"], m["error"]["message"]))
                return m["result"]

    def call(self, cmd, args=None):
        return self.wait_reply(self.send(cmd, args or {}))

    def wait_event(self, pred, timeout=120):
        for i, e in enumerate(self.events):
            if pred(e):
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self.read_msg(max(0.01, deadline - time.monotonic()))
            if "event" in m and pred(m):
                return m
            if "event" in m:
                self.events.append(m)


class Daemon:
    """colibri-daemon --state-dir TMP --foreground --allow-unconfined (the benches spawn
    unconfined local agents), the build's tools first on PATH."""

    def __init__(self, build, extra_args=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="colibri-bench-")
        self.state = os.path.join(self.dir, "state")
        self.socket = os.path.join(self.state, "colibri.sock")
        e = dict(os.environ)
        e["PATH"] = os.path.join(build, "src", "tools") + ":" + e.get("PATH", "/usr/bin:/bin")
        e.update(env or {})
        self.log = open(os.path.join(self.dir, "daemon.log"), "wb")
        self.proc = subprocess.Popen([tool(build, "colibri-daemon"), "--state-dir", self.state, "--foreground",
                                      "--log-level", "warn", "--allow-unconfined"] + list(extra_args),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        deadline = time.time() + 10
        while True:
            try:
                Conn(self.socket).call("status")
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop(keep=True)
                    raise SystemExit("bench: the daemon did not start; its log:\n" + self.read_log())
                time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def read_log(self):
        with open(os.path.join(self.dir, "daemon.log"), errors="replace") as f:
            return f.read()

    def stop(self, keep=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def ratio_line(label, value, unit, ref_label, ref_value, better="higher"):
    """'label  value unit  (Nx ref_label)' with the ratio in the good direction."""
    r = value / ref_value if better == "higher" else ref_value / value
    return "  %-28s %10.2f %-6s %6.1fx %s" % (label, value, unit, r, ref_label)
