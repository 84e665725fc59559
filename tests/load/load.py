#!/usr/bin/python3
"""load.py -- the bounded load test: N clients x M mixed requests against a
real daemon while S subscribers follow every event.

Checks: zero errors (a refusal the mix does not expect counts as one), each
subscriber's event sequence numbers are contiguous from its start to the
last seq and match events-read, and the daemon's RSS after the run is within
a small margin of its RSS after warm-up.  Prints the figures; exits 1 on a
failed check.  Loopback only (a Unix socket in a temporary directory).

  load.py --build DIR [--clients 8] [--requests 50000] [--subscribers 2]
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.n = 0

    def call(self, cmd, **args):
        self.n += 1
        self.s.sendall((json.dumps({"id": self.n, "cmd": cmd, "args": args}) + "\n").encode())
        while True:
            m = json.loads(self.f.readline())
            if "event" not in m:
                return m


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def worker(sock, idx, nreq, out):
    c = Conn(sock)
    rnd = random.Random(idx)
    agent = "load-%d" % idx
    errors = 0
    unexpected = []
    c.call("agent-register", id=agent, lease_ms=600000)
    mine = []
    for i in range(nreq):
        r = rnd.random()
        # Completes outnumber claims, so an agent's claims (which each heartbeat
        # renews) stay few, as they do for a real agent; status is the rarest.
        if r < 0.25:
            m = c.call("task-create", title="t%d-%d" % (idx, i), priority=rnd.randint(0, 3))
        elif r < 0.40:
            m = c.call("task-claim", agent=agent, lease_ms=600000)
            if m["ok"]:
                mine.append(m["result"]["id"])
            elif m["error"]["code"] == "not_found":
                continue
        elif r < 0.60 and mine:
            m = c.call("task-complete", id=mine.pop(), agent=agent, result={"i": i})
        elif r < 0.75:
            m = c.call("task-show", id=rnd.randint(1, 50))
            if not m["ok"] and m["error"]["code"] == "not_found":
                continue
        elif r < 0.87:
            m = c.call("task-list", limit=10, status="open")
        elif r < 0.98:
            m = c.call("agent-heartbeat", id=agent)
        else:
            m = c.call("status")
        if not m["ok"]:
            errors += 1
            if len(unexpected) < 5:
                unexpected.append(m["error"])
    out.put((idx, errors, unexpected))


def subscriber(sock, start_evt, stop_evt, result, idx):
    # Raw reads only: a buffered reader for the reply could swallow the
    # first events that arrive in the same read (and they would be lost).
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b'{"id":1,"cmd":"subscribe"}\n')
    buf = b""
    while b"\n" not in buf:
        buf += s.recv(65536)
    line, buf = buf.split(b"\n", 1)
    first = json.loads(line)["result"]["seq"]
    seqs = []
    start_evt.set()
    s.settimeout(0.5)
    while True:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            if stop_evt.is_set():
                break
            continue
        if not chunk:
            break
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop()
        for ln in lines:
            m = json.loads(ln)
            if "event" in m:
                seqs.append(m["seq"])
    result[idx] = (first, seqs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--subscribers", type=int, default=2)
    ap.add_argument("--rss-margin-kib", type=int, default=4096)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="colibri-load.")
    state = os.path.join(tmp, "state")
    sock = os.path.join(state, "colibri.sock")
    log = open(os.path.join(tmp, "daemon.log"), "wb")
    d = subprocess.Popen([os.path.join(a.build, "src/daemon/colibri-daemon"), "--state-dir", state,
                          "--foreground"], stdout=log, stderr=log)
    ok = True
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        stop = threading.Event()
        subs = {}
        threads = []
        for i in range(a.subscribers):
            ev = threading.Event()
            t = threading.Thread(target=subscriber, args=(sock, ev, stop, subs, i))
            t.start()
            ev.wait(5)
            threads.append(t)
        # warm-up: a tenth of the load, then measure RSS
        q = mp.Queue()
        warm = [mp.Process(target=worker, args=(sock, 100 + i, a.requests // 10, q))
                for i in range(a.clients)]
        for p in warm:
            p.start()
        for p in warm:
            p.join()
        while not q.empty():
            q.get()
        rss_warm = rss_kib(d.pid)
        t0 = time.time()
        procs = [mp.Process(target=worker, args=(sock, i, a.requests, q)) for i in range(a.clients)]
        for p in procs:
            p.start()
        results = [q.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.time() - t0
        rss_end = rss_kib(d.pid)
        total = a.clients * a.requests
        errors = sum(r[1] for r in results)
        last = Conn(sock).call("status")["result"]["last_seq"]
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
        print("load: %d clients x %d requests = %d in %.1f s (%.0f req/s), %d errors"
              % (a.clients, a.requests, total, elapsed, total / elapsed, errors))
        for r in results:
            if r[1]:
                print("  client %d: %d errors, e.g. %s" % r)
        if errors:
            ok = False
        for i, (first, seqs) in sorted(subs.items()):
            want = list(range(first + 1, last + 1))
            good = seqs == want
            if not good:
                print("  missing:", sorted(set(want) - set(seqs))[:10], "extra:", sorted(set(seqs) - set(want))[:10])
            print("subscriber %d: %d events, seq %d..%d, contiguous and complete: %s"
                  % (i, len(seqs), first + 1, last, "yes" if good else "NO"))
            ok &= good
        grew = rss_end - rss_warm
        print("daemon RSS: %d KiB after warm-up, %d KiB after the load (%+d KiB)"
              % (rss_warm, rss_end, grew))
        if grew > a.rss_margin_kib:
            print("RSS grew more than %d KiB" % a.rss_margin_kib)
            ok = False
    finally:
        d.send_signal(signal.SIGTERM)
        rc = d.wait(30)
        if rc != 0:
            print("daemon exited %d" % rc)
            ok = False
        shutil.rmtree(tmp, ignore_errors=True)
    print("load test:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
