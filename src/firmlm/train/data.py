"""Training data of a run: the train documents the token budget uses, their packed blocks, and the
selection record (``RUN/train/data.json``) that a resume reads back instead of selecting again."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from firmlm.config import TrainConfig
from firmlm.corpus.shards import read_documents
from firmlm.distributed import is_main_process, world_size
from firmlm.errors import StageError
from firmlm.models import cache_dir
from firmlm.runs import atomic_write_json, read_json
from firmlm.train.packing import PackedBlocks, pack, tokenize_documents
from firmlm.train.selection import evenly_spaced, mixture_budgets, select_for_budget
from firmlm.train.token_cache import cache_key, load_blocks_mmap, save_blocks, tokenizer_fingerprint

log = logging.getLogger(__name__)
SELECTION_FILE = "data.json"
PROBE_DOCS = 64


def tokens_per_step(cfg: TrainConfig) -> int:
    """Tokens of one optimizer step over all processes."""
    return cfg.micro_batch_size * cfg.grad_accum * cfg.block_size * world_size()


def needed_tokens(cfg: TrainConfig) -> int:
    return tokens_per_step(cfg) * cfg.max_steps + cfg.block_size


def chars_per_token(texts: list[str], tokenizer) -> float:
    probe = "".join(texts)[:200_000]
    if not probe:
        return 3.0
    return len(probe) / max(1, len(tokenizer(probe, add_special_tokens=False)["input_ids"]))


def _recorded_selection(path: Path, index_of: dict[str, int]) -> list[int]:
    record = read_json(path)
    missing = [d for d in record.get("doc_ids", []) if d not in index_of]
    if missing:
        raise StageError(f"{path}: {len(missing)} recorded train documents are not in the corpus (first: {missing[0]}); "
                         f"the corpus changed under this run: start over with --force")
    return [index_of[d] for d in record["doc_ids"]]


def _select_mixture(rows: list[dict], column: str, weights: dict[str, float], needed: int, ratio: float,
                    count_tokens, corpus_dir: Path) -> list[int]:
    """Documents per group to each group's token budget (train.mixture), each group spread evenly, corpus order."""
    groups = [str(r[column]) for r in rows]
    try:
        budgets = mixture_budgets(groups, [r["n_chars"] for r in rows], needed, weights)
    except ValueError as exc:
        raise StageError(f"train.mixture.weights: {exc} (train documents of {corpus_dir})") from None
    picked: list[int] = []
    for group, budget in budgets.items():
        members = [i for i, g in enumerate(groups) if g == group]
        if budget <= 0 or not members:
            continue

        def count_members(local: list[int], members: list[int] = members) -> dict[int, int]:
            counts = count_tokens([members[k] for k in local])
            return {k: counts[members[k]] for k in local}

        chosen = select_for_budget([rows[i]["n_chars"] for i in members], budget, ratio, count_members)
        picked += [members[k] for k in chosen]
    return sorted(picked)


def _realized(rows: list[dict], picked: list[int], doc_tokens: list[int], column: str,
              weights: dict[str, float]) -> dict[str, dict[str, float]]:
    """Tokens and share per group of what was picked, next to the configured shares."""
    tokens: dict[str, int] = {}
    for i, n in zip(picked, doc_tokens):
        tokens[str(rows[i][column])] = tokens.get(str(rows[i][column]), 0) + n
    total = sum(tokens.values()) or 1
    return {g: {"tokens": n, "share": round(n / total, 4), "target": weights.get(g)} for g, n in sorted(tokens.items())}


def load_blocks(corpus_dir: Path, tokenizer, cfg: TrainConfig, train_dir: Path) -> tuple[PackedBlocks, int]:
    """Packed blocks of the documents this run trains on (selected once, recorded, reused on resume)."""
    needed = needed_tokens(cfg)
    started = time.perf_counter()
    group_column = {"source": "repo", "category": "category"}[cfg.mixture.by] if cfg.mixture.weights else None
    columns = ["text", "n_chars", "doc_id", *([group_column] if group_column else [])]
    rows = list(read_documents(corpus_dir, split="train", columns=columns))
    selection_file = train_dir / SELECTION_FILE
    encoded: dict[int, np.ndarray] = {}

    def count_tokens(indices: list[int]) -> dict[int, int]:
        for i, ids in zip(indices, tokenize_documents((rows[i]["text"] for i in indices), tokenizer), strict=True):
            encoded[i] = ids
        return {i: len(encoded[i]) for i in indices}

    if selection_file.is_file():
        picked = _recorded_selection(selection_file, {r["doc_id"]: i for i, r in enumerate(rows)})
        log.info("train documents: %d as recorded in %s", len(picked), selection_file)
    else:
        probe = [rows[i]["text"] for i in evenly_spaced(range(len(rows)), PROBE_DOCS)]
        ratio = chars_per_token(probe, tokenizer)
        if group_column:
            picked = _select_mixture(rows, group_column, cfg.mixture.weights, needed, ratio, count_tokens, corpus_dir)
        else:
            picked = select_for_budget([r["n_chars"] for r in rows], needed, ratio, count_tokens)
    doc_ids = [rows[i]["doc_id"] for i in picked]
    key = cache_key(doc_ids, [rows[i]["n_chars"] for i in picked], tokenizer_fingerprint(tokenizer), cfg.block_size, needed)
    cache_file = cache_dir() / "tokens" / f"{key}.arrow"
    cached = load_blocks_mmap(cache_file, cfg.block_size)
    if cached is not None:
        blocks, doc_tokens = cached
        log.info("token cache hit: %d blocks from %s", len(blocks), cache_file)
    else:
        missing = [i for i in picked if i not in encoded]
        if missing:
            count_tokens(missing)
        docs = [encoded[i] for i in picked]
        blocks = pack(docs, cfg.block_size)
        doc_tokens = [len(d) for d in docs]
        if is_main_process():
            save_blocks(cache_file, blocks, doc_tokens)
        log.info("tokenized %d of %d train documents → %d tokens, %d blocks in %.1fs", len(docs), len(rows),
                 sum(doc_tokens), len(blocks), time.perf_counter() - started)
    n_tokens = sum(doc_tokens)
    if is_main_process() and not selection_file.is_file():
        atomic_write_json(selection_file, {"documents": len(picked), "of_documents": len(rows), "tokens": n_tokens,
                                           "needed_tokens": needed, "token_cache": cache_file.name,
                                           "first_index": picked[0] if picked else None,
                                           "last_index": picked[-1] if picked else None,
                                           "indices": picked, "doc_ids": doc_ids,
                                           **({"mixture": _realized(rows, picked, doc_tokens, group_column,
                                                                    cfg.mixture.weights)} if group_column else {})})
    min_blocks = cfg.micro_batch_size * cfg.grad_accum * world_size()
    if len(blocks) < min_blocks:
        raise StageError(
            f"{corpus_dir}: train split has {n_tokens} tokens, fewer than one optimizer step needs "
            f"({min_blocks} blocks of train.block_size={cfg.block_size}); add sources or lower the block size"
        )
    if len(blocks) < (needed - cfg.block_size) // cfg.block_size:
        log.warning("train split is smaller than max_steps needs: it will be repeated (epochs > 1)")
    return blocks, len(doc_tokens)
