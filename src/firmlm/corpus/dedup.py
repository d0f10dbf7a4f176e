"""Exact and near-duplicate (MinHash LSH) removal across all sources, with a leakage guard.

Evaluation documents (indomain, heldout) are indexed first, so a training document that duplicates one of
them, exactly or nearly, is removed from train (reason ``leakage``) instead of the evaluation copy. Leakage
uses its own, lower similarity threshold (``leakage_threshold``): a training document that half-overlaps an
evaluation document would inflate the evaluation, even though it is no duplicate. Then
every other document is kept only if it duplicates nothing kept before it (reasons ``exact-duplicate``,
``near-duplicate``); the first occurrence in corpus order wins. Similarity is the Jaccard similarity of
token 5-gram shingles, estimated by MinHash; the ``// File:`` header is ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

TOKEN = re.compile(r"\w+|[^\w\s]")
EVAL_SPLITS = ("indomain", "heldout")


@dataclass(frozen=True)
class DedupSettings:
    exact: bool = True
    near: bool = True
    threshold: float = 0.85
    num_perm: int = 64
    shingle: int = 5
    leakage_threshold: float = 0.5


def body(text: str) -> str:
    """The document without its ``// File:`` header line."""
    return text.split("\n", 1)[1] if text.startswith("// File:") and "\n" in text else text


def exact_key(text: str) -> str:
    return hashlib.sha1(" ".join(body(text).split()).encode("utf-8")).hexdigest()


def shingles(text: str, n: int) -> list[bytes]:
    tokens = TOKEN.findall(body(text))
    if len(tokens) < n:
        return [" ".join(tokens).encode()] if tokens else []
    return [" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)]


def minhash(text: str, settings: DedupSettings):
    from datasketch import MinHash

    m = MinHash(num_perm=settings.num_perm, seed=1)
    grams = shingles(text, settings.shingle)
    if grams:
        m.update_batch(grams)
    return m


@lru_cache(maxsize=8)
def _scheme(num_perm: int) -> str | None:
    from datasketch import MinHash

    return getattr(MinHash(num_perm=num_perm, seed=1), "scheme", None)


def _sketch(doc: dict, settings: DedupSettings):
    """The document's MinHash: from its precomputed ``minhash`` hash values when present."""
    values = doc.get("minhash")
    if values is None:
        return minhash(doc["text"], settings)
    import numpy as np
    from datasketch import MinHash

    scheme = _scheme(settings.num_perm)  # datasketch >= 2 needs it to rebuild a sketch from hash values
    extra = {"scheme": scheme} if scheme else {}
    return MinHash(num_perm=settings.num_perm, seed=1, hashvalues=np.asarray(values, dtype=np.uint64), **extra)


def find_duplicates(docs: Iterable[dict], settings: DedupSettings, matched: dict[int, int] | None = None) -> dict[int, str]:
    """Index of each document to drop → reason. ``docs`` need ``text`` and ``split`` (and may carry
    precomputed ``exact_key`` and ``minhash``), in corpus order. ``matched`` receives, for each dropped
    document, the index of the kept document it duplicates."""
    from datasketch import MinHashLSH

    docs = list(docs)
    order = [i for i, d in enumerate(docs) if d["split"] in EVAL_SPLITS]
    order += [i for i, d in enumerate(docs) if d["split"] not in EVAL_SPLITS]
    lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm) if settings.near else None
    leak_lsh = (MinHashLSH(threshold=settings.leakage_threshold, num_perm=settings.num_perm)
                if settings.near and settings.leakage_threshold < settings.threshold else None)
    seen_exact: dict[str, int] = {}
    drops: dict[int, str] = {}
    for i in order:
        doc = docs[i]
        is_train = doc["split"] not in EVAL_SPLITS
        key = doc.get("exact_key") or exact_key(doc["text"])
        match: int | None = seen_exact.get(key) if settings.exact else None
        kind = "exact-duplicate"
        sketch = None
        if match is None and lsh is not None:
            sketch = _sketch(doc, settings)
            hits = lsh.query(sketch)
            if hits:
                match, kind = min(int(h) for h in hits), "near-duplicate"
            elif is_train and leak_lsh is not None and (close := leak_lsh.query(sketch)):
                match = min(int(h) for h in close)
        if match is not None:
            drops[i] = "leakage" if is_train and docs[match]["split"] in EVAL_SPLITS else kind
            if matched is not None:
                matched[i] = match
            continue
        seen_exact.setdefault(key, i)
        if lsh is not None:
            sketch = sketch if sketch is not None else _sketch(doc, settings)
            lsh.insert(str(i), sketch)
            if leak_lsh is not None and not is_train:
                leak_lsh.insert(str(i), sketch)
    return drops


def find_forks(docs: list[dict], matched: dict[int, int], threshold: float) -> dict[str, dict]:
    """Repositories whose documents duplicate another repository's at ``threshold`` share or more:
    fork → {of: original, share}. The original is the repository whose copies were kept."""
    totals: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for doc in docs:
        totals[doc["repo"]] = totals.get(doc["repo"], 0) + 1
    for dropped, kept in matched.items():
        a, b = docs[dropped]["repo"], docs[kept]["repo"]
        if a != b:
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    forks: dict[str, dict] = {}
    for (fork, original), n in sorted(pairs.items(), key=lambda kv: -kv[1]):
        share = n / totals[fork]
        if share >= threshold and fork not in forks and original not in forks:
            forks[fork] = {"of": original, "share": round(share, 4), "duplicates": n}
    return forks


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (for tests and inspection)."""
    sa, sb = set(shingles(a, n)), set(shingles(b, n))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0

