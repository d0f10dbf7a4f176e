"""`firmlm serve`: an OpenAI-compatible completions server for a local model (+ adapter).

Endpoints: ``GET /v1/models`` and ``POST /v1/completions`` (greedy; ``prompt``, ``max_tokens``). For IDE
plugins, and the real server the API backend is tested against over loopback HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from firmlm.evaluate.backends.local import LocalBackend

log = logging.getLogger(__name__)
MAX_TOKENS_LIMIT = 2048


def make_handler(backend: LocalBackend, model_name: str):
    class Handler(BaseHTTPRequestHandler):
        server_version = "firmlm"

        def log_message(self, fmt, *args):  # route through logging, never print prompts
            log.debug("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

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
            (text,) = backend.complete([prompt], max_tokens)
            self._send(200, {
                "id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "text_completion", "created": int(time.time()),
                "model": model_name, "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": None}],
            })

    return Handler


class CompletionServer:
    """A threaded HTTP server around a LocalBackend; ``port=0`` picks a free port."""

    def __init__(self, backend: LocalBackend, model_name: str, host: str = "127.0.0.1", port: int = 8000):
        self.httpd = ThreadingHTTPServer((host, port), make_handler(backend, model_name))
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

    model, tokenizer = models.load_merged(model_ref, adapter) if adapter else models.load(model_ref)
    return LocalBackend(model, tokenizer, name=model_ref, batch_size=1, max_prompt_tokens=max_prompt_tokens)
