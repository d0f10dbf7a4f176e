"""Comparisons across the evaluated models: reductions against a reference, the winner per category
(Spark paper Table 18) and perplexity across training checkpoints (Table 15)."""

from __future__ import annotations

from typing import Any


def reductions(base: dict, other: dict, metric: str = "perplexity") -> dict:
    """Relative reduction (%) of ``other`` against ``base``, per split and category: of perplexity when both
    models share a tokenizer, of bits per byte (``metric="bpb"``) when they do not (perplexities over
    different tokens are not comparable; bytes are the same)."""
    key = "bpb" if metric == "bpb" else "ppl"
    out = {}
    for split, figs in base.items():
        if split not in other:
            continue
        cats = {}
        for cat, f in figs["per_category"].items():
            o = other[split]["per_category"].get(cat)
            if o and f[key]:
                cats[cat] = round(100.0 * (f[key] - o[key]) / f[key], 2)
        overall = round(100.0 * (figs["overall"][key] - other[split]["overall"][key]) / figs["overall"][key], 2)
        out[split] = {"per_category": cats, "overall": overall}
    return out


# metric name → (where it lives, how to read it from one category's figures, higher is better)
METRICS: dict[str, tuple[str, Any, bool]] = {
    "perplexity": ("perplexity", lambda f: f.get("ppl"), False),
    "top1": ("perplexity", lambda f: (f.get("completion") or {}).get("top1"), True),
    "token_accuracy": ("generation", lambda f: f.get("weighted", {}).get("token_accuracy"), True),
    "bleu4": ("generation", lambda f: f.get("weighted", {}).get("bleu4_corpus"), True),
}


def winners(models: dict[str, dict]) -> dict:
    """Per metric → split → category: the best model and its value (ties: the first listed model). Models
    with different tokenizers are ranked by bits per byte instead of perplexity."""
    out: dict = {}
    metrics = dict(METRICS)
    if len({r.get("tokenizer") for r in models.values() if "perplexity" in r}) > 1:
        metrics.pop("perplexity")
        metrics = {"bpb": ("perplexity", lambda f: f.get("bpb"), False), **metrics}
    for metric, (section, read, higher) in metrics.items():
        per_split: dict = {}
        for name, result in models.items():
            for split, figs in (result.get(section) or {}).items():
                if not isinstance(figs, dict) or "per_category" not in figs:
                    continue
                for cat, f in [*figs["per_category"].items(), ("overall", figs["overall"])]:
                    value = read(f)
                    if value is None:
                        continue
                    best = per_split.setdefault(split, {}).get(cat)
                    if best is None or (value > best["value"] if higher else value < best["value"]):
                        per_split[split][cat] = {"model": name, "value": value}
        if per_split:
            out[metric] = per_split
    return out


def checkpoint_series(models: dict[str, dict]) -> list[dict]:
    """Overall perplexity per split of every model with a known training step, in step order."""
    rows = []
    for name, result in models.items():
        if result.get("step") is None or "perplexity" not in result:
            continue
        rows.append({"model": name, "step": result["step"],
                     **{split: figs["overall"]["ppl"] for split, figs in result["perplexity"].items()}})
    rows.sort(key=lambda r: (r["step"], r["model"] == "final"))
    return rows if len(rows) > 1 else []
