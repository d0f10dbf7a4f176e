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


def mixture_budgets(groups: Sequence[str], n_chars: Sequence[int], needed_tokens: int,
                    weights: dict[str, float]) -> dict[str, int]:
    """Tokens each group of documents contributes: named groups their share of ``needed_tokens``, the others the
    rest in proportion to their characters. A named group the corpus lacks is a ValueError naming those it has."""
    present: dict[str, int] = {}
    for group, chars in zip(groups, n_chars):
        present[group] = present.get(group, 0) + chars
    unknown = sorted(set(weights) - set(present))
    if unknown:
        raise ValueError(f"no train documents in group(s) {', '.join(unknown)}; the corpus has {', '.join(sorted(present))}")
    rest = max(0.0, 1.0 - sum(weights.values()))
    others = {g: c for g, c in present.items() if g not in weights}
    other_chars = sum(others.values())
    shares = {g: weights.get(g, rest * others.get(g, 0) / other_chars if other_chars else 0.0) for g in present}
    return {g: round(share * needed_tokens) for g, share in shares.items()}
