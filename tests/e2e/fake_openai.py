"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for running
the real pi offline (see /work/shared/fixtures/README.md).

pi POSTs /v1/chat/completions with stream: true and
stream_options.include_usage; the answer is OpenAI-style SSE: chunks with
choices[0].delta (content or tool_calls), a finish chunk, a usage chunk, and
`data: [DONE]`.  The model id picks the behaviour:

  fake-text   streams "Hello from the fake model."
  fake-tool   first asks for the bash tool with {"command": "echo hi"}; once
              the request carries the tool's result, streams a text answer
  fake-sleep  like fake-tool, with {"command": "sleep 60"} (a tool child to kill)
  fake-cmd    like fake-tool, the command being the text of the first user
              message (the prompt): a test's way to run a shell line in pi's place
  fake-400    answers HTTP 400 {"error": {"message": "fake bad request: model refuses"}}
  fake-sleep-once  fake-sleep for its first request only, then text (a run to
              interrupt, then continue: agent-resume)
  fake-429    a provider's rate limit: the first `quota_429` requests for it (1
              unless set) get HTTP 429 with `Retry-After: 3` and OpenAI's wording
              ("... Please try again in 3s."), later ones the text answer

Every request is kept in `requests` (path, body and the Authorization
header).  With `key` set the server is a provider that needs its API key:
a request without `Authorization: Bearer KEY` gets HTTP 401 (which pi does
not retry) and no model output.  Run standalone with
`python3 fake_openai.py [PORT]` to poke at it by hand.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_400 = "fake bad request: model refuses"
ERROR_401 = "fake: missing or wrong API key"
ERROR_429 = ("Rate limit reached for fake-429 in organization org-fake on requests per min "
             "(RPM): Limit 1, Used 1, Requested 1. Please try again in 3s.")
TEXT = ["Hello", " from", " the", " fake", " model", "."]


def chunk(model, n, delta=None, finish=None, usage=None):
    c = {"id": "chatcmpl-fake%d" % n, "object": "chat.completion.chunk", "created": int(time.time()),
         "model": model, "choices": []}
    if delta is not None or finish is not None:
        c["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        c["usage"] = usage
    return c


def prompt_text(body):
    """The text of the first user message (a string, or a list of parts)."""
    for m in body.get("messages", []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return "".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_sse(self, chunks):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for c in chunks:
            self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def send_error_json(self, code, message, kind, headers=()):
        payload = json.dumps({"error": {"message": message, "type": kind}}).encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        auth = self.headers.get("Authorization")
        self.server.requests.append({"path": self.path, "body": body, "auth": auth})
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        if self.server.key is not None and auth != "Bearer " + self.server.key:
            self.send_error_json(401, ERROR_401, "invalid_api_key")
            return
        model = body.get("model", "")
        seq = len(self.server.requests)
        usage = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
        if model == "fake-400":
            self.send_error_json(400, ERROR_400, "invalid_request_error")
            return
        if model == "fake-429" and self.server.quota_429 > 0:
            self.server.quota_429 -= 1
            self.server.refused.append(time.time())
            self.send_error_json(429, ERROR_429, "requests", [("Retry-After", "3")])
            return
        has_tool_result = any(m.get("role") == "tool" for m in body.get("messages", []))
        if model == "fake-sleep-once":
            # The first request: a tool call that hangs (a run to interrupt); later ones answer.
            self.server.sleep_once += 1
            if self.server.sleep_once > 1:
                has_tool_result = True
            model = "fake-sleep"
        if model in ("fake-tool", "fake-sleep", "fake-cmd") and not has_tool_result:
            command = {"fake-tool": "echo hi", "fake-sleep": "sleep 60"}.get(model)
            if command is None:
                command = prompt_text(body)
            args = json.dumps({"command": command})
            call = {"index": 0, "id": "call_fake_1", "type": "function",
                    "function": {"name": "bash", "arguments": ""}}
            chunks = [chunk(model, seq, {"role": "assistant", "content": None, "tool_calls": [call]})]
            for i in range(0, len(args), 8):
                chunks.append(chunk(model, seq, {"tool_calls": [
                    {"index": 0, "function": {"arguments": args[i:i + 8]}}]}))
            chunks.append(chunk(model, seq, finish="tool_calls"))
            chunks.append(chunk(model, seq, usage=usage))
            self.send_sse(chunks)
            return
        chunks = [chunk(model, seq, {"role": "assistant", "content": ""})]
        chunks += [chunk(model, seq, {"content": w}) for w in TEXT]
        chunks.append(chunk(model, seq, finish="stop"))
        chunks.append(chunk(model, seq, usage=usage))
        self.send_sse(chunks)


class FakeOpenAI:
    """The server on 127.0.0.1:port (0 picks one), served from a thread; with
    key, every request must carry `Authorization: Bearer KEY`."""

    def __init__(self, port=0, key=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.httpd.key = key
        self.httpd.quota_429 = 1  # fake-429: how many more requests get HTTP 429
        self.httpd.sleep_once = 0  # fake-sleep-once: requests seen
        self.httpd.refused = []  # when each 429 went out (time.time())
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.httpd.requests

    @property
    def refused(self):
        return self.httpd.refused

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    srv = FakeOpenAI(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("fake OpenAI on http://127.0.0.1:%d/v1" % srv.port, flush=True)
    try:
        srv.thread.join()
    except KeyboardInterrupt:
        srv.close()
