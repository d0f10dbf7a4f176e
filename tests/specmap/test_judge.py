"""LLM judge over real loopback HTTP: a stdlib fake OpenAI server (parsing, tokens, cache, fallback) and
`firmlm serve` of a tiny random model end to end."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from firmlm.config import ApiModelConfig
from firmlm.errors import ConfigError
from firmlm.specmap.judge import JUDGE_INSTRUCTION, LLMJudge, judge_backend, parse_judgement
from firmlm.specmap.scorer_factory import make_scorer
from firmlm.specmap.scorers import BM25Scorer, Candidate

CANDIDATES = [Candidate("drivers/gpio.c", "gpio pin toggle"), Candidate("drivers/uart.c", "uart send byte"),
              Candidate("drivers/adc.c", "adc sample"), Candidate("drivers/spi.c", "spi transfer")]
QUERY = "USART transmitter\nThe USART sends a byte when the data register is written."


class Fixed:
    """A first stage that returns the candidates in a given order."""

    name = "fixed"

    def __init__(self, order: list[str]):
        self.order = order

    def rank(self, query, candidates, k):
        ids = {c.id for c in candidates}
        return [(cid, float(len(self.order) - n)) for n, cid in enumerate(self.order) if cid in ids][:k]


FIRST = Fixed(["drivers/gpio.c", "drivers/uart.c", "drivers/adc.c", "drivers/spi.c"])


class FakeOpenAI:
    """A loopback OpenAI-compatible server answering every request with ``answer`` (and ``usage`` if set)."""

    def __init__(self):
        self.answer, self.usage, self.status = "[]", None, 200
        self.requests: list[tuple[str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, body))
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": fake.answer}}
                else:
                    choice = {"index": 0, "text": fake.answer}
                reply = {"choices": [choice], **({"usage": fake.usage} if fake.usage else {})}
                data = json.dumps(reply if fake.status == 200 else {"error": "boom"}).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def fake():
    server = FakeOpenAI()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def judge_for(url: str, tmp_path, chat: bool = False, **kw) -> LLMJudge:
    backend = judge_backend(url, "judge-model", tmp_path / "judge.sqlite", chat=chat, max_retries=0)
    return LLMJudge(FIRST, backend, **kw)


def test_parse_judgement_tolerates_prose_and_shapes():
    assert parse_judgement('Sure!\n```json\n[{"candidate": 2, "score": 9}]\n```\nDone.', 4) == [(2, 9.0)]
    assert parse_judgement('[[3, 7], [1, "4"]]', 4) == [(3, 7.0), (1, 4.0)]
    assert parse_judgement('{"2": 5, "9": 8}', 4) == [(2, 5.0)]  # 9 is out of range
    assert parse_judgement('{"relevant": [4, 1]}', 4) == [(4, 10.0), (1, 9.0)]  # bare numbers: by position
    assert parse_judgement('[{"id": 1, "relevance": 42}, {"id": 1, "score": 2}]', 4) == [(1, 10.0)]  # clamped
    assert parse_judgement("[]", 4) == []  # nothing relevant is an answer
    assert parse_judgement("I think {the uart} one [maybe]", 4) is None
    assert parse_judgement("", 4) is None


def test_judge_reranks_counts_usage_and_caches(fake, tmp_path):
    fake.answer = 'Here you go: [{"candidate": 3, "score": 9}, {"candidate": 2, "score": 6}] (scores 0-10)'
    fake.usage = {"prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338}
    judge = judge_for(fake.url, tmp_path)
    ranked = judge.rank(QUERY, CANDIDATES, 10)
    assert ranked == [("drivers/adc.c", 9.0), ("drivers/uart.c", 6.0), ("drivers/gpio.c", 0.0), ("drivers/spi.c", 0.0)]
    (path, body), = fake.requests
    assert path == "/v1/completions" and body["model"] == "judge-model" and body["temperature"] == 0
    prompt = body["prompt"]
    assert "USART transmitter" in prompt and "1. drivers/gpio.c: gpio pin toggle" in prompt
    assert "4. drivers/spi.c" in prompt and "JSON" in prompt
    s = judge.stats
    assert (s.calls, s.requests, s.cache_hits, s.prompt_tokens, s.completion_tokens) == (1, 1, 0, 321, 17)
    assert (s.estimated_tokens, s.fallbacks, s.failures) == (0, 0, 0) and s.seconds > 0

    again = judge_for(fake.url, tmp_path)  # a fresh judge on the same cache file: no request
    assert again.rank(QUERY, CANDIDATES, 2) == ranked[:2]
    assert len(fake.requests) == 1
    assert (again.stats.cache_hits, again.stats.requests, again.stats.prompt_tokens) == (1, 0, 0)


def test_chat_endpoint_and_estimated_tokens(fake, tmp_path):
    fake.answer = '{"candidate": 2, "score": 8}'
    judge = judge_for(fake.url, tmp_path, chat=True, top_n=3)
    assert judge.rank(QUERY, CANDIDATES, 4) == [("drivers/uart.c", 8.0), ("drivers/gpio.c", 0.0),
                                                ("drivers/adc.c", 0.0), ("drivers/spi.c", 0.0)]
    (path, body), = fake.requests
    assert path == "/v1/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": JUDGE_INSTRUCTION}
    assert "3. drivers/adc.c" in body["messages"][1]["content"] and "drivers/spi.c" not in body["messages"][1]["content"]
    s = judge.stats
    assert s.estimated_tokens == 1 and s.prompt_tokens == (len(body["messages"][1]["content"]) + 3) // 4
    assert s.completion_tokens == (len(fake.answer) + 3) // 4


def test_garbage_answer_and_failed_request_keep_first_stage_order(fake, tmp_path):
    fake.answer = "The UART one, definitely!!"
    judge = judge_for(fake.url, tmp_path)
    assert judge.rank(QUERY, CANDIDATES, 3) == FIRST.rank(QUERY, CANDIDATES, 3)
    assert (judge.stats.fallbacks, judge.stats.requests, judge.stats.estimated_tokens) == (1, 1, 1)
    fake.status = 500
    assert judge.rank(QUERY + " again", CANDIDATES, 2) == FIRST.rank(QUERY, CANDIDATES, 2)
    assert (judge.stats.failures, judge.stats.calls) == (1, 2)
    assert judge.rank("nothing", [], 3) == []  # no first-stage candidates: no request
    assert len(fake.requests) == 2


def test_make_scorer(fake, tmp_path):
    assert make_scorer("bm25").name == "bm25"
    assert make_scorer("dense").name == "dense"  # the model loads lazily
    assert make_scorer("fusion").name == "fusion"
    with pytest.raises(ConfigError, match="judge_endpoint"):
        make_scorer("llm")
    with pytest.raises(ConfigError, match="unknown scorer"):
        make_scorer("tfidf")
    fake.answer = '[{"candidate": 1, "score": 7}]'
    judge = make_scorer("llm", judge_endpoint=ApiModelConfig(base_url=fake.url, model="m", max_retries=0),
                        cache_dir=tmp_path)
    assert isinstance(judge, LLMJudge) and isinstance(judge.first_stage, BM25Scorer)
    assert judge.rank("uart send", CANDIDATES, 5) == [("drivers/uart.c", 7.0)]  # bm25 found only uart.c
    assert (tmp_path / "judge-requests.sqlite").is_file()
    assert make_scorer("llm", judge_endpoint=fake.url, cache_dir=tmp_path).backend.model == "judge"


def test_firmlm_serve_tiny_model_as_judge_endpoint(tmp_path):
    from firmlm.serve import CompletionServer, load_backend

    server = CompletionServer(load_backend("tiny:llama", None, max_prompt_tokens=1024), "tiny:llama", port=0).start()
    try:
        judge = make_scorer("llm", judge_endpoint=ApiModelConfig(base_url=server.url, model="tiny:llama"),
                            cache_dir=tmp_path)
        judge.max_new_tokens = 24
        candidates = [Candidate("drivers/uart.c", "uart send byte transmit"), Candidate("drivers/usart.h", "usart tx"),
                      Candidate("drivers/gpio.c", "gpio pin toggle usart alternate function")]
        ranked = judge.rank(QUERY.replace("USART", "usart uart"), candidates, 3)
        ids = [cid for cid, _ in ranked]
        assert ids and len(ids) == len(set(ids)) and set(ids) <= {c.id for c in candidates}
        s = judge.stats
        assert (s.calls, s.requests, s.failures, s.estimated_tokens) == (1, 1, 0, 1)
        assert s.prompt_tokens > 50 and s.completion_tokens >= 0 and s.fallbacks in (0, 1)
    finally:
        server.stop()
