"""`firmlm serve`: an OpenAI-compatible completions server for a local model (+ adapter).

Endpoints: ``GET /v1/models`` and ``POST /v1/completions`` (``prompt``, ``max_tokens``; greedy unless
``temperature`` > 0, then nucleus sampling with ``top_p``, reproducible by ``seed``). For IDE
plugins, and the real server the API backend is tested against over loopback HTTP. One generation runs at a
time; at most ``max_queue`` requests wait for it and the rest get HTTP 503 with ``Retry-After`` at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

from firmlm.evaluate.backends import Sampling
from firmlm.evaluate.backends.local import LocalBackend

log = logging.getLogger(__name__)
MAX_TOKENS_LIMIT = 2048
RETRY_AFTER_S = 1
T = TypeVar("T")


class QueueFull(Exception):
    """Raised by GenerationQueue.run when ``max_queue`` callers already wait."""

    def __init__(self, queued: int, max_queue: int):
        super().__init__(f"server busy: {queued} requests queued (max_queue={max_queue}); retry later")


class GenerationQueue:
    """Runs one generation at a time with at most ``max_queue`` callers waiting; further callers are refused."""

    def __init__(self, max_queue: int):
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        self.max_queue = max_queue
        self.in_flight = 0  # running (at most 1) + waiting
        self._count = threading.Lock()
        self._run = threading.Lock()

    def run(self, fn: Callable[[], T]) -> T:
        """Return ``fn()`` once no other generation runs; raise QueueFull at once when the queue is full."""
        with self._count:
            if self.in_flight > self.max_queue:
                raise QueueFull(self.in_flight - 1, self.max_queue)
            self.in_flight += 1
        try:
            with self._run:
                return fn()
        finally:
            with self._count:
                self.in_flight -= 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a request thread never keeps the process alive
    block_on_close = False  # server_close() does not wait for generations in progress
    request_queue_size = 128  # listen backlog (the standard library's 5 resets bursts of clients)


def make_handler(backend: LocalBackend, model_name: str, queue: GenerationQueue):
    class Handler(BaseHTTPRequestHandler):
        server_version = "firmlm"

        def log_message(self, fmt, *args):  # route through logging, never print prompts
            log.debug("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> None:
            self._send(status, {"error": {"message": message, "type": kind}}, headers)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "firmlm"}]})
            else:
                self._error(404, f"unknown path {self.path}")

        def do_POST(self):
            if self.path.rstrip("/") != "/v1/completions":
                self._error(404, f"unknown path {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
            except (ValueError, json.JSONDecodeError):
                self._error(400, "body must be a JSON object")
                return
            prompt, max_tokens = body.get("prompt"), body.get("max_tokens", 16)
            if isinstance(prompt, list) and len(prompt) == 1:
                prompt = prompt[0]
            if not isinstance(prompt, str):
                self._error(400, "`prompt` must be a string")
                return
            if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
                self._error(400, f"`max_tokens` must be an integer in 1..{MAX_TOKENS_LIMIT}")
                return
            if body.get("stream"):
                self._error(400, "streaming is not supported; send stream=false")
                return
            temperature, top_p, seed = body.get("temperature", 0), body.get("top_p", 1.0), body.get("seed", 0)
            if not all(isinstance(v, int | float) for v in (temperature, top_p, seed)) or not (
                    0 <= temperature <= 2 and 0 < top_p <= 1):
                self._error(400, "`temperature` must be in 0..2, `top_p` in (0, 1], `seed` an integer")
                return
            sampling = Sampling(float(temperature), float(top_p), int(seed)) if temperature > 0 else None
            try:
                (text,) = queue.run(lambda: backend.complete([prompt], max_tokens) if sampling is None
                                    else backend.complete([prompt], max_tokens, sampling))
            except QueueFull as exc:
                self._error(503, str(exc), "server_busy", {"Retry-After": str(RETRY_AFTER_S)})
                return
            self._send(200, {
                "id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "text_completion", "created": int(time.time()),
                "model": model_name, "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": None}],
            })

    return Handler


class CompletionServer:
    """A threaded HTTP server around a LocalBackend; ``port=0`` picks a free port.

    One generation runs at a time; ``max_queue`` requests may wait for it, further ones get HTTP 503.
    """

    def __init__(self, backend: LocalBackend, model_name: str, host: str = "127.0.0.1", port: int = 8000,
                 max_queue: int = 64):
        self.queue = GenerationQueue(max_queue)
        self.httpd = _HTTPServer((host, port), make_handler(backend, model_name, self.queue))
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CompletionServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def load_backend(model_ref: str, adapter: Path | None, max_prompt_tokens: int = 1024) -> LocalBackend:
    from firmlm import models

    placement = models.placement_for(model_ref)  # GPU: bf16 (device_map when too large); CPU: fp32
    model, tokenizer = models.load_with_adapter(model_ref, adapter, placement)
    return LocalBackend(model, tokenizer, name=model_ref, batch_size=1, max_prompt_tokens=max_prompt_tokens)
