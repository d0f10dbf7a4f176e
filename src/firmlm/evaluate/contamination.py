"""Contamination: the share of each evaluation category's 13-gram shingles (over code tokens) that also occur
in the training split. A high share means the held-out figure partly measures memorised text.

Code tokens are ``\\w+`` or one non-space character (as in generation scoring); each shingle is a 64-bit
polynomial hash of 13 consecutive token ids (ids from one vocabulary shared by train and eval text).
The train set is held in memory as one sorted array of hashes (8 bytes per train token).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from firmlm.corpus.shards import read_documents
from firmlm.evaluate.generation import code_tokens
from firmlm.evaluate.samples import Sample

SHINGLE = 13
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


class ShingleHasher:
    """Hashes of token n-grams, with token ids from one growing vocabulary."""

    def __init__(self, n: int = SHINGLE):
        self.n = n
        self.vocab: dict[str, int] = {}

    def __call__(self, text: str) -> np.ndarray:
        ids = np.fromiter((self.vocab.setdefault(t, len(self.vocab) + 1) for t in code_tokens(text)), dtype=np.uint64)
        count = len(ids) - self.n + 1
        if count <= 0:
            return np.empty(0, dtype=np.uint64)
        h = np.zeros(count, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(self.n):
                h = h * MULTIPLIER + ids[k:k + count]
        return h


def train_shingles(texts: Iterable[str], hasher: ShingleHasher) -> np.ndarray:
    """Sorted unique shingle hashes of the training texts."""
    parts = [hasher(t) for t in texts]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def found_in(hashes: np.ndarray, train: np.ndarray) -> int:
    """How many of ``hashes`` occur in the sorted array ``train`` (binary search, no re-sorting of train)."""
    if not len(train) or not len(hashes):
        return 0
    at = np.minimum(np.searchsorted(train, hashes), len(train) - 1)
    return int((train[at] == hashes).sum())


def contamination(samples: Sequence[Sample], train: np.ndarray, hasher: ShingleHasher) -> dict:
    """Per split → category: the share of the windows' shingles found in ``train``, and the counts."""
    found: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for s in samples:
        h = hasher(s.text)
        counts = found[s.split][s.category]
        counts[0] += found_in(h, train)
        counts[1] += len(h)
        counts[2] += 1
    return {split: {cat: {"shared_13gram_share": round(c[0] / c[1], 5) if c[1] else None, "shingles": c[1],
                          "windows": c[2]} for cat, c in sorted(cats.items())}
            for split, cats in sorted(found.items())}


def measure(corpus_dir: Path, samples: Sequence[Sample]) -> dict:
    """Contamination of the evaluation samples by the corpus train split."""
    hasher = ShingleHasher()
    train = train_shingles((r["text"] for r in read_documents(corpus_dir, split="train", columns=["text"])), hasher)
    return contamination(samples, train, hasher)
