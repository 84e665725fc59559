#!/usr/bin/python3
"""pg_claims.py -- task claims per second on PostgreSQL beside SQLite, same run.

Usage: bench/pg_claims.py [BUILD]     (default build/; BENCH_TASKS=10000)

Starts a throwaway PostgreSQL with tests/pg/start.sh --durable (fsync on),
then for each store a fresh colibri-daemon: fills the queue with
BENCH_TASKS tasks, and 8 claimer processes, each on its own connection with
one request in flight, claim the queue's head until it is empty.  Claims per
second are printed beside the SQLite daemon's, as ratios.  Stores:

  sqlite                the default: WAL, synchronous=NORMAL
  postgres              one daemon, synchronous_commit=on (every commit fsynced)
  postgres async        one daemon, synchronous_commit=off (comparable to
                        SQLite's NORMAL: a crash of the server may lose the
                        last commits, never corrupt)
  postgres, 2 daemons   two daemons on one database (synchronous_commit=off),
                        4 claimers each: the multi-host layout on one machine

Every run checks that each task was claimed exactly once.  The claimers
parse no JSON on the hot path (they look for "ok":true in the reply line),
so the client costs little beside the daemon.
"""
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
TASKS = int(os.environ.get("BENCH_TASKS", "10000"))
CLAIMERS = 8


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                   check=True, capture_output=True)


def db_url(url, name):
    scheme, rest = url.split("://", 1)
    netloc, _, tail = rest.partition("/")
    return "%s://%s/%s?%s" % (scheme, netloc, name, tail.partition("?")[2])


class Daemon:
    def __init__(self, state, args):
        self.state = state
        self.sock = os.path.join(state, "colibri.sock")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "src", "daemon", "colibri-daemon"), "--state-dir", state,
             "--foreground", "--log-level", "warn"] + args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, COLIBRI_INVENTORY_INTERVAL_MS="3600000"))
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                self.request_lines([b'{"id":1,"cmd":"status"}\n'])
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daemon on %s did not start" % state)

    def request_lines(self, lines):
        """Send lines pipelined on one connection; the reply lines."""
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.sendall(b"".join(lines))
        buf, out = b"", []
        while len(out) < len(lines):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise OSError("daemon closed the connection")
            buf += chunk
            *done, buf = buf.split(b"\n")
            out += done
        s.close()
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fill(d, n):
    for start in range(0, n, 1000):
        lines = [('{"id":%d,"cmd":"task-create","args":{"title":"bench %d"}}\n' % (i, i)).encode()
                 for i in range(start, min(n, start + 1000))]
        for r in d.request_lines(lines):
            assert b'"ok":true' in r, r


def claimer(sock, agent, start, out):
    """Claim until the queue is empty; put the claimed ids on out."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    req = ('{"id":1,"cmd":"task-claim","args":{"agent":"%s"}}\n' % agent).encode()
    f = s.makefile("rb")
    ids = []
    start.wait()
    while True:
        s.sendall(req)
        line = f.readline()
        if b'"ok":true' not in line:
            if b'"not_found"' not in line:
                ids.append(-1)
            break
        # "result":{"id":N,...: the id follows the first "id": after "result"
        k = line.index(b'"result":{"id":') + 15
        ids.append(int(line[k:line.index(b",", k)]))
    out.put(ids)


def run_claims(daemons, n):
    """CLAIMERS processes spread over daemons; (claims/s, claims, distinct)."""
    start = multiprocessing.Event()
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=claimer,
                                     args=(daemons[i % len(daemons)].sock, "c%d" % i, start, out))
             for i in range(CLAIMERS)]
    for p in procs:
        p.start()
    time.sleep(0.3)
    t0 = time.time()
    start.set()
    ids = []
    for _ in procs:
        ids += out.get(timeout=600)
    elapsed = time.time() - t0
    for p in procs:
        p.join()
    assert -1 not in ids, "a claim failed with an error"
    return len(ids) / elapsed, len(ids), len(set(ids))


def bench(name, tmp, store_args_list):
    daemons = [Daemon(os.path.join(tmp, "%s-%d" % (name.replace(" ", "-").replace(",", ""), i)), a)
               for i, a in enumerate(store_args_list)]
    try:
        fill(daemons[0], TASKS)
        rate, n, distinct = run_claims(daemons, TASKS)
    finally:
        for d in daemons:
            d.stop()
    ok = n == TASKS and distinct == TASKS
    return rate, ok, "%d claims, %d distinct of %d tasks" % (n, distinct, TASKS)


def main():
    tmp = tempfile.mkdtemp(prefix="colibri-bench-pg.")
    p = subprocess.run([os.path.join(ROOT, "tests", "pg", "start.sh"), "--durable"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("pg_claims: no PostgreSQL: " + p.stderr.strip())
        return 1
    url = p.stdout.strip()
    failed = False
    try:
        for db in ("bench_sync", "bench_async", "bench_two"):
            psql(url, "CREATE DATABASE %s" % db)
        psql(url, "ALTER DATABASE bench_async SET synchronous_commit = off")
        psql(url, "ALTER DATABASE bench_two SET synchronous_commit = off")
        runs = [
            ("sqlite", [[]]),
            ("postgres", [["--store", db_url(url, "bench_sync")]]),
            ("postgres async", [["--store", db_url(url, "bench_async")]]),
            ("postgres async, 2 daemons", [["--store", db_url(url, "bench_two"), "--host-id", "a"],
                                           ["--store", db_url(url, "bench_two"), "--host-id", "b"]]),
        ]
        print("task-claim of the queue's head, %d claimers, %d tasks" % (CLAIMERS, TASKS))
        base = None
        for name, args in runs:
            rate, ok, what = bench(name, tmp, args)
            base = base or rate
            print("  %-28s %8.0f claims/s   %5.2f x sqlite   %s%s" % (
                name, rate, rate / base, what, "" if ok else "   FAILED"))
            failed |= not ok
    finally:
        subprocess.run([os.path.join(ROOT, "tests", "pg", "stop.sh"), url])
        shutil.rmtree(tmp, ignore_errors=True)
    print("every task claimed exactly once: %s" % ("no" if failed else "yes"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
