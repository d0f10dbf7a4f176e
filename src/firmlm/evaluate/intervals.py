"""Paired bootstrap over files: intervals for the reduction of a target model against a reference, per
category and overall, for teacher-forced top-1, and for the embedded-minus-control margin.

Both models are scored on the same windows, so a resample of files (with replacement, within each
category) is applied to both: the interval reflects which files happened to be drawn, not model noise.
Overall and margin figures resample every category at once (stratified), so each category keeps its size.
The reduction is ``100 * (1 - ppl_target / ppl_reference)`` on token-weighted perplexity when both models
share a tokenizer, else on bits per byte (the same bytes for both), so it is positive when the target is
better. A category counts as improved only when its whole 95% interval is above zero; a figure resting on
fewer than ``MIN_FILES`` files has no interval and counts as not improved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from firmlm.evaluate.perplexity import DocScore
from firmlm.evaluate.samples import Sample

FIELDS = ("nll_r", "tok_r", "nll_t", "tok_t", "bytes", "top1_r", "suf_r", "top1_t", "suf_t")
MIN_FILES = 3  # fewer files give no interval (resampling 1 file always returns it: a zero-width "interval")


def per_file(samples: Sequence[Sample], ref: Sequence[DocScore], tgt: Sequence[DocScore]) -> dict[str, dict[str, np.ndarray]]:
    """Per split/category key ``split|category``: per-file sums of both models' figures (arrays over files)."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0] * len(FIELDS)))
    for s, r, t in zip(samples, ref, tgt, strict=True):
        row = sums[f"{s.split}|{s.category}"][s.file]
        for k, v in enumerate((r.nll, r.tokens, t.nll, t.tokens, r.bytes, r.top1, r.suffix_tokens, t.top1, t.suffix_tokens)):
            row[k] += v
    out = {}
    for key, files in sums.items():
        matrix = np.array(list(files.values()), dtype=np.float64)
        out[key] = {name: matrix[:, k] for k, name in enumerate(FIELDS)}
    return out


def reduction(s: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """Reduction (%) from summed figures (arrays over bootstrap replicates, or scalars)."""
    if metric == "bpb":
        return 100.0 * (1.0 - s["nll_t"] / s["nll_r"])
    return 100.0 * (1.0 - np.exp(s["nll_t"] / s["tok_t"] - s["nll_r"] / s["tok_r"]))


def top1_delta(s: dict[str, np.ndarray]) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * (s["top1_t"] / s["suf_t"] - s["top1_r"] / s["suf_r"])


class Bootstrap:
    """Resampling weights per category (replicates x files), drawn once and shared by every figure."""

    def __init__(self, table: dict[str, dict[str, np.ndarray]], replicates: int, seed: int):
        rng = np.random.default_rng(seed)
        self.table = table
        self.weights = {key: rng.multinomial(len(v["tok_r"]), np.full(len(v["tok_r"]), 1.0 / len(v["tok_r"])),
                                             size=replicates).astype(np.float64)
                        for key, v in sorted(table.items())}

    def sums(self, keys: list[str]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Point sums and replicate sums of every field over the given categories."""
        point = {f: float(sum(self.table[k][f].sum() for k in keys)) for f in FIELDS}
        boot = {f: sum(self.weights[k] @ self.table[k][f] for k in keys) for f in FIELDS}
        return point, boot


def _interval(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 3), round(float(hi), 3)]


def _files(bs: Bootstrap, keys: list[str]) -> int:
    return int(sum(len(bs.table[k]["tok_r"]) for k in keys))


def _figures(bs: Bootstrap, keys: list[str], metric: str) -> dict:
    point, boot = bs.sums(keys)
    files = _files(bs, keys)
    enough = files >= MIN_FILES
    ci = _interval(reduction(boot, metric)) if enough else None
    top1 = top1_delta({k: np.asarray(v) for k, v in point.items()})
    return {
        "reduction_pct": round(float(reduction(point, metric)), 3),
        "ci95": ci,
        "top1_delta_pts": None if not np.isfinite(top1) else round(float(top1), 3),
        "top1_ci95": _interval(top1_delta(boot)) if enough else None,
        "files": files,
        "tokens": int(point["tok_r"]),
        "improved": bool(ci is not None and ci[0] > 0),
    }


def compare(samples: Sequence[Sample], ref: Sequence[DocScore], tgt: Sequence[DocScore], metric: str,
            control_categories: Sequence[str], replicates: int = 2000, seed: int = 0) -> tuple[dict, dict]:
    """(comparison per split, control margin per split) of ``tgt`` against ``ref`` on the same samples."""
    table = per_file(samples, ref, tgt)
    bs = Bootstrap(table, replicates, seed)
    comparison, margins = {}, {}
    for split in sorted({k.split("|", 1)[0] for k in table}):
        keys = sorted(k for k in table if k.startswith(f"{split}|"))
        per_category = {k.split("|", 1)[1]: _figures(bs, [k], metric) for k in keys}
        comparison[split] = {
            "per_category": per_category,
            "overall": _figures(bs, keys, metric),
            "categories_improved": sum(f["improved"] for f in per_category.values()),
            "categories": len(per_category),
            "metric": metric,
        }
        control = [k for k in keys if k.split("|", 1)[1] in control_categories]
        embedded = [k for k in keys if k not in control]
        if control and embedded:
            margins[split] = margin(bs, embedded, control, metric, list(control_categories))
    return comparison, margins


def margin(bs: Bootstrap, embedded: list[str], control: list[str], metric: str, names: list[str]) -> dict:
    """Embedded reduction minus control reduction (points), with its interval from the same replicates."""
    e_point, e_boot = bs.sums(embedded)
    c_point, c_boot = bs.sums(control)
    e, c = float(reduction(e_point, metric)), float(reduction(c_point, metric))
    return {
        "control_categories": names,
        "embedded_reduction_pct": round(e, 3),
        "control_reduction_pct": round(c, 3),
        "margin_pts": round(e - c, 3),
        "ci95": (_interval(reduction(e_boot, metric) - reduction(c_boot, metric))
                 if min(_files(bs, embedded), _files(bs, control)) >= MIN_FILES else None),
        "embedded_files": _files(bs, embedded),
        "control_files": _files(bs, control),
        "embedded_tokens": int(e_point["tok_r"]),
        "control_tokens": int(c_point["tok_r"]),
    }


def weighted_mean_interval(values: Sequence[float], weights: Sequence[float], replicates: int = 2000,
                           seed: int = 0) -> list[float] | None:
    """95% bootstrap interval (over samples) of a weighted mean, e.g. token accuracy weighted by tokens."""
    v, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if len(v) < 2 or w.sum() == 0:
        return None
    counts = np.random.default_rng(seed).multinomial(len(v), np.full(len(v), 1.0 / len(v)), size=replicates)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (counts @ (v * w)) / (counts @ w)
    return _interval(means)
