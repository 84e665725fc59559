#!/usr/bin/python3
"""bench/tui_fake_daemon.py SOCKET [AGENTS] [RATE] -- a stand-in colibri-daemon
for the dashboard benchmark.

Real agents cannot change state ten thousand times a second cheaply, so this
speaks just enough of the protocol (docs/protocol.md) for colibri-glasspane:
status, list-agents, agent-status, task-list, session-read, kill-agent,
subscribe (with since, replayed from memory) and unsubscribe.  Once a client
subscribes, a generator thread sends RATE agent.state events a second,
round-robin over AGENTS agents, each event a real transition (from the
agent's current state to the next in a working/blocked/working/idle cycle).

Used as a module by bench/tui_bench.py (FakeDaemon), or alone for a manual
look: `bench/tui_fake_daemon.py /tmp/fake.sock 1000 10000` and then
`colibri-glasspane --socket /tmp/fake.sock`.
"""
import json
import os
import socket
import sys
import threading
import time

CYCLE = ("working", "blocked", "working", "idle")
REASON = {"working": "run started", "blocked": "retry 1/3 in 2000ms", "idle": "prompt finished"}
PROVIDERS = ("pi", "zot", "local")
REPLAY_MAX = 200000


def now_ms():
    return int(time.time() * 1000)


class FakeDaemon:
    def __init__(self, path, agents=1000, rate=10000):
        self.path = path
        self.rate = rate
        self.ids = ["bench-%04d" % i for i in range(agents)]
        self.state = {a: "idle" for a in self.ids}
        self.step = {a: 0 for a in self.ids}
        self.seq = 0
        self.sent = 0
        self.log = []  # (seq, line) of the newest events, for subscribe since
        self.lock = threading.Lock()
        self.subs = []  # (sock, write lock)
        self.running = True
        self.streaming = threading.Event()
        self.paused = False
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.srv.bind(path)
        self.srv.listen(16)

    # ---- objects ----

    def agent(self, aid):
        i = int(aid.split("-")[1])
        st = self.state[aid]
        return {"id": aid, "kind": "spawned", "name": None, "provider": PROVIDERS[i % 3],
                "host": "bench", "pid": 10000 + i, "session_id": aid, "state": st,
                "reason": REASON[st] if st != "idle" else "spawned", "since_ms": now_ms(),
                "tenant": "tenant-%d" % (i % 7), "activity": "tool bash" if st == "working" else st,
                "turns": self.step[aid] // 4, "tool_calls": self.step[aid] // 2,
                "last_event_ms": now_ms(), "last_error": None,
                "usage": {"input": 1000 + i, "output": 100, "cache_read": 3000 + i,
                          "cache_write": 0, "total_tokens": 4100 + 2 * i,
                          "cost": 0.001 * (i % 50)},
                "restarts": 0, "exit_code": None, "signal": None, "jail": None, "live": True}

    def status(self):
        return {"version": "0.1.0-fake", "protocol": 1, "host": "bench", "pid": os.getpid(),
                "counts": {"tasks": {"open": 3, "claimed": 2, "done": 5, "cancelled": 0,
                                     "ready": 1},
                           "agents": len(self.ids), "tenants": 0, "events": self.seq},
                "last_seq": self.seq}

    # ---- requests ----

    def answer(self, req):
        cmd, args = req.get("cmd"), req.get("args") or {}
        with self.lock:
            if cmd == "status":
                return self.status()
            if cmd == "list-agents":
                return {"items": [self.agent(a) for a in self.ids]}
            if cmd == "agent-status":
                if args.get("id") not in self.state:
                    raise KeyError(args.get("id"))
                return self.agent(args["id"])
            if cmd in ("task-list", "task-ready"):
                return {"items": []}
            if cmd == "session-read":
                return {"lines": [], "next": 0, "session_id": args.get("id")}
            if cmd == "kill-agent":
                return self.agent(args["id"])
            if cmd == "unsubscribe":
                return {}
        raise LookupError(cmd)

    def serve_conn(self, sock):
        wlock = threading.Lock()
        buf = b""
        try:
            while self.running:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.handle(sock, wlock, json.loads(line))
        except OSError:
            pass
        with self.lock:
            self.subs = [s for s in self.subs if s[0] is not sock]
        sock.close()

    def handle(self, sock, wlock, req):
        rid = req.get("id")
        if req.get("cmd") == "subscribe":
            return self.subscribe(sock, wlock, rid, (req.get("args") or {}).get("since"))
        try:
            reply = {"id": rid, "ok": True, "result": self.answer(req)}
        except KeyError as e:
            reply = {"id": rid, "ok": False, "error": {"code": "not_found", "message": str(e)}}
        except LookupError as e:
            reply = {"id": rid, "ok": False,
                     "error": {"code": "unknown_command", "message": str(e)}}
        with wlock:
            sock.sendall((json.dumps(reply) + "\n").encode())

    def subscribe(self, sock, wlock, rid, since):
        with self.lock, wlock:
            sock.sendall((json.dumps({"id": rid, "ok": True, "result": {"seq": self.seq}}) +
                          "\n").encode())
            if since is not None:
                old = "".join(l for s, l in self.log if s > since)
                sock.sendall(old.encode())
            self.subs.append((sock, wlock))
        self.streaming.set()

    # ---- events ----

    def make_events(self, n):
        out = []
        ts = now_ms()
        for _ in range(n):
            aid = self.ids[self.sent % len(self.ids)]
            frm = self.state[aid]
            self.step[aid] += 1
            to = CYCLE[self.step[aid] % len(CYCLE)]
            if to == frm:
                self.step[aid] += 1
                to = CYCLE[self.step[aid] % len(CYCLE)]
            self.state[aid] = to
            self.seq += 1
            self.sent += 1
            line = ('{"event":"agent.state","seq":%d,"ts":%d,"data":{"id":"%s","from":"%s",'
                    '"to":"%s","reason":"%s","cause":"bench","at_ms":%d}}\n'
                    % (self.seq, ts, aid, frm, to, REASON[to], ts))
            self.log.append((self.seq, line))
            out.append(line)
        if len(self.log) > REPLAY_MAX:
            del self.log[:len(self.log) - REPLAY_MAX]
        return "".join(out).encode()

    def generate(self):
        self.streaming.wait()
        t0, due_sent = time.monotonic(), 0
        while self.running:
            time.sleep(0.005)
            if self.paused:
                t0, due_sent = time.monotonic(), 0
                continue
            due = int((time.monotonic() - t0) * self.rate)
            n = due - due_sent
            if n <= 0:
                continue
            due_sent = due
            with self.lock:
                data = self.make_events(n)
                subs = list(self.subs)
            for sock, wlock in subs:
                try:
                    with wlock:
                        sock.sendall(data)
                except OSError:
                    pass

    def accept_loop(self):
        while self.running:
            try:
                sock, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_conn, args=(sock,), daemon=True).start()

    def start(self):
        threading.Thread(target=self.accept_loop, daemon=True).start()
        threading.Thread(target=self.generate, daemon=True).start()
        return self

    def last_seq(self):
        with self.lock:
            return self.seq

    def stop(self):
        self.running = False
        self.srv.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: tui_fake_daemon.py SOCKET [AGENTS] [RATE]")
    fd = FakeDaemon(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
                    int(sys.argv[3]) if len(sys.argv) > 3 else 10000).start()
    try:
        while True:
            time.sleep(1)
            print("seq %d" % fd.last_seq(), flush=True)
    except KeyboardInterrupt:
        fd.stop()
