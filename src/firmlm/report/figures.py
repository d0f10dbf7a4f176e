"""Report figures (matplotlib, Agg backend): training curves, per-category bars, perplexity vs checkpoint."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values: list[float], alpha: float = 0.2) -> list[float]:
    """Exponential moving average (NaN steps keep the previous value)."""
    out, avg = [], None
    for v in values:
        if v is not None and math.isfinite(v):
            avg = v if avg is None else alpha * v + (1 - alpha) * avg
        out.append(avg if avg is not None else float("nan"))
    return out


def save_figure(fig, path: Path) -> None:
    """Lay out, write and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def training_figure(metrics: list[dict[str, Any]], path: Path) -> None:
    """Loss (raw and smoothed), LR of both groups, gradient norm and tokens/s per optimizer step."""
    plt = pyplot()
    steps = [m["step"] for m in metrics]
    loss = [m["loss"] for m in metrics]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    ax = axes[0][0]
    ax.plot(steps, loss, alpha=0.35, label="raw")
    ax.plot(steps, smooth(loss), label="smoothed (EMA 0.2)")
    ax.set(title="Training loss", xlabel="optimizer step", ylabel="loss")
    ax.legend()
    ax = axes[0][1]
    ax.plot(steps, [m.get("lr") for m in metrics], label="main")
    if any(m.get("lr_embed") is not None for m in metrics):
        ax.plot(steps, [m.get("lr_embed") for m in metrics], label="embeddings")
    ax.set(title="LR schedule", xlabel="optimizer step", ylabel="learning rate")
    ax.legend()
    ax = axes[1][0]
    ax.plot(steps, [m.get("grad_norm") for m in metrics], color="tab:red")
    ax.set(title="Gradient norm (before clipping)", xlabel="optimizer step", ylabel="L2 norm")
    ax = axes[1][1]
    ax.plot(steps, [m.get("tokens_per_s") for m in metrics], color="tab:green")
    ax.set(title="Throughput", xlabel="optimizer step", ylabel="tokens/s")
    save_figure(fig, path)


def grouped_bars(ax, categories: list[str], series: dict[str, list[float | None]], ylabel: str) -> float:
    """Bars per category, one colour per series; returns the bar width."""
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        ax.bar([i + k * width for i in range(len(categories))], [v or 0 for v in values], width, label=name)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(categories))])
    ax.set_xticklabels(categories, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.12)
    return width


def _per_category(results: dict, models: list[str], section: str, split: str, read: Callable[[dict], Any]) -> tuple[list[str], dict]:
    cats = sorted({c for m in models for c in results["models"][m].get(section, {}).get(split, {}).get("per_category", {})})
    series = {m: [read(results["models"][m][section][split]["per_category"].get(c, {})) for c in cats] for m in models}
    return cats, series


def ppl_figure(results: dict[str, Any], split: str, path: Path) -> None:
    """Per-category perplexity of every scored model, with the target's reduction % above each group."""
    plt = pyplot()
    models = [m for m, r in results["models"].items() if split in r.get("perplexity", {})]
    cats, series = _per_category(results, models, "perplexity", split, lambda f: f.get("ppl"))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(cats) + 2), 3.8))
    width = grouped_bars(ax, cats, series, "perplexity (lower is better)")
    red = results.get("reduction_pct", {}).get(split, {}).get("per_category", {})
    for i, c in enumerate(cats):
        if c in red:
            top = max(v[i] or 0 for v in series.values())
            ax.annotate(f"{red[c]:+.1f}%", (i + width * (len(models) - 1) / 2, top), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=7)
    ax.set_title(f"Per-category perplexity, {split} (labels: {results.get('target')} vs {results.get('reference')})")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def completion_figure(results: dict[str, Any], split: str, path: Path) -> None:
    """Teacher-forced top-1 and top-5 next-token accuracy on the suffix, per category and model."""
    plt = pyplot()
    models = [m for m, r in results["models"].items() if split in r.get("perplexity", {})]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, key in zip(axes, ("top1", "top5")):
        cats, series = _per_category(results, models, "perplexity", split,
                                     lambda f, k=key: 100 * ((f.get("completion") or {}).get(k) or 0))
        grouped_bars(ax, cats, series, f"{key} accuracy (%)")
        ax.set_title(f"Teacher-forced {key}, {split}")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def generation_figure(results: dict[str, Any], split: str, path: Path) -> None:
    """Generative token accuracy and BLEU-4 (weighted by reference tokens) per category and model."""
    plt = pyplot()
    models = [m for m, r in results["models"].items() if split in r.get("generation", {})]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    reads = {"token accuracy (%)": lambda f: 100 * (f.get("weighted", {}).get("token_accuracy") or 0),
             "BLEU-4": lambda f: f.get("weighted", {}).get("bleu4_corpus") or 0}
    for ax, (label, read) in zip(axes, reads.items()):
        cats, series = _per_category(results, models, "generation", split, read)
        grouped_bars(ax, cats, series, label)
        ax.set_title(f"Generative completion: {label}, {split}")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def checkpoint_figure(series: list[dict[str, Any]], splits: list[str], path: Path) -> None:
    """Overall perplexity against the training step, one line per split."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for split in splits:
        points = [(r["step"], r[split]) for r in series if r.get(split) is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=split)
    ax.set(title="Perplexity across checkpoints", xlabel="training step (0 = base)", ylabel="perplexity")
    ax.legend()
    save_figure(fig, path)


def reduction_figure(results: dict[str, Any], path: Path) -> bool:
    """Per split, the target's reduction per category and overall with 95% intervals as error bars (green:
    the whole interval above zero, hatched: control categories). False (nothing drawn) without intervals."""
    comparison = results.get("comparison") or {}
    splits = [s for s in comparison if comparison[s].get("per_category")]
    if not splits:
        return False
    plt = pyplot()
    height = max(len(comparison[s]["per_category"]) for s in splits) + 1
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 0.42 * height + 1.4), squeeze=False)
    for ax, split in zip(axes[0], splits):
        comp = comparison[split]
        controls = set((results.get("control_margin") or {}).get(split, {}).get("control_categories") or [])
        names = [*comp["per_category"], "overall"]
        figs = [*comp["per_category"].values(), comp["overall"]]
        values = [f.get("reduction_pct") or 0.0 for f in figs]
        errors = [[v - f["ci95"][0], f["ci95"][1] - v] if f.get("ci95") else [0.0, 0.0] for v, f in zip(values, figs)]
        colours = ["tab:blue" if n == "overall" else "tab:green" if f.get("improved") else "tab:gray"
                   for n, f in zip(names, figs)]
        ys = list(range(len(names)))[::-1]
        bars = ax.barh(ys, values, xerr=list(zip(*errors)), color=colours, capsize=3, error_kw={"elinewidth": 1})
        for bar, name in zip(bars, names):
            if name in controls:
                bar.set_hatch("//")
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{n} (control)" if n in controls else n for n in names], fontsize=8)
        ax.axvline(0, color="black", linewidth=0.8)
        metric = "bits per byte" if comp.get("metric") == "bpb" else "perplexity"
        target, reference = comp.get("target", results.get("target")), comp.get("reference", results.get("reference"))
        ax.set(title=f"{split}: {target} vs {reference}",
               xlabel=f"{metric} reduction, % (> 0: target lower; bars: 95% CI)")
    save_figure(fig, path)
    return True
