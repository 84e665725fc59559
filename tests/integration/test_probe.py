"""colibri-probe against a fake DeepSeek on 127.0.0.1.

The fake answers POST /chat/completions with DeepSeek-style SSE: content
chunks with "usage": null, then a chunk with empty choices and the usage
(prompt_cache_hit_tokens / prompt_cache_miss_tokens), then [DONE].  The
first call misses, later ones hit, as DeepSeek's cache does.  We check the
numbers the probe prints, what the server received (same prefix every time,
the Authorization header), that the key never appears in the output, and the
exit codes for a missing key and an HTTP error.
"""
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BUILD, bin_path

KEY = "sk-test-0123456789abcdefSECRET"
PROMPT_TOKENS = 1600
HIT_TOKENS = 1536


def probe_path():
    try:
        return bin_path("colibri-probe")
    except FileNotFoundError:
        pytest.skip("colibri-probe not built (no libcurl) in " + BUILD)


class FakeDeepSeek(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def sse(self, obj):
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n))
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                 "body": body})
            call = len(srv.requests)
        if self.headers.get("Authorization") != "Bearer " + KEY:
            err = json.dumps({"error": {"message": "Authentication Fails", "type": "auth"}})
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(err.encode())
            return
        hit = 0 if call == 1 else HIT_TOKENS
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c%d" % call, "object": "chat.completion.chunk", "created": 1,
                "model": body["model"], "system_fingerprint": "fp_1"}
        for piece in ({"role": "assistant", "content": ""}, {"content": "ok"}):
            self.sse(dict(base, choices=[{"index": 0, "delta": piece, "logprobs": None,
                                          "finish_reason": None}], usage=None))
        self.sse(dict(base, choices=[{"index": 0, "delta": {"content": ""},
                                      "finish_reason": "stop"}], usage=None))
        self.sse(dict(base, choices=[], usage={
            "prompt_tokens": PROMPT_TOKENS, "completion_tokens": 1,
            "total_tokens": PROMPT_TOKENS + 1,
            "prompt_tokens_details": {"cached_tokens": hit},
            "prompt_cache_hit_tokens": hit, "prompt_cache_miss_tokens": PROMPT_TOKENS - hit}))
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeDeepSeek)
    srv.requests = []
    srv.lock = threading.Lock()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def probe_env(key=KEY):
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    env.pop("DEEPSEEK_API_KEY", None)
    if key is not None:
        env["DEEPSEEK_API_KEY"] = key
    return env


def run_probe(srv, args, key=KEY):
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    return subprocess.run([probe_path(), "--base-url", url + "/", "--timeout", "20"] + args,
                          capture_output=True, text=True, env=probe_env(key),
                          stdin=subprocess.DEVNULL, timeout=60)


def test_probe_text_report(server):
    p = run_probe(server, [])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("call 1: hit 0 miss 1600 out 1 hit-share 0.0% (")
    assert lines[1].startswith("call 2: hit 1536 miss 64 out 1 hit-share 96.0% (")
    assert lines[2].startswith("call 3: hit 1536 miss 64 out 1 hit-share 96.0% (")
    assert lines[3] == "total: calls 3 hit 3072 miss 1728 hit-share 64.0%"
    assert lines[4] == "warm calls (2..3): hit-share 96.0%"
    assert KEY not in p.stdout + p.stderr
    reqs = server.requests
    assert len(reqs) == 3
    assert all(r["path"] == "/chat/completions" for r in reqs)
    assert all(r["auth"] == "Bearer " + KEY for r in reqs)
    assert reqs[0]["body"] == reqs[1]["body"] == reqs[2]["body"]
    body = reqs[0]["body"]
    assert body["model"] == "deepseek-chat"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    system = body["messages"][0]
    assert system["role"] == "system" and len(system["content"]) >= 5500
    assert KEY not in json.dumps(body)


def test_probe_json_report(server):
    p = run_probe(server, ["--json", "--calls", "2", "--model", "deepseek-reasoner"])
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["model"] == "deepseek-reasoner"
    assert [c["call"] for c in rep["calls"]] == [1, 2]
    assert rep["calls"][0]["usage"]["in_hit"] == 0
    assert rep["calls"][0]["usage"]["in_miss"] == PROMPT_TOKENS
    assert rep["calls"][1]["usage"]["in_hit"] == HIT_TOKENS
    assert rep["total"]["in_hit"] == HIT_TOKENS
    assert rep["total"]["calls"] == 2
    assert rep["warm_hit_share"] == pytest.approx(HIT_TOKENS / PROMPT_TOKENS)
    assert rep["prefix_bytes"] == len(server.requests[0]["body"]["messages"][0]["content"])
    assert KEY not in p.stdout


def test_probe_missing_key(server):
    for key in (None, ""):
        p = run_probe(server, [], key=key)
        assert p.returncode == 2
        assert "DEEPSEEK_API_KEY" in p.stderr
        assert p.stdout == ""
    assert server.requests == []


def test_probe_http_error(server):
    p = run_probe(server, [], key="sk-wrong-key-SECRET")
    assert p.returncode == 1
    assert "HTTP 401" in p.stderr and "Authentication Fails" in p.stderr
    assert "sk-wrong-key-SECRET" not in p.stdout + p.stderr
    assert len(server.requests) == 1


def test_probe_usage_error():
    p = subprocess.run([probe_path(), "--calls", "0"], capture_output=True, text=True,
                       env=probe_env())
    assert p.returncode == 2
    assert "usage:" in p.stderr
