"""Which train documents a token budget uses: spread evenly over the whole split, in corpus order.

A budget smaller than the split takes every k-th document (k fractional), so each part of the corpus
(every repository, the first and the last files) contributes. The first pick is sized from a characters-per-
token estimate; after tokenizing, a pick that falls short is redone with more documents (still evenly
spaced) until it covers the budget, then thinned evenly to just cover it, so no tail goes unused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def evenly_spaced(candidates: Sequence[int], count: int) -> list[int]:
    """``count`` members of ``candidates`` at an even (fractional) stride, each from the middle of its
    stretch (one of ten: the 1st of each ten is not favoured over the 10th), order kept."""
    n = len(candidates)
    if count >= n:
        return list(candidates)
    if count <= 0:
        return []
    return [candidates[((2 * i + 1) * n) // (2 * count)] for i in range(count)]


def select_for_budget(n_chars: Sequence[int], needed_tokens: int, chars_per_token: float,
                      count_tokens: Callable[[list[int]], dict[int, int]]) -> list[int]:
    """Indices (sorted) of documents whose tokens cover ``needed_tokens``, spread over the whole split.

    ``count_tokens(indices)`` returns the token count (EOS included) of each index it is given; it is called
    only for documents not counted yet.
    """
    n = len(n_chars)
    total_chars = sum(n_chars)
    if n == 0:
        return []
    counted: dict[int, int] = {}
    share = min(1.0, needed_tokens * chars_per_token / max(1, total_chars))
    count = max(1, round(share * n))
    while True:
        picked = evenly_spaced(range(n), count)
        missing = [i for i in picked if i not in counted]
        if missing:
            counted.update(count_tokens(missing))
        tokens = sum(counted[i] for i in picked)
        if tokens >= needed_tokens or count == n:
            break
        count = min(n, max(count + 1, math.ceil(count * needed_tokens / max(1, tokens) * 1.05)))
    return thin_to_budget(picked, counted, needed_tokens)


def thin_to_budget(picked: list[int], tokens: dict[int, int], needed_tokens: int) -> list[int]:
    """Drop evenly spaced documents from ``picked`` while the rest still cover the budget."""
    total = sum(tokens[i] for i in picked)
    surplus = total - needed_tokens
    if surplus <= 0 or len(picked) < 2:
        return picked
    mean = total / len(picked)
    drop_count = int(surplus / mean)
    while drop_count > 0:
        dropped = set(evenly_spaced(picked[1:], drop_count))
        kept = [i for i in picked if i not in dropped]
        if sum(tokens[i] for i in kept) >= needed_tokens:
            return kept
        drop_count //= 2
    return picked
