"""An LLM judge re-ranking a first-stage scorer's best candidates through any OpenAI-compatible endpoint.

The prompt shows the section (title, text clipped) and numbered candidates (id, text clipped) and asks for a JSON
list of the relevant numbers with a 0-10 score each. Requests go through firmlm's API backend (retries, SQLite
cache keyed by endpoint + model + prompt); spending is counted in :class:`JudgeStats`. An unusable answer or a
failed request keeps the first stage's order (counted).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmlm.evaluate.backends.api import ApiBackend, ApiError
from firmlm.specmap.scorers import Candidate, Scorer

log = logging.getLogger(__name__)
JUDGE_INSTRUCTION = ("You judge which source-code locations implement what a hardware datasheet section "
                     "describes. Reply with JSON only.")
PROMPT = """{instruction}

Datasheet section: {title}
{text}

Candidates:
{candidates}

Which candidates implement, configure or use what this section describes? Reply with a JSON list, best first, \
one object per relevant candidate: [{{"candidate": <number>, "score": <relevance 0-10>}}]. Leave irrelevant \
candidates out; reply [] if none is relevant.
JSON:"""
NUMBER_KEYS = ("candidate", "number", "id", "index", "n")
SCORE_KEYS = ("score", "relevance", "rating")


@dataclass
class JudgeStats:
    """What the judge spent: calls, requests sent, cache hits, tokens (estimated when no usage came back)."""

    calls: int = 0
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_tokens: int = 0  # requests whose tokens were estimated (len / 4) for want of a usage field
    fallbacks: int = 0  # unparseable answers: first-stage order kept
    failures: int = 0  # failed requests: first-stage order kept
    seconds: float = 0.0


def estimate_tokens(text: str) -> int:
    """A rough token count for text whose usage the server did not report (about 4 characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def judge_backend(base_url: str, model: str, cache_path: Path, **settings: Any) -> ApiBackend:
    """firmlm's API backend (retries, request cache, counts) with the judge's system message on chat endpoints."""
    return ApiBackend(base_url, model, cache_path, system_message=JUDGE_INSTRUCTION, **settings)


def parse_judgement(answer: str, n: int) -> list[tuple[int, float]] | None:
    """(candidate number 1..n, score 0-10) pairs from an answer, in its order; None when nothing parses.

    Tolerates prose and Markdown fences around the JSON, objects or ``[number, score]`` pairs or bare numbers
    (scored by their position), and a ``{"3": 8}`` mapping. Numbers out of range and repeats are dropped.
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", answer):
        try:
            value, _ = decoder.raw_decode(answer, match.start())
        except json.JSONDecodeError:
            continue
        pairs = _pairs(value, n)
        if pairs is not None:
            return pairs
    return None


def _first(entry: dict, keys: Sequence[str]) -> Any:
    return next((entry[k] for k in keys if k in entry), None)


def _pairs(value: Any, n: int) -> list[tuple[int, float]] | None:
    items: list[tuple[Any, Any]]
    if isinstance(value, dict) and not any(k in value for k in NUMBER_KEYS):
        if len(value) == 1 and isinstance(next(iter(value.values())), list):  # {"relevant": [...]}
            return _pairs(next(iter(value.values())), n)
        items = list(value.items())
    else:
        items = []
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict):
                items.append((_first(entry, NUMBER_KEYS), _first(entry, SCORE_KEYS)))
            elif isinstance(entry, list) and entry:
                items.append((entry[0], entry[1] if len(entry) > 1 else None))
            else:
                items.append((entry, None))
    out: dict[int, float] = {}
    for position, (number, score) in enumerate(items):
        try:
            i = int(str(number).strip().strip("[]#"))
            s = float(score) if score is not None else max(0.0, 10.0 - position)
        except (TypeError, ValueError):
            continue
        if 1 <= i <= n and i not in out and math.isfinite(s):
            out[i] = min(max(s, 0.0), 10.0)
    return list(out.items()) if out or value in ([], {}) else None


class LLMJudge:
    """Re-ranks the first ``top_n`` of ``first_stage`` by an LLM's 0-10 scores.

    Returned: the candidates the judge chose (its score, best first, ties in first-stage order), then the
    others at score 0 in first-stage order, at most ``k``. Thread-safe (sections run in a thread pool).
    """

    name = "llm"

    def __init__(self, first_stage: Scorer, backend: ApiBackend, top_n: int = 20, max_new_tokens: int = 256,
                 section_chars: int = 1500, candidate_chars: int = 200):
        self.first_stage, self.backend, self.top_n = first_stage, backend, top_n
        self.max_new_tokens, self.section_chars, self.candidate_chars = max_new_tokens, section_chars, candidate_chars
        self.stats = JudgeStats()
        self._lock = threading.Lock()

    def prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        """The judge prompt: the query's first line is the section title, the rest its text."""
        title, _, text = query.strip().partition("\n")
        listed = "\n".join(f"{i}. {c.id}: {' '.join(c.text.split())[: self.candidate_chars]}"
                           for i, c in enumerate(candidates, start=1))
        return PROMPT.format(instruction=JUDGE_INSTRUCTION, title=title.strip()[:200],
                             text=text.strip()[: self.section_chars], candidates=listed)

    def _record(self, started: float, **counts: int) -> None:
        with self._lock:
            for field, n in counts.items():
                setattr(self.stats, field, getattr(self.stats, field) + n)
            self.stats.seconds += time.perf_counter() - started

    def rank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[tuple[str, float]]:
        first = self.first_stage.rank(query, candidates, max(k, self.top_n)) if candidates and k > 0 else []
        if not first:
            return []
        by_id = {c.id: c for c in candidates}
        judged = [by_id[cid] for cid, _ in first[: self.top_n]]
        started = time.perf_counter()
        prompt = self.prompt(query, judged)
        try:
            answer, usage, cached = self.backend.request(prompt, self.max_new_tokens)
        except ApiError as exc:
            log.warning("llm judge: %s; keeping the %s order", exc, self.first_stage.name)
            self._record(started, calls=1, failures=1)
            return first[:k]
        pairs = parse_judgement(answer, len(judged))
        counts = {"calls": 1, "cache_hits" if cached else "requests": 1, "fallbacks": int(pairs is None)}
        if not cached:  # a cached answer spent its tokens before
            known = "prompt_tokens" in usage and "completion_tokens" in usage
            counts.update(prompt_tokens=int(usage["prompt_tokens"]) if known else estimate_tokens(prompt),
                          completion_tokens=int(usage["completion_tokens"]) if known else estimate_tokens(answer),
                          estimated_tokens=int(not known))
        self._record(started, **counts)
        if pairs is None:
            return first[:k]
        chosen = sorted(pairs, key=lambda p: (-p[1], p[0]))
        picked = {i for i, _ in chosen}
        ranking = [(judged[i - 1].id, s) for i, s in chosen]
        ranking += [(cid, 0.0) for n, (cid, _) in enumerate(first, start=1) if n not in picked]
        return ranking[:k]
