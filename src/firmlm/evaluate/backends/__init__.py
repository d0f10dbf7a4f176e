"""Completion backends: a local transformers model, or any OpenAI-compatible HTTP API."""

from __future__ import annotations

from typing import Protocol


class CompletionBackend(Protocol):
    """Greedy continuation of prompts; one output per prompt, in order (None: the request failed)."""

    name: str

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str | None]: ...
