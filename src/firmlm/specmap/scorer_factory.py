"""Scorers by name: ``bm25`` (default, offline), ``dense``, ``fusion`` (bm25 + dense), ``llm`` (bm25 + judge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmlm.errors import ConfigError
from firmlm.specmap.scorers import BM25Scorer, Scorer
from firmlm.specmap.vocabulary import Vocabulary

SCORERS = ("bm25", "dense", "fusion", "llm")
JUDGE_CACHE = "judge-requests.sqlite"


def make_scorer(name: str, *, judge_endpoint: Any = None, cache_dir: Path | str | None = None,
                vocabulary: Vocabulary | None = None) -> Scorer:
    """The scorer called ``name``; its BM25 parts expand queries with ``vocabulary`` (default: the bundled one).

    ``judge_endpoint`` (scorer ``llm`` only) is an :class:`~firmlm.config.ApiModelConfig` (or any object with its
    fields) or a server root URL string (model name "judge", completions endpoint). Judge responses are cached
    in ``cache_dir/judge-requests.sqlite`` (default: the firmlm cache's ``specmap`` folder).
    """
    if name == "bm25":
        return BM25Scorer(query_analyzer=vocabulary)
    if name == "dense":
        from firmlm.specmap.dense import DenseScorer

        return DenseScorer()
    if name == "fusion":
        from firmlm.specmap.dense import DenseScorer, FusionScorer

        return FusionScorer([BM25Scorer(query_analyzer=vocabulary), DenseScorer()])
    if name == "llm":
        return make_judge(BM25Scorer(query_analyzer=vocabulary), judge_endpoint, cache_dir)
    raise ConfigError(f"map.scorer: unknown scorer {name!r}; expected one of {', '.join(SCORERS)}")


def make_judge(first_stage: Scorer, endpoint: Any, cache_dir: Path | str | None = None) -> Scorer:
    """An :class:`~firmlm.specmap.judge.LLMJudge` over ``first_stage`` talking to ``endpoint``."""
    from firmlm.specmap.judge import LLMJudge, judge_backend

    if endpoint is None:
        raise ConfigError("map.judge_endpoint: scorer `llm` needs an OpenAI-compatible endpoint, e.g. "
                          "{base_url: http://127.0.0.1:8000, model: judge} for `firmlm serve --model REF`")
    if isinstance(endpoint, str):
        settings: dict[str, Any] = {"base_url": endpoint, "model": "judge"}
    else:
        settings = {key: getattr(endpoint, key) for key in ("base_url", "model", "chat", "api_key_env",
                                                             "concurrency", "timeout_s", "max_retries")
                    if getattr(endpoint, key, None) is not None}
    if not settings.get("base_url") or not settings.get("model"):
        raise ConfigError(f"map.judge_endpoint: needs base_url and model, got {endpoint!r}")
    if cache_dir is None:
        from firmlm.models.references import cache_dir as firmlm_cache

        cache_dir = firmlm_cache() / "specmap"
    backend = judge_backend(cache_path=Path(cache_dir) / JUDGE_CACHE, **settings)
    return LLMJudge(first_stage, backend)
