"""Ranking candidates (folders, files, symbols) for a query: BM25 over shared tokens, and rank fusion.

A scorer returns ``(candidate id, score)`` pairs, best first, so rankings from different scorers (lexical,
dense) can be fused by id with :func:`reciprocal_rank_fusion`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from firmlm.specmap.identifiers import analyze


@dataclass(frozen=True)
class Candidate:
    """Something a datasheet section can map to; ``id`` is unique within a candidate set."""

    id: str
    text: str


@runtime_checkable
class Scorer(Protocol):
    """Ranks candidates for a query text."""

    name: str

    def rank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[tuple[str, float]]:
        """At most ``k`` (candidate id, score) pairs, best first."""
        ...


class BM25Scorer:
    """Okapi BM25 (bm25s) over :func:`~firmlm.specmap.identifiers.analyze` tokens.

    Queries go through ``query_analyzer`` (default: the bundled :class:`~firmlm.specmap.vocabulary.Vocabulary`,
    which adds synonyms and drops format boilerplate); candidates through ``analyzer``. The index of a candidate set is built once and reused for every query over the same ids (an LRU of
    ``cache_size`` sets), so ids must identify texts. Candidates sharing no token with the query are not
    returned.
    """

    name = "bm25"

    def __init__(self, k1: float = 1.5, b: float = 0.75, method: str = "lucene", cache_size: int = 64,
                 analyzer: Callable[[str], list[str]] = analyze,
                 query_analyzer: Callable[[str], list[str]] | None = None):
        self.k1, self.b, self.method = k1, b, method
        self.cache_size = cache_size
        self.analyzer = analyzer
        if query_analyzer is None:
            from firmlm.specmap.vocabulary import load_vocabulary

            query_analyzer = load_vocabulary()
        self.query_analyzer = query_analyzer
        self._indexes: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()  # sections are mapped in a thread pool

    def _index(self, candidates: Sequence[Candidate]) -> Any:
        key = tuple(c.id for c in candidates)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
        if len(set(key)) != len(key):
            duplicates = sorted(i for i, n in Counter(key).items() if n > 1)[:5]
            raise ValueError(f"candidate ids must be unique; repeated: {', '.join(duplicates)}")
        corpus = [self.analyzer(c.text) for c in candidates]
        model = None
        if any(corpus):
            import bm25s

            logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG level
            model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
            model.index(corpus, show_progress=False)
        with self._lock:
            self._indexes[key] = model
            while len(self._indexes) > self.cache_size:
                self._indexes.popitem(last=False)
        return model

    def scores(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        """The BM25 score of every candidate, in candidate order (0 where no token is shared)."""
        if not candidates:
            return []
        model = self._index(candidates)
        tokens = [t for t in self.query_analyzer(query) if model is not None and t in model.vocab_dict]
        if not tokens:
            return [0.0] * len(candidates)
        return [float(s) for s in model.get_scores(tokens)]

    def rank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[tuple[str, float]]:
        scores = self.scores(query, candidates)
        order = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
        return [(candidates[i].id, scores[i]) for i in order[: max(k, 0)]]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[tuple[str, float]] | Sequence[str]], k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Fuse rankings (lists of ids or of (id, score), best first) by sum of ``weight / (k + rank)``.

    Ranks start at 1; an id repeated within one ranking counts at its best rank; ties keep first-seen order.
    """
    if k < 0:
        raise ValueError(f"reciprocal_rank_fusion: k must be >= 0, got {k}")
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"reciprocal_rank_fusion: {len(weights)} weights for {len(rankings)} rankings")
    fused: dict[str, float] = {}
    for n, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[n]
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            cid = item if isinstance(item, str) else item[0]
            if cid not in seen:
                seen.add(cid)
                fused[cid] = fused.get(cid, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])
