#!/usr/bin/python3
"""bench/scale.py BUILD BINDIR -- `make bench-scale`: every command on a big board.

Builds a board of BENCH_SCALE_TASKS tasks (default 1,000,000) through the
daemon -- task-create pipelined over the socket, BENCH_SCALE_DEPTH requests
in flight (64) on each of BENCH_SCALE_CONNS connections (4) -- which also
makes as many events (every task-create appends task.created).  Then, one
command at a time, one request in flight (bench/scaleclient.c), it measures
p50/p99 of every read and write command of the board, and beside each the
raw SQLite reference: bench/sqlite-scale.c running the statements the
store runs for that command, on the same database file, after the daemon
has stopped.  Also printed: the daemon's RSS (VmHWM and VmRSS from
/proc/PID/status), the database's size, and the build rate beside raw
SQLite inserting the same tasks and events in one connection, one
transaction per task (sqlite-scale build, on a copy of an empty database
the daemon created: same schema and indexes); for information also raw
SQLite inserting them all in one transaction (the batching ceiling, which
no server that acknowledges each task durably can reach).

  read    status, task-show (a task anywhere on the board: no memo hit),
          task-list after an id anywhere (its default page, 1000),
          task-ready (its default page, the queue's head), events-read
          after a seq anywhere (its default page, 1000)
  write   task-create, task-update (progress), task-claim (the queue's
          head), task-complete and task-release (of the tasks just claimed)

Targets (issue 19): every command's p99 within 1 ms (paged listings at
their default page); status within 2 x task-show (p50, as the p99 of a
20 us read is mostly the host's noise; the p99 ratio is printed too); RSS
under 16 MiB at 1,000,000 tasks; the build rate at least 0.8 x raw SQLite.
Exit status 1 when a target is missed (the figures are printed either way).

BENCH_SCALE_OPS (default 2000): requests per write command and at most
per read command; a read is repeated at most for BENCH_SCALE_READ_S
seconds (default 3) and at least 20 times (status on a big board is slow).
Servers and clients share one CPU (BENCH_CPU, default 0; "all": no
pinning), as in foundation.py.  BENCH_SCALE_TASKS=20000 runs in seconds.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foundation import call, daemon, pin  # noqa: E402  (the same daemon start and pinning)


def env_num(name, default, kind=int):
    try:
        return kind(os.environ.get(name, default))
    except ValueError:
        sys.exit("scale.py: %s must be a number, not %r" % (name, os.environ[name]))


TASKS = env_num("BENCH_SCALE_TASKS", "1000000")
CONNS = env_num("BENCH_SCALE_CONNS", "4")
DEPTH = env_num("BENCH_SCALE_DEPTH", "64")
OPS = env_num("BENCH_SCALE_OPS", "2000")
READ_S = env_num("BENCH_SCALE_READ_S", "3", float)
CPU = os.environ.get("BENCH_CPU", "0")
P99_TARGET_US = 1000
RSS_TARGET_KIB = 16 * 1024
STEP = 7919  # a prime: ids START + i * STEP % RANGE visit the board all over
PAGE = 1000  # the default page of task-list, task-ready and events-read
SMALL_PAGE = 100  # the listings again at this page, for information

CLAIMS = min(OPS, TASKS // 2)  # the raw claims come after the daemon's half stays done

MISSED = []


def verdict(ok, what):
    if not ok:
        MISSED.append(what)
    print("  %s %s" % ("target met:   " if ok else "target MISSED:", what), flush=True)


def client(bindir, sock, n, line, conns=1, depth=1, start=1, step=1, rng=1):
    argv = [os.path.join(bindir, "scaleclient"), sock, str(conns), str(depth), str(n),
            str(start), str(step), str(rng), line]
    out = subprocess.run(argv, capture_output=True, text=True, preexec_fn=pin)
    if out.returncode != 0 or not out.stdout:
        sys.exit("scaleclient: " + out.stderr)
    r = json.loads(out.stdout)
    if r["failed"]:
        sys.exit("scaleclient: %d of %d requests failed: %s" % (r["failed"], n, out.stderr))
    return r


def raw(bindir, db, mode, n, start=1, step=1, rng=1, page=PAGE):
    out = subprocess.run([os.path.join(bindir, "sqlite-scale"), db, mode, str(n), str(start),
                          str(step), str(rng), str(page)], capture_output=True, text=True,
                         preexec_fn=pin)
    if out.returncode != 0:
        sys.exit("sqlite-scale: " + out.stderr)
    return {r["mode"]: r for r in map(json.loads, out.stdout.splitlines())}


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def file_mib(path):
    return os.path.getsize(path) / 1048576 if os.path.exists(path) else 0.0


# name, request line, how its "%d" runs (start, step, range), is a read, page (listings)
def commands(n):
    spread = (1, STEP, n)
    cmds = [
        ("status", '{"id":1,"cmd":"status"}', (1, 1, 1), True),
        ("task-show", '{"id":1,"cmd":"task-show","args":{"id":%d}}', spread, True),
        ("task-list", '{"id":1,"cmd":"task-list","args":{"after":%d}}',
         (0, STEP, max(1, n - PAGE)), True),
        ("task-ready", '{"id":1,"cmd":"task-ready"}', (1, 1, 1), True),
        ("events-read", '{"id":1,"cmd":"events-read","args":{"after":%d}}',
         (0, STEP, max(1, n - PAGE)), True),
        ("task-create", '{"id":1,"cmd":"task-create","args":{"title":"scale task %d"}}',
         (n + 1, 1, 1 << 62), False),
        ("task-update", '{"id":1,"cmd":"task-update","args":{"id":%d,"progress":"halfway"}}',
         spread, False),
    ]
    # for information: the listings at a page of SMALL_PAGE (what a 1 ms page would hold)
    cmds += [
        ("task-list/%d" % SMALL_PAGE,
         '{"id":1,"cmd":"task-list","args":{"after":%%d,"limit":%d}}' % SMALL_PAGE,
         (0, STEP, max(1, n - SMALL_PAGE)), True),
        ("task-ready/%d" % SMALL_PAGE,
         '{"id":1,"cmd":"task-ready","args":{"limit":%d}}' % SMALL_PAGE, (1, 1, 1), True),
        ("events-read/%d" % SMALL_PAGE,
         '{"id":1,"cmd":"events-read","args":{"after":%%d,"limit":%d}}' % SMALL_PAGE,
         (0, STEP, max(1, n - SMALL_PAGE)), True),
    ]
    return [(name, line, how, is_read, SMALL_PAGE if "/" in name else PAGE)
            for name, line, how, is_read in cmds]


RAW_MODE = {"status": "status", "task-show": "show", "task-list": "list", "task-ready": "ready",
            "events-read": "events", "task-create": "create", "task-update": "update"}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scale.py BUILD BINDIR (bench/run.sh passes both)")
    if TASKS < 2 or OPS < 2 or CONNS < 1 or DEPTH < 1 or READ_S <= 0:
        sys.exit("scale.py: BENCH_SCALE_TASKS and BENCH_SCALE_OPS must be at least 2, "
                 "BENCH_SCALE_CONNS, BENCH_SCALE_DEPTH and BENCH_SCALE_READ_S positive")
    build, bindir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="colibri-bench-scale-")
    d = None
    res, ref = {}, {}
    try:
        print("colibri bench: scale, %d tasks (%s CPU %s; %d connections x %d in flight to build)"
              % (TASKS, "servers and clients on" if CPU != "all" else "no pinning,", CPU, CONNS,
                 DEPTH), flush=True)
        # An empty database the daemon created: the raw build's schema.
        e = daemon(build, os.path.join(tmp, "empty"), os.path.join(tmp, "empty.log"))
        e.stop()
        empty = os.path.join(tmp, "raw-build.sqlite")
        shutil.copy(os.path.join(tmp, "empty", "colibri.sqlite"), empty)

        state = os.path.join(tmp, "daemon")
        d = daemon(build, state, os.path.join(tmp, "daemon.log"))
        db = os.path.join(state, "colibri.sqlite")
        pid = d.proc.pid
        hwm0, rss0 = proc_status(pid)

        print("\nbuild: %d task-create through the daemon, then raw SQLite the same" % TASKS,
              flush=True)
        b = client(bindir, d.sock, TASKS, '{"id":1,"cmd":"task-create","args":{"title":'
                   '"scale task %d"}}', conns=CONNS, depth=DEPTH, start=1, rng=1 << 62)
        st = call(d.sock, '{"id":1,"cmd":"status"}')["result"]
        if st["counts"]["tasks"]["open"] != TASKS or st["last_seq"] < TASKS:
            sys.exit("the board holds %s open tasks and last seq %s, not %d" %
                     (st["counts"]["tasks"]["open"], st["last_seq"], TASKS))
        hwm_b, rss_b = proc_status(pid)
        bulk = empty + ".bulk"
        shutil.copy(empty, bulk)
        rb = raw(bindir, empty, "build", TASKS, start=1, rng=1 << 62)["build"]
        rk = raw(bindir, bulk, "bulk", TASKS, start=1, rng=1 << 62)["bulk"]
        os.unlink(empty)
        os.unlink(bulk)
        ratio_b = b["rps"] / rb["rps"]
        print("  raw SQLite, task + event, 1 txn per task  %9.0f tasks/s  %7.1f s" %
              (rb["rps"], rb["seconds"]))
        print("  colibri task-create, pipelined            %9.0f tasks/s  %7.1f s   %.2f x raw" %
              (b["rps"], b["seconds"], ratio_b))
        print("  (info) raw SQLite, all in 1 transaction  %9.0f tasks/s  %7.1f s   %.2f x raw" %
              (rk["rps"], rk["seconds"], rk["rps"] / rb["rps"]))
        print("  board: %d tasks, %d events; daemon VmRSS %d KiB before, VmHWM %d KiB VmRSS "
              "%d KiB after" % (st["counts"]["tasks"]["open"], st["last_seq"], rss0, hwm_b,
                                rss_b), flush=True)

        # The daemon, one command at a time, one request in flight.
        cmds = commands(TASKS)
        counts = {}
        for name, line, (start, step, rng), is_read, _ in cmds:
            n = OPS
            if is_read:
                # a probe (which also warms the daemon's cache) sets how many fit in READ_S
                p = client(bindir, d.sock, 5, line, start=start, step=2 * step + 1, rng=rng)
                n = max(20, min(OPS, int(READ_S / max(p["seconds"] / 5, 1e-6))))
            counts[name] = n
            res[name] = client(bindir, d.sock, n, line, start=start, step=step, rng=rng)
        # claim the queue's head CLAIMS times (tasks 1..CLAIMS: all open, same priority),
        # then complete the first half and release the second
        res["task-claim"] = client(bindir, d.sock, CLAIMS,
                                   '{"id":1,"cmd":"task-claim","args":{"agent":"bench"}}')
        half = CLAIMS // 2
        res["task-complete"] = client(bindir, d.sock, half,
                                      '{"id":1,"cmd":"task-complete","args":{"id":%d,"agent":'
                                      '"bench","result":{"ok":1}}}', start=1, rng=1 << 62)
        res["task-release"] = client(bindir, d.sock, CLAIMS - half,
                                     '{"id":1,"cmd":"task-release","args":{"id":%d,"agent":'
                                     '"bench"}}', start=half + 1, rng=1 << 62)
        st = call(d.sock, '{"id":1,"cmd":"status"}')["result"]["counts"]["tasks"]
        if st["done"] != half or st["claimed"] != 0:
            sys.exit("after the claims: %d done (want %d), %d claimed (want 0)" %
                     (st["done"], half, st["claimed"]))
        hwm, rss = proc_status(pid)
        d.stop()
        d = None
        db_mib, wal_mib = file_mib(db), file_mib(db + "-wal")

        # Raw SQLite on the same file, the same arguments.
        for name, line, (start, step, rng), is_read, page in cmds:
            ref.update({name: r for r in raw(bindir, db, RAW_MODE[name.split("/")[0]],
                                             counts.get(name, OPS), start, step, rng,
                                             page).values()})
        r = raw(bindir, db, "claim", CLAIMS)
        ref["task-claim"], ref["task-complete"], ref["task-release"] = \
            r["claim"], r["complete"], r["release"]

        print("\ncommands on the board, one request in flight; raw SQLite: the command's own "
              "statements on the same file")
        print("  %-16s %6s  %9s %9s   %9s %9s   %s" %
              ("command", "n", "p50 us", "p99 us", "raw p50", "raw p99", "p99 x raw"))
        order = [c[0] for c in cmds[:5]] + ["task-create", "task-update", "task-claim",
                                             "task-complete", "task-release"]
        for name in order + ["(info)"] + [c[0] for c in cmds[7:]]:
            if name == "(info)":
                print("  for information, the listings at a page of %d:" % SMALL_PAGE)
                continue
            r, q = res[name], ref[name]
            print("  %-16s %6d  %9d %9d   %9.1f %9.1f   %9.1f" %
                  (name, r["requests"], r["p50_us"], r["p99_us"], q["p50_us"], q["p99_us"],
                   r["p99_us"] / max(q["p99_us"], 0.1)), flush=True)

        print("\nmemory and disk at %d tasks" % TASKS)
        print("  daemon VmHWM %d KiB, VmRSS %d KiB (%.2f x the %d KiB target)" %
              (hwm, rss, hwm / RSS_TARGET_KIB, RSS_TARGET_KIB))
        print("  database %.1f MiB (+ WAL %.1f MiB), %.0f bytes per task with its event" %
              (db_mib, wal_mib, (db_mib + wal_mib) * 1048576 / TASKS))

        print()
        slow = ["%s %d us" % (n, res[n]["p99_us"]) for n in order
                if res[n]["p99_us"] > P99_TARGET_US]
        verdict(not slow, "every command's p99 within 1 ms%s" %
                (" (over: " + ", ".join(slow) + ")" if slow else ""))
        # judged on p50: task-show's p99 is the host's noise on a loaded machine (18 us p50,
        # 170-280 us p99 at 1,000,000 tasks here); the p99 ratio is printed beside it
        s, t = res["status"], res["task-show"]
        verdict(s["p50_us"] <= 2 * t["p50_us"],
                "status within 2 x task-show: p50 %d us = %.1f x %d us (p99 %.1f x)" %
                (s["p50_us"], s["p50_us"] / max(t["p50_us"], 1), t["p50_us"],
                 s["p99_us"] / max(t["p99_us"], 1)))
        verdict(hwm < RSS_TARGET_KIB, "RSS under 16 MiB at %d tasks: VmHWM %d KiB" % (TASKS, hwm))
        verdict(ratio_b >= 0.8, "build rate >= 0.8 x raw SQLite in one connection: %.2f x" %
                ratio_b)
    finally:
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if MISSED:
        print("\nscale: %d target(s) missed: %s" % (len(MISSED), "; ".join(MISSED)))
        sys.exit(1)


if __name__ == "__main__":
    main()
