"""A loopback HTTP server speaking the Anthropic Messages API, replaying recorded proposals.

``POST /v1/messages`` answers each request with the next recorded proposal as a proper Messages
response: ``id``, ``type: "message"``, ``role``, ``model`` (echoed), ``content``, ``stop_reason``,
``stop_sequence`` and ``usage`` (``input_tokens`` ~ request characters / 4, ``output_tokens`` ~
content characters / 4, cache fields 0). A recording is

* a string: a markdown text, as a model would write it (``content: [{"type": "text", ...}]``,
  ``stop_reason: "end_turn"``);
* a dict ``{"content": [...blocks...], "stop_reason": ...}``: served as given (tool use:
  ``{"type": "tool_use", "id": ..., "name": ..., "input": {...}}`` blocks, ``"tool_use"``);
* a callable ``f(request_body) -> string | dict``: a scripted conversation that answers from what
  the request contains (e.g. the tool results of the previous turn).

Once the recordings are used up it repeats the last one.
Malformed requests (no ``model``/``max_tokens``/``messages``) get a Messages API error object with
HTTP 400, a request without credentials (``x-api-key`` or ``Authorization: Bearer``) 401.

The server counts requests and keeps each request's JSON body and API key
(:attr:`MessagesAPIServer.requests`), so tests can assert how many paid calls were made and what
the prompts contained. ``GET /stats`` returns ``{"requests": n}``.

Used in-process by ``tests/test_discovery.py`` (the real ``anthropic`` client points at it via
``base_url``); standalone for manual runs::

    python tests/messages_api_server.py --port 8011 proposals/*.md
    ANTHROPIC_API_KEY=test tts-gym discover --base-url http://127.0.0.1:8011 ...

Listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MessagesAPIServer:
    """``with MessagesAPIServer(proposals) as srv: ... srv.url ... srv.count``"""

    def __init__(self, proposals, port: int = 0, delay_s: float = 0.0) -> None:
        self.proposals = list(proposals)
        if not self.proposals:
            raise ValueError("at least one recorded proposal is needed")
        self.delay_s = float(delay_s)
        self.requests: list[dict] = []
        self.api_keys: list[str | None] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, obj: dict) -> None:
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.send_header("request-id", f"req_test_{len(server.requests):04d}")
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                if self.path.rstrip("/") == "/stats":
                    return self._send(200, {"requests": server.count})
                return self._send(404, _error("not_found_error", "not found"))

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                if self.path.split("?")[0].rstrip("/") != "/v1/messages":
                    return self._send(404, _error("not_found_error", f"no route {self.path}"))
                key = self.headers.get("x-api-key")
                auth = self.headers.get("authorization") or ""
                if not key and auth.lower().startswith("bearer "):
                    key = auth[7:].strip()
                if not key:
                    return self._send(401, _error("authentication_error",
                                                  "an x-api-key or Authorization: Bearer header is required"))
                try:
                    req = json.loads(body)
                except json.JSONDecodeError:
                    return self._send(400, _error("invalid_request_error", "body is not JSON"))
                missing = [k for k in ("model", "max_tokens", "messages") if k not in req]
                if missing:
                    return self._send(400, _error("invalid_request_error", f"missing: {missing}"))
                with server._lock:
                    i = len(server.requests)
                    server.requests.append(req)
                    server.api_keys.append(key)
                    rec = server.proposals[min(i, len(server.proposals) - 1)]
                if callable(rec):
                    try:
                        rec = rec(req)
                    except Exception as exc:  # noqa: BLE001 - a broken script is a 500 error
                        return self._send(500, _error("api_error", f"script failed: {exc!r}"))
                if isinstance(rec, str):
                    content, stop = [{"type": "text", "text": rec}], "end_turn"
                else:
                    content, stop = rec["content"], rec.get("stop_reason", "end_turn")
                if server.delay_s:
                    time.sleep(server.delay_s)
                self._send(200, {
                    "id": f"msg_test_{i:04d}", "type": "message", "role": "assistant",
                    "model": req["model"], "content": content,
                    "stop_reason": stop, "stop_sequence": None,
                    "usage": {"input_tokens": max(1, len(body) // 4),
                              "output_tokens": max(1, len(json.dumps(content)) // 4),
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> "MessagesAPIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "MessagesAPIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("proposals", nargs="+", help="markdown files, served in this order")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args(argv)
    srv = MessagesAPIServer([Path(p).read_text() for p in args.proposals], args.port, args.delay)
    srv.start()
    print(f"serving the Messages API on {srv.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
