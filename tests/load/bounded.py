#!/usr/bin/python3
"""bounded.py -- the bounded-resources load (issue 15): abusive clients on the
socket while one client keeps working.

Against a real daemon with its default limits, after a backlog of
--backlog events (200,000 by default, made cheaply with pipelined
task-create batches):
  - --lazy clients (20) pipeline task-list requests and never read;
  - --subscribers clients (100) send subscribe {"since": 0} and never read;
  - one reading subscriber subscribes with since 0 and must receive every
    event, the backlog and what the working client commits meanwhile,
    exactly once and in order (seq 1..last with no gap or duplicate);
  - one working client runs --requests mixed requests (task-create,
    task-show, task-list, events-read), one at a time, timing each.
    status is left out of the mix and timed once on its own: its counts
    cost O(tasks), about 100 ms on a board of 200,000 whatever the load.
Prints the working client's latency (p50, p99, max; target p99 < 50 ms),
the daemon's peak RSS (sampled every 20 ms, and VmHWM; target < 64 MiB) and
the reading subscriber's catch-up.  Exits 1 only on a gap, a duplicate, an
error reply to the working client, a reader that never catches up or a
daemon that dies; the figures are printed, not asserted.  Loopback only (a
Unix socket in a temporary directory); bounded in count and in time
(--timeout seconds).

  bounded.py --build DIR [--backlog 200000] [--lazy 20] [--subscribers 100]
             [--requests 10000] [--timeout 300]
"""
import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def connect(path, rcvbuf=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(path)
    return s


class Conn:
    def __init__(self, path):
        self.s = connect(path)
        self.f = self.s.makefile("rb")
        self.n = 0

    def call(self, cmd, **args):
        self.n += 1
        self.s.sendall((json.dumps({"id": self.n, "cmd": cmd, "args": args}) + "\n").encode())
        while True:
            m = json.loads(self.f.readline())
            if "event" not in m:
                return m


def vm_kib(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def make_backlog(path, n):
    """n task-create requests, pipelined in batches of 2000 (one event each)."""
    c = Conn(path)
    done = 0
    while done < n:
        k = min(2000, n - done)
        c.s.sendall(b"".join(
            b'{"id":%d,"cmd":"task-create","args":{"title":"b%d","body":"%s"}}\n'
            % (done + i, done + i, b"x" * 100) for i in range(k)))
        for _ in range(k):
            m = json.loads(c.f.readline())
            if not m.get("ok"):
                raise SystemExit("backlog: %r" % m)
        done += k
    return c.call("status")["result"]["last_seq"]


def reader(path, target_q, out_q):
    """subscribe since 0 and read every event until the target seq (sent later)."""
    t0 = time.time()
    s = connect(path)
    s.sendall(b'{"id":"r","cmd":"subscribe","args":{"since":0}}\n')
    buf, first, expect, gaps, count, caught_up, target = b"", None, 1, [], 0, None, None
    backlog_last = None
    s.settimeout(1.0)
    while target is None or expect <= target:
        if target is None and not target_q.empty():
            target = target_q.get()
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop()
        for ln in lines:
            m = json.loads(ln)
            if first is None:
                first = m  # must be the reply
                if m.get("id") != "r" or not m.get("ok"):
                    gaps.append("first message is not the reply: %r" % m)
                    break
                backlog_last = m["result"]["seq"]
                continue
            if "event" not in m:
                continue
            if m["seq"] != expect and len(gaps) < 10:
                gaps.append("expected seq %d, got %d" % (expect, m["seq"]))
            expect = m["seq"] + 1
            count += 1
            if caught_up is None and backlog_last is not None and m["seq"] >= backlog_last:
                caught_up = time.time() - t0
    out_q.put({"first_ok": first is not None and first.get("id") == "r", "count": count,
               "last": expect - 1, "gaps": gaps, "catch_up_s": caught_up,
               "backlog_last": backlog_last})


def worker(path, nreq, out_q):
    c = Conn(path)
    lat, errors = [], []
    ids, last = [], 0
    for i in range(nreq):
        k = i % 10
        t = time.perf_counter()
        if k < 3:
            m = c.call("task-create", title="w%d" % i)
            if m.get("ok"):
                ids.append(m["result"]["id"])
        elif k < 7:
            m = c.call("task-show", id=ids[-1] if ids else 1)
        elif k < 9:
            m = c.call("task-list", status="open", limit=10)
        else:
            m = c.call("events-read", after=max(0, last - 20), limit=20)
            last = m["result"]["last_seq"] if m.get("ok") else last
        lat.append(time.perf_counter() - t)
        if not m.get("ok") and len(errors) < 10:
            errors.append(m.get("error"))
    out_q.put({"lat": lat, "errors": errors})


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--backlog", type=int, default=200000)
    ap.add_argument("--lazy", type=int, default=20)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    deadline = time.time() + a.timeout
    tmp = tempfile.mkdtemp(prefix="colibri-bounded.")
    state = os.path.join(tmp, "state")
    path = os.path.join(state, "colibri.sock")
    log = open(os.path.join(tmp, "daemon.log"), "wb")
    d = subprocess.Popen([os.path.join(a.build, "src/daemon/colibri-daemon"), "--state-dir", state,
                          "--foreground"], stdout=log, stderr=log)
    failures = []
    held = []
    try:
        for _ in range(500):
            if os.path.exists(path):
                break
            time.sleep(0.02)
        t = time.time()
        backlog = make_backlog(path, a.backlog)
        print("backlog: %d events in %.1f s; daemon RSS %d KiB" % (
            backlog, time.time() - t, vm_kib(d.pid, "VmRSS")))
        c = Conn(path)
        t = time.perf_counter()
        c.call("status")
        print("status on this board (O(tasks) counts, not in the worker's mix): %.1f ms" % (
            (time.perf_counter() - t) * 1000))
        base = vm_kib(d.pid, "VmRSS")
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], vm_kib(d.pid, "VmRSS"))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # the abusers: pipelining non-readers and non-reading since-0 subscribers
        req = b"".join(b'{"id":%d,"cmd":"task-list","args":{"limit":200}}\n' % i for i in range(2000))
        lazy = []
        for _ in range(a.lazy):
            s = connect(path, rcvbuf=4096)
            s.setblocking(False)
            lazy.append([s, 0])
        for _ in range(a.subscribers):
            s = connect(path, rcvbuf=4096)
            s.sendall(b'{"id":1,"cmd":"subscribe","args":{"since":0}}\n')
            held.append(s)

        def feed():  # keep the non-readers' requests coming as long as the daemon takes them
            while not stop.is_set():
                for ent in lazy:
                    try:
                        ent[1] += ent[0].send(req[ent[1] % len(req):])
                    except (BlockingIOError, OSError):
                        pass
                time.sleep(0.05)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        time.sleep(0.5)
        ctx = mp.get_context("fork")
        target_q, rout, wout = ctx.Queue(), ctx.Queue(), ctx.Queue()
        rp = ctx.Process(target=reader, args=(path, target_q, rout))
        wp = ctx.Process(target=worker, args=(path, a.requests, wout))
        rp.start()
        wp.start()
        w = wout.get(timeout=max(1, deadline - time.time()))
        wp.join(10)
        final = Conn(path).call("status")["result"]
        target_q.put(final["last_seq"])
        try:
            r = rout.get(timeout=max(1, deadline - time.time()))
        except Exception:
            r = None
            failures.append("the reading subscriber did not catch up within --timeout")
        rp.join(5)
        if rp.is_alive():
            rp.kill()
        stop.set()
        sampler.join(1)
        hwm = vm_kib(d.pid, "VmHWM")
        lat = [x * 1000 for x in w["lat"]]
        print("clients: %d lazy pipelining (%d request bytes taken), %d non-reading since-0 "
              "subscribers, 1 reading subscriber, 1 worker; daemon reports %d clients" % (
                  a.lazy, sum(e[1] for e in lazy), a.subscribers, final["clients"]))
        print("worker: %d requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms (target p99 < 50 ms)" % (
            len(lat), pct(lat, 0.50), pct(lat, 0.99), max(lat)))
        print("daemon RSS: before the load %d KiB, peak sampled %d KiB, VmHWM %d KiB "
              "(target < 65536 KiB)" % (base, peak[0], hwm))
        if w["errors"]:
            failures.append("worker errors: %r" % w["errors"])
        if r is not None:
            print("reading subscriber: {seq} first: %s; %d events, seq 1..%d, backlog of %d "
                  "caught up in %s s" % (r["first_ok"], r["count"], r["last"], r["backlog_last"] or 0,
                                         "%.1f" % r["catch_up_s"] if r["catch_up_s"] else "never"))
            if not r["first_ok"]:
                failures.append("the subscriber's first message was not the {seq} reply")
            if r["gaps"] or r["count"] != final["last_seq"] or r["last"] != final["last_seq"]:
                failures.append("reader: gaps %r, %d events for last seq %d" % (
                    r["gaps"], r["count"], final["last_seq"]))
        if d.poll() is not None:
            failures.append("the daemon exited with %s" % d.returncode)
    finally:
        for s in held:
            s.close()
        for ent in locals().get("lazy", []):
            ent[0].close()
        d.terminate()
        try:
            d.wait(20)
        except subprocess.TimeoutExpired:
            d.kill()
        log.close()
        if failures:
            with open(os.path.join(tmp, "daemon.log"), errors="replace") as f:
                sys.stderr.write(f.read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
