"""The API backend against real HTTP servers on loopback: firmlm serve, and a flaky one."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from firmlm import models
from firmlm.evaluate.backends.api import ApiBackend
from firmlm.evaluate.backends.local import LocalBackend
from firmlm.evaluate.generation import score_generation
from firmlm.serve import CompletionServer

PROMPTS = ["int uart_init(void)\n{\n", "#define GPIOA_BASE ", "static void delay(int n) {", "/* USB */\nstruct usb_ep {"]
REFS = ["    return 0;\n}\n", "(0x40020000UL)\n", " while (n--); }\n", "\n    int addr;\n};\n"]


@pytest.fixture(scope="module")
def served():
    model, tok = models.load("tiny:llama")
    backend = LocalBackend(model, tok, batch_size=1, max_prompt_tokens=256)
    server = CompletionServer(backend, "tiny:llama", port=0).start()
    yield backend, server
    server.stop()


def test_served_generations_and_metrics_equal_the_local_backend(served, tmp_path):
    local, server = served
    api = ApiBackend(server.url, "tiny:llama", tmp_path / "cache.sqlite", concurrency=2)
    remote = api.complete(PROMPTS, 12)
    direct = local.complete(PROMPTS, 12)
    assert remote == direct and all(isinstance(r, str) for r in remote)
    for r, d, ref in zip(remote, direct, REFS):
        assert score_generation(r, ref) == score_generation(d, ref)
    assert api.stats.requests == len(PROMPTS) and api.stats.cache_hits == 0


def test_rerun_after_a_crash_repeats_no_finished_request(served, tmp_path):
    _, server = served
    cache = tmp_path / "cache.sqlite"
    first = ApiBackend(server.url, "tiny:llama", cache)
    done = first.complete(PROMPTS[:2], 8)  # the run is killed after two samples
    del first
    again = ApiBackend(server.url, "tiny:llama", cache)
    outputs = again.complete(PROMPTS, 8)
    assert outputs[:2] == done
    assert again.stats.cache_hits == 2 and again.stats.requests == 2


def test_server_rejects_bad_requests(served):
    import urllib.error
    import urllib.request

    _, server = served
    with urllib.request.urlopen(server.url + "/v1/models") as r:
        assert json.loads(r.read())["data"][0]["id"] == "tiny:llama"
    bad = urllib.request.Request(server.url + "/v1/completions", data=b'{"prompt": 5}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad)
    assert err.value.code == 400


class _Flaky(BaseHTTPRequestHandler):
    calls = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/slow/"):
            time.sleep(1.0)
        if type(self).calls <= 2 or self.path.startswith("/down/"):
            self.send_response(503)
            self.end_headers()
            return
        body = json.dumps({"choices": [{"message": {"content": "return 0;"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_retries_backoff_timeouts_and_failures_are_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("FIRMLM_TEST_KEY", "sk-test-not-logged")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        chat = ApiBackend(url, "chat-model", tmp_path / "c.sqlite", chat=True, api_key_env="FIRMLM_TEST_KEY",
                          max_retries=3, backoff_s=0.01)
        assert chat.complete(["int f(void) {"], 8) == ["return 0;"]
        assert chat.stats.retries == 2
        down = ApiBackend(url + "/down", "m", tmp_path / "d.sqlite", max_retries=1, backoff_s=0.01)
        assert down.complete(["x"], 4) == [None] and down.stats.failures == {"http-503": 1}
        slow = ApiBackend(url + "/slow", "m", tmp_path / "s.sqlite", max_retries=0, timeout_s=0.2)
        assert slow.complete(["x"], 4) == [None] and slow.stats.failures == {"timeout": 1}
        assert "sk-test" not in (tmp_path / "c.sqlite").read_bytes().decode("latin-1")
    finally:
        httpd.shutdown()


def test_sampling_is_reproducible_by_seed_locally_and_over_http(served, tmp_path):
    from firmlm.evaluate.backends import Sampling

    local, server = served
    hot = [Sampling(1.5, 1.0, seed) for seed in range(4)]
    first = [local.complete(PROMPTS[:1], 12, s)[0] for s in hot]
    assert first == [local.complete(PROMPTS[:1], 12, s)[0] for s in hot]  # a seed gives the same sample again
    assert len(set(first)) > 1  # and different seeds differ (a random tiny model at temperature 1.5)
    assert local.complete(PROMPTS[:1], 12, None) == local.complete(PROMPTS[:1], 12)  # None is greedy
    api = ApiBackend(server.url, "tiny:llama", tmp_path / "cache.sqlite")
    assert [api.complete(PROMPTS[:1], 12, s)[0] for s in hot] == first
    assert api.stats.requests == 4  # every seed its own request and cache entry
    assert [api.complete(PROMPTS[:1], 12, s)[0] for s in hot] == first and api.stats.cache_hits == 4
