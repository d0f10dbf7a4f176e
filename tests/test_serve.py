"""firmlm serve under load, over loopback: a burst of clients all answered, and a bounded queue that says 503."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from firmlm.serve import CompletionServer, load_backend

PROMPTS = ["int uart_init(void)\n{\n", "#define GPIOA_BASE ", "static void delay(int n) {",
           "/* USB */\nstruct usb_ep {"]
TIMEOUT_S = 60


def post(server: CompletionServer, prompt: str, max_tokens: int = 4) -> tuple[int, dict[str, str], dict]:
    """One POST /v1/completions on a fresh connection: status, headers, JSON body."""
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": max_tokens}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def backend():
    return load_backend("tiny:llama", None, max_prompt_tokens=256)


class GatedBackend:
    """Wraps a backend so that generation waits until the test releases it (no sleeps)."""

    def __init__(self, inner):
        self.inner = inner
        self.started = threading.Event()
        self.release = threading.Event()

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        self.started.set()
        assert self.release.wait(TIMEOUT_S), "test never released the gate"
        return self.inner.complete(prompts, max_new_tokens)


def test_64_concurrent_clients_all_get_the_single_request_answer(backend):
    server = CompletionServer(backend, "tiny:llama", port=0).start()
    try:
        assert server.httpd.request_queue_size >= 64  # the standard library's backlog of 5 drops bursts
        expected = {}
        for p in PROMPTS:
            status, _, body = post(server, p)
            assert status == 200
            expected[p] = body["choices"][0]["text"]
        assert all(isinstance(t, str) for t in expected.values())

        n = 64
        barrier = threading.Barrier(n)
        results: list[tuple[int, str] | BaseException | None] = [None] * n

        def client(i: int) -> None:
            try:
                barrier.wait(TIMEOUT_S)  # all connect at once
                status, _, body = post(server, PROMPTS[i % len(PROMPTS)])
                results[i] = (status, body["choices"][0]["text"] if status == 200 else json.dumps(body))
            except BaseException as exc:  # a reset or timeout is a result to report, not a lost thread
                results[i] = exc

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S)
        assert not any(t.is_alive() for t in threads)
        failures = [(i, r) for i, r in enumerate(results) if not (isinstance(r, tuple) and r[0] == 200)]
        assert not failures, f"{len(failures)} of {n} requests failed: {failures[:3]}"
        assert [r[1] for r in results] == [expected[PROMPTS[i % len(PROMPTS)]] for i in range(n)]
        assert server.queue.in_flight == 0
    finally:
        server.stop()


def test_full_queue_answers_503_at_once_and_queued_requests_complete(backend):
    gated = GatedBackend(backend)
    server = CompletionServer(gated, "tiny:llama", port=0, max_queue=2).start()
    try:
        with ThreadPoolExecutor(max_workers=7) as pool:
            first = pool.submit(post, server, PROMPTS[0])
            assert gated.started.wait(TIMEOUT_S)  # the first request holds the model
            rest = [pool.submit(post, server, PROMPTS[i % len(PROMPTS)]) for i in range(6)]
            # 2 may wait; the other 4 must be refused while the model is still busy
            done = as_completed(rest, timeout=TIMEOUT_S)
            refused = [next(done) for _ in range(4)]
            assert not first.done()
            for status, headers, body in (f.result() for f in refused):
                assert status == 503
                assert headers["Retry-After"].isdigit()
                assert body["error"]["type"] == "server_busy"
                assert "server busy: 2 requests queued (max_queue=2); retry later" in body["error"]["message"]
            gated.release.set()
            answered = [f.result(TIMEOUT_S) for f in [first, *rest] if f not in refused]
        assert [a[0] for a in answered] == [200, 200, 200]
        assert all(isinstance(a[2]["choices"][0]["text"], str) for a in answered)
        assert server.queue.in_flight == 0
        status, _, _ = post(server, PROMPTS[1])  # the queue drained: served again
        assert status == 200
    finally:
        gated.release.set()
        server.stop()
