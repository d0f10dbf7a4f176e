"""Set and ranking metrics for SpecMap's evaluation against a ground truth (pure functions, no I/O).

Empty-set conventions, so every figure is defined for every section: when neither the chosen set nor the
truth has anything, precision, recall and F1 are 1 (nothing to find, nothing claimed); when exactly one of them
is empty they are 0. Ranking metrics (recall@k, average precision) and the share of truth found are undefined
(``None``) for an empty truth and are left out of averages.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


def normalise_path(path: str) -> str:
    """A repository-relative path in one spelling: posix separators, no ``./``, no doubled slashes."""
    return posixpath.normpath(path.strip().replace("\\", "/"))


def precision_recall_f1(chosen: Iterable[str], truth: Iterable[str]) -> dict[str, float]:
    """Precision, recall and F1 of a chosen set against a true set (see the module's empty-set conventions)."""
    chosen_set, truth_set = set(chosen), set(truth)
    hits = len(chosen_set & truth_set)
    if not chosen_set and not truth_set:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = hits / len(chosen_set) if chosen_set else 0.0
    recall = hits / len(truth_set) if truth_set else 0.0
    f1 = 2 * hits / (len(chosen_set) + len(truth_set))
    return {"precision": precision, "recall": recall, "f1": f1}


def share_found(chosen: Iterable[str], truth: Iterable[str]) -> float | None:
    """The share of true items that were chosen (file mapping accuracy); None for an empty truth."""
    truth_set = set(truth)
    if not truth_set:
        return None
    return len(truth_set & set(chosen)) / len(truth_set)


def recall_at_k(ranked: Sequence[str], truth: Iterable[str], k: int) -> float | None:
    """The share of true items among the first ``k`` of a ranking; None for an empty truth."""
    truth_set = set(truth)
    if not truth_set:
        return None
    return len(truth_set & set(ranked[: max(k, 0)])) / len(truth_set)


def average_precision(ranked: Sequence[str], truth: Iterable[str]) -> float | None:
    """Mean of precision@i over the ranks i of true items, divided by all true items (unranked ones count 0).

    Repeated ids count at their first rank only; None for an empty truth.
    """
    truth_set = set(truth)
    if not truth_set:
        return None
    seen: set[str] = set()
    hits, total = 0, 0.0
    for item in ranked:
        if item in seen:
            continue
        seen.add(item)
        if item in truth_set:
            hits += 1
            total += hits / len(seen)
    return total / len(truth_set)


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the defined values; None when there is none."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def existing(paths: Iterable[str], root: Path) -> list[bool]:
    """For each repository-relative path: is it a regular file inside ``root`` (absolute or ``..`` paths: no)?"""
    root = Path(root).resolve()
    out = []
    for path in paths:
        rel = normalise_path(path)
        if not rel or rel.startswith(("/", "../")) or rel in (".", ".."):
            out.append(False)
            continue
        full = (root / rel).resolve()
        out.append(full.is_file() and full.is_relative_to(root))
    return out


MIN_SAMPLES = 3  # fewer sections give no interval (as in firmlm.evaluate.intervals)


def bootstrap_mean_interval(values: Iterable[float | None], replicates: int = 2000,
                            seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap interval of the mean of the defined values (resampled with replacement).

    Numpy only, seeded; None with fewer than ``MIN_SAMPLES`` values. (firmlm.evaluate.intervals has the same
    idea, but importing it would pull torch and another stage package into SpecMap.)
    """
    kept = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(kept) < MIN_SAMPLES:
        return None
    draws = np.random.default_rng(seed).integers(0, len(kept), size=(replicates, len(kept)))
    low, high = np.percentile(kept[draws].mean(axis=1), [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]
