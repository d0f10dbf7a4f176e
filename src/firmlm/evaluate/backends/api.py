"""Any OpenAI-compatible HTTP API as a completion backend.

Base models use ``/v1/completions`` with the prefix as the prompt. Chat models use ``/v1/chat/completions``
with ``CHAT_INSTRUCTION`` as the system message and the prefix as the user message. Requests are retried with
exponential backoff (429, 5xx, timeouts, connection errors), run with bounded concurrency, and cached in
SQLite by a hash of (endpoint, payload): a rerun, or a rerun after a crash, never sends a finished request
again. The API key is read from the environment variable named by ``api_key_env`` and never stored or logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from firmlm.errors import FirmlmError
from firmlm.evaluate.backends import Sampling

CHAT_INSTRUCTION = (
    "You complete source code. Continue the user's code exactly where it stops. Reply with the continuation "
    "only: no explanation, no Markdown fences, and do not repeat the given code."
)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ApiError(FirmlmError):
    """An API request failed after its retries."""


class RequestCache:
    """SQLite cache of finished API responses, keyed by request hash (safe across threads)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT NOT NULL)")
        self._lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, body: dict) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO responses (key, body) VALUES (?, ?)", (key, json.dumps(body)))


@dataclass
class ApiStats:
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class ApiBackend:
    """Completions from an OpenAI-compatible server."""

    def __init__(self, base_url: str, model: str, cache_path: Path, chat: bool = False, api_key_env: str | None = None,
                 concurrency: int = 4, timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 1.0,
                 system_message: str = CHAT_INSTRUCTION):
        self.system_message = system_message  # chat endpoints only
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"api:{model}"
        self.chat = chat
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.cache = RequestCache(cache_path)
        self.stats = ApiStats()
        self._stats_lock = threading.Lock()

    @classmethod
    def from_config(cls, api, cache_path: Path, system_message: str = CHAT_INSTRUCTION) -> ApiBackend:
        """A backend for an :class:`~firmlm.config.ApiModelConfig` (endpoint, model, chat, key, limits)."""
        return cls(api.base_url, api.model, cache_path, chat=api.chat, api_key_env=api.api_key_env,
                   concurrency=api.concurrency, timeout_s=api.timeout_s, max_retries=api.max_retries,
                   system_message=system_message)

    def _payload(self, prompt: str, max_new_tokens: int, sampling: Sampling | None = None) -> tuple[str, dict]:
        decoding: dict = {"temperature": 0}
        if sampling is not None:
            decoding = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
        if self.chat:
            return "/v1/chat/completions", {
                "model": self.model, **decoding, "max_tokens": max_new_tokens,
                "messages": [{"role": "system", "content": self.system_message}, {"role": "user", "content": prompt}],
            }
        return "/v1/completions", {"model": self.model, "prompt": prompt, **decoding, "max_tokens": max_new_tokens}

    def _count(self, attr: str, failure: str | None = None) -> None:
        with self._stats_lock:
            if failure:
                self.stats.failures[failure] = self.stats.failures.get(failure, 0) + 1
            else:
                setattr(self.stats, attr, getattr(self.stats, attr) + 1)

    def _post(self, endpoint: str, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(payload).encode()
        last = "unknown"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.base_url + endpoint, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                last = f"http-{exc.code}"
                if exc.code not in RETRY_STATUS:
                    break
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                last = "timeout" if "timed out" in str(exc) else "connection"
        self._count("", failure=last)
        raise ApiError(f"{self.base_url}{endpoint}: request failed after {self.max_retries} retries ({last})")

    def request(self, prompt: str, max_new_tokens: int, sampling: Sampling | None = None) -> tuple[str, dict, bool]:
        """(completion text, the response's ``usage`` or {}, whether it came from the cache); raises ApiError. A
        sampled request is cached by its seed too, so every sample of a prompt is its own entry."""
        endpoint, payload = self._payload(prompt, max_new_tokens, sampling)
        key = hashlib.sha256(json.dumps([self.base_url, endpoint, payload], sort_keys=True).encode()).hexdigest()
        body = self.cache.get(key)
        cached = body is not None
        self._count("cache_hits" if cached else "requests")
        if not cached:
            body = self._post(endpoint, payload)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ApiError(f"{self.base_url}{endpoint}: response without choices[0] text ({exc!r})") from exc
        if not cached:
            self.cache.put(key, body)
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return text or "", usage, cached

    def complete_one(self, prompt: str, max_new_tokens: int, sampling: Sampling | None = None) -> str:
        return self.request(prompt, max_new_tokens, sampling)[0]

    def complete(self, prompts: list[str], max_new_tokens: int, sampling: Sampling | None = None) -> list[str]:
        """Completions in prompt order; a failed request yields ``None`` in its place (counted in stats)."""

        def one(prompt: str) -> str | None:
            try:
                return self.complete_one(prompt, max_new_tokens, sampling)
            except ApiError:
                return None

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, prompts))
