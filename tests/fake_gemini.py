"""A local fake of the Gemini REST API for tests.

It speaks just enough of the wire protocol for the real ``google-genai`` client:
``POST /v1beta/models/{model}:generateContent`` (JSON) and
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (server-sent events).
Each request is recorded (path, headers, parsed JSON body) so tests can inspect what
LungScan actually sent; responses are scripted per call with `FakeGemini.script`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: an HTTP status with a JSON body, SSE chunks, or a stall."""

    status: int = 200
    body: dict[str, Any] | None = None
    sse_chunks: list[dict[str, Any]] | None = None
    delay_s: float = 0.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def raw(self) -> str:
        return json.dumps(self.body)


def text_response(text: str, finish_reason: str = "STOP") -> dict[str, Any]:
    """A generateContent body whose single candidate says `text`."""
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish_reason, "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "fake-model",
    }


def error_body(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def ok(text: str) -> Reply:
    return Reply(200, text_response(text))


def stream(*texts: str) -> Reply:
    chunks = [text_response(t, finish_reason="") for t in texts]
    for chunk in chunks:
        del chunk["candidates"][0]["finishReason"]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    return Reply(200, sse_chunks=chunks)


def too_many_requests() -> Reply:
    return Reply(429, error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded (fake)."))


def server_error() -> Reply:
    return Reply(500, error_body(500, "INTERNAL", "Internal error (fake)."))


def stall(seconds: float) -> Reply:
    return Reply(200, text_response("too late"), delay_s=seconds)


def safety_finish() -> Reply:
    body = text_response("", finish_reason="SAFETY")
    body["candidates"][0]["content"] = {"role": "model", "parts": []}
    body["candidates"][0]["safetyRatings"] = [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
    ]
    return Reply(200, body)


def prompt_blocked() -> Reply:
    return Reply(200, {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "fake-model"})


@dataclass
class FakeGemini:
    """Threaded HTTP server on 127.0.0.1 with a random port; use as a context manager."""

    default: Reply = field(default_factory=lambda: ok("{}"))
    requests: list[Recorded] = field(default_factory=list)
    _queue: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next calls; once they run out, `default` answers."""
        with self._lock:
            self._queue.extend(replies)

    def next_reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            return self._queue.popleft() if self._queue else self.default

    def __enter__(self) -> FakeGemini:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            recorded = Recorded(self.path, dict(self.headers.items()), json.loads(raw or b"{}"))
            reply = fake.next_reply(recorded)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if ":generateContent" not in self.path and ":streamGenerateContent" not in self.path:
                self._send_json(404, error_body(404, "NOT_FOUND", f"No route {self.path}"))
            elif reply.sse_chunks is not None and reply.status == 200:
                self._send_sse(reply.sse_chunks)
            else:
                body = reply.body or {}
                if reply.status == 200 and ":streamGenerateContent" in self.path:
                    self._send_sse([body])
                else:
                    self._send_json(reply.status, body)

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send_sse(self, chunks: list[dict[str, Any]]) -> None:
            data = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
