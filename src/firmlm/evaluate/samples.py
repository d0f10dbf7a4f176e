"""Evaluation samples: a seeded, stable choice of documents per split and category."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from firmlm.corpus.shards import read_documents


@dataclass(frozen=True)
class Sample:
    doc_id: str
    split: str
    category: str
    repo: str
    path: str
    text: str


def _rank(seed: int, doc_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()


def select_samples(corpus_dir: Path, splits: list[str], per_category: int, max_chars: int, seed: int) -> list[Sample]:
    """Up to ``per_category`` documents per (split, category), cut to ``max_chars``; same for every model."""
    pools: dict[tuple[str, str], list[dict]] = defaultdict(list)
    cols = ["text", "category", "split", "repo", "path", "doc_id"]
    for row in read_documents(corpus_dir, columns=cols):
        if row["split"] in splits:
            pools[(row["split"], row["category"])].append(row)
    samples = []
    for (split, category), rows in sorted(pools.items()):
        rows.sort(key=lambda r: _rank(seed, r["doc_id"]))
        for r in rows[:per_category]:
            samples.append(Sample(r["doc_id"], split, category, r["repo"], r["path"], r["text"][:max_chars]))
    return samples
