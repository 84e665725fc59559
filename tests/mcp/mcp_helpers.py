"""Helpers for the colibri-mcp integration tests (tests/integration/test_mcp*.py).

McpProc runs colibri-mcp with pipes and speaks raw lines to it.  Every line
it reads from stdout must be a JSON object: stdout belongs to the protocol,
so anything else there fails the test.  stderr goes to a file (`log()`).

npm_setup() installs tests/mcp/package.json through setup.sh and fails the
test (never skips) when that is impossible.
"""
import json
import os
import select
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "node_modules")
EVERYTHING = os.path.join(NODE_MODULES, "@modelcontextprotocol", "server-everything", "dist", "index.js")


def npm_setup():
    """Install the npm peers; raises AssertionError (a failure) when npm cannot."""
    p = subprocess.run(["sh", os.path.join(HERE, "setup.sh")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, "tests/mcp/setup.sh failed (npm unreachable?):\n" + p.stdout + p.stderr


class McpProc:
    def __init__(self, binary, args=(), env=None, log_path=None):
        self.log_path = log_path
        self.log_file = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([binary] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log_file, env=env)
        self.buf = b""
        self.notes = []  # notifications read while waiting for a reply
        self.next_id = 1000

    @property
    def pid(self):
        return self.proc.pid

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj):
        self.send_raw(json.dumps(obj) + "\n")

    def recv_line(self, timeout=10.0):
        """The next raw stdout line (bytes, without newline), or None on timeout/EOF."""
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self, timeout=10.0):
        """The next message (a dict), or None; fails on anything but a JSON object."""
        line = self.recv_line(timeout)
        if line is None:
            return None
        msg = json.loads(line)
        assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", line
        return msg

    def reply(self, rid, timeout=10.0):
        """The reply to id rid; notifications met on the way are kept in self.notes."""
        deadline = time.time() + timeout
        while True:
            m = self.recv(max(0.0, deadline - time.time()))
            assert m is not None, "no reply to id %r; log:\n%s" % (rid, self.log())
            if "method" in m and "id" not in m:
                self.notes.append(m)
                continue
            assert m.get("id") == rid, "reply out of order: %r (waiting for %r)" % (m, rid)
            return m

    def request(self, method, params=None, rid=None, timeout=10.0):
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.reply(rid, timeout)

    def initialize(self, version="2025-11-25"):
        r = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": "pytest", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def call(self, name, arguments=None, timeout=10.0, meta=None):
        params = {"name": name, "arguments": arguments or {}}
        if meta is not None:
            params["_meta"] = meta
        return self.request("tools/call", params, timeout=timeout)

    def alive(self):
        """Still serving: a ping round-trips."""
        return self.request("ping")["result"] == {}

    def close(self, timeout=15.0):
        """Close stdin and wait; returns the exit code."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        rest = self.proc.stdout.read()
        for line in (self.buf + rest).split(b"\n"):
            if line.strip():
                json.loads(line)  # stdout carries only JSON lines
        if self.log_file is not subprocess.DEVNULL:
            self.log_file.close()
        return rc

    def log(self):
        if not self.log_path:
            return ""
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()


def result_text(result):
    return "".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def children(pid):
    """Direct children of pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def descendants(pid):
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""
