"""Completion backends: a local transformers model, or any OpenAI-compatible HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    """Sampled decoding instead of greedy: nucleus sampling at ``temperature``, reproducible by ``seed`` (API
    backends send it as the request's ``seed``, and it is part of their cache key)."""

    temperature: float
    top_p: float = 1.0
    seed: int = 0


class CompletionBackend(Protocol):
    """Continuation of prompts, greedy unless ``sampling`` is given; one output per prompt, in order (None: the
    request failed)."""

    name: str

    def complete(self, prompts: list[str], max_new_tokens: int, sampling: Sampling | None = None
                 ) -> list[str | None]: ...
