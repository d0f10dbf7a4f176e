"""The report stage: tables and figures from artifacts alone (corpus manifest, train metrics, eval results)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from firmlm.runs import StageOutput, atomic_write_text


def _read_json(path: Path) -> Any | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def smooth(values: list[float], alpha: float = 0.2) -> list[float]:
    """Exponential moving average (NaN steps keep the previous value)."""
    out, avg = [], None
    for v in values:
        if v is not None and math.isfinite(v):
            avg = v if avg is None else alpha * v + (1 - alpha) * avg
        out.append(avg if avg is not None else float("nan"))
    return out


def loss_figure(metrics: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [m["step"] for m in metrics]
    loss = [m["loss"] for m in metrics]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(steps, loss, alpha=0.35, label="raw")
    axes[0].plot(steps, smooth(loss), label="smoothed (EMA 0.2)")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("training loss")
    axes[0].legend()
    axes[0].set_title("Training loss")
    axes[1].plot(steps, [m.get("lr") for m in metrics], label="main")
    if any(m.get("lr_embed") is not None for m in metrics):
        axes[1].plot(steps, [m.get("lr_embed") for m in metrics], label="embeddings")
    axes[1].set_xlabel("optimizer step")
    axes[1].set_ylabel("learning rate")
    axes[1].legend()
    axes[1].set_title("LR schedule")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ppl_figure(results: dict[str, Any], split: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"])
    cats = sorted({c for m in models for c in results["models"][m]["perplexity"].get(split, {}).get("per_category", {})})
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(cats) + 2), 3.8))
    width = 0.8 / max(1, len(models))
    for k, m in enumerate(models):
        per = results["models"][m]["perplexity"].get(split, {}).get("per_category", {})
        ax.bar([i + k * width for i in range(len(cats))], [per.get(c, {}).get("ppl") or 0 for c in cats], width, label=m)
    red = results.get("reduction_pct", {}).get(split, {}).get("per_category", {})
    for i, c in enumerate(cats):
        if c in red:
            top = max(results["models"][m]["perplexity"][split]["per_category"].get(c, {}).get("ppl") or 0 for m in models)
            ax.annotate(f"{red[c]:+.1f}%", (i + width * (len(models) - 1) / 2, top), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=7)
    ax.margins(y=0.12)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(cats))])
    ax.set_xticklabels(cats, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("perplexity (lower is better)")
    ax.set_title(f"Per-category perplexity, {split}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ppl_table(results: dict[str, Any], split: str) -> list[str]:
    """Markdown rows: category, docs, tokens, base ppl, adapted ppl, reduction %, bits per byte."""
    base = results["models"]["base"]["perplexity"].get(split)
    if base is None:
        return []
    adapted = results["models"].get("adapted", {}).get("perplexity", {}).get(split)
    red = results.get("reduction_pct", {}).get(split, {})
    lines = [
        "| category | docs | tokens | base ppl | adapted ppl | reduction | base bpb | adapted bpb |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = list(base["per_category"].items()) + [("**overall**", base["overall"])]
    for cat, f in rows:
        key = "overall" if cat.startswith("**") else cat
        a = (adapted["overall"] if key == "overall" else adapted["per_category"].get(cat)) if adapted else None
        r = red.get("overall") if key == "overall" else red.get("per_category", {}).get(cat)
        lines.append(
            f"| {cat} | {f['docs']} | {f['tokens']} | {f['ppl']:.3f} | "
            f"{a['ppl']:.3f} | {r:+.1f}% | {f['bpb']:.4f} | {a['bpb']:.4f} |" if a else
            f"| {cat} | {f['docs']} | {f['tokens']} | {f['ppl']:.3f} | – | – | {f['bpb']:.4f} | – |"
        )
    return lines


def completion_table(results: dict[str, Any], split: str) -> list[str]:
    """Markdown rows of teacher-forced completion on the 25% suffix: top-1/top-5 accuracy and loss per model."""
    names = [m for m in results["models"] if split in results["models"][m]["perplexity"]]
    if not names:
        return []
    head = "| category | suffix tokens | " + " | ".join(f"{m} top-1 | {m} top-5 | {m} loss" for m in names) + " |"
    lines = [head, "|---|---:|" + "---:|" * (3 * len(names))]
    base = results["models"][names[0]]["perplexity"][split]
    for cat in [*base["per_category"], "overall"]:
        cells = []
        for m in names:
            figs = results["models"][m]["perplexity"][split]
            c = (figs["overall"] if cat == "overall" else figs["per_category"].get(cat, {})).get("completion") or {}
            cells += [_pct(c.get("top1")), _pct(c.get("top5")), f"{c['suffix_loss']:.3f}" if c.get("suffix_loss") else "–"]
        ref = base["overall"] if cat == "overall" else base["per_category"][cat]
        label = "**overall**" if cat == "overall" else cat
        lines.append(f"| {label} | {ref['completion']['suffix_tokens']} | " + " | ".join(cells) + " |")
    return lines


def generation_table(results: dict[str, Any], split: str) -> list[str]:
    """Markdown rows of generative completion per model: token accuracy and BLEU-4, weighted by reference
    tokens (corpus BLEU), plus the unweighted means, and empty generations."""
    names = [m for m in results["models"] if split in results["models"][m].get("generation", {})]
    if not names:
        return []
    lines = ["| category | samples | " + " | ".join(f"{m} token acc | {m} BLEU-4 | {m} empty" for m in names) + " |",
             "|---|---:|" + "---:|" * (3 * len(names))]
    first = results["models"][names[0]]["generation"][split]
    for cat in [*first["per_category"], "overall"]:
        cells = []
        for m in names:
            g = results["models"][m]["generation"][split]
            a = g["overall"] if cat == "overall" else g["per_category"].get(cat, {})
            w = a.get("weighted", {})
            cells += [_pct(w.get("token_accuracy")), f"{w['bleu4_corpus']:.1f}" if "bleu4_corpus" in w else "–",
                      str(a.get("empty_generations", "–"))]
        n = (first["overall"] if cat == "overall" else first["per_category"][cat])["samples"]
        lines.append(f"| {'**overall**' if cat == 'overall' else cat} | {n} | " + " | ".join(cells) + " |")
    unweighted = "; ".join(
        f"{m}: token acc {_pct(results['models'][m]['generation'][split]['overall']['unweighted']['token_accuracy'])}, "
        f"BLEU-4 {results['models'][m]['generation'][split]['overall']['unweighted']['bleu4_mean_sentence']:.1f}"
        for m in names)
    return lines + ["", f"Unweighted means over samples (overall): {unweighted}."]


def _pct(value: float | None) -> str:
    return f"{100 * value:.1f}%" if value is not None else "–"


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per split: base and adapted overall perplexity, reduction, categories improved."""
    rows = []
    for split, base in results["models"]["base"]["perplexity"].items():
        adapted = results["models"].get("adapted", {}).get("perplexity", {}).get(split)
        red = results.get("reduction_pct", {}).get(split, {})
        cats = red.get("per_category", {})
        rows.append(
            {
                "split": split,
                "base_top1": base["overall"].get("completion", {}).get("top1"),
                "adapted_top1": adapted["overall"].get("completion", {}).get("top1") if adapted else None,
                "base_ppl": base["overall"]["ppl"],
                "adapted_ppl": adapted["overall"]["ppl"] if adapted else None,
                "reduction_pct": red.get("overall"),
                "categories_improved": sum(1 for v in cats.values() if v > 0),
                "categories": len(base["per_category"]),
            }
        )
    return rows


def render_report(run_root: Path, out: StageOutput) -> None:
    """Write report.md, report.html and figures/ from the run's artifacts."""
    results = _read_json(run_root / "eval" / "results.json")
    manifest = _read_json(run_root / "corpus" / "manifest.json")
    train = _read_json(run_root / "train" / "summary.json")
    metrics = read_metrics(run_root / "train" / "metrics.jsonl")
    figs = out.path / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    md = ["# firmlm report", ""]
    figures: list[tuple[str, str]] = []
    if manifest:
        c = manifest["counts"]
        md += ["## Corpus", "", f"{c['documents']} documents from {len(manifest['inputs'])} sources "
               f"({c['files_read']} files read).", "",
               "| source | role | origin | files | documents |", "|---|---|---|---:|---:|"]
        md += [f"| {i['name']} | {i['role']} | {i['origin']} | {i['files_kept']} | {i['documents']} |"
               for i in manifest["inputs"]]
        md += ["", "| split | documents |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in manifest["per_split"].items()]
        if manifest["drops"]:
            md += ["", "Dropped (files and documents) by reason: " + ", ".join(f"{k} {v}" for k, v in manifest["drops"].items())
                   + f". The leakage guard removed {manifest.get('leakage_guard_removed', 0)} training documents "
                   "that duplicated in-domain or held-out ones."]
        md.append("")
    if train:
        md += ["## Training", "", f"Model `{train['model']}`, LoRA r={train['lora']['rank']} alpha={train['lora']['alpha']} "
               f"rslora={train['lora']['rslora']}, {train['steps']} steps, {train['train_tokens']} tokens in "
               f"{train['train_seconds']} s ({train['tokens_per_s']} tokens/s); loss {train['first_loss']} → {train['final_loss']}.", ""]
    if metrics:
        loss_figure(metrics, figs / "loss.png")
        figures.append(("figures/loss.png", "Training loss and learning rate"))
        md += ["![Training loss and learning rate](figures/loss.png)", ""]
    if results:
        md += ["## Perplexity", "", "Token-weighted perplexity over the same samples for every model; bits per byte "
               "(bpb) compare models with different tokenizers. Reduction = (base − adapted) / base.", ""]
        for split in results["models"]["base"]["perplexity"]:
            md += [f"### {split}", ""] + ppl_table(results, split) + [""]
            name = f"figures/ppl_{split}.png"
            ppl_figure(results, split, out.path / name)
            figures.append((name, f"Per-category perplexity, {split}"))
            md += [f"![Per-category perplexity, {split}]({name})", ""]
        md += ["## Teacher-forced completion", "", "Each sample is split at the line boundary nearest 75% of its "
               "length and fed whole once; on the suffix tokens: top-1 and top-5 next-token accuracy and the mean "
               "loss (token-weighted).", ""]
        for split in results["models"]["base"]["perplexity"]:
            md += [f"### {split}", ""] + completion_table(results, split) + [""]
        if any("generation" in r for r in results["models"].values()):
            md += ["## Generative completion", "", "Greedy continuation of the 75% prefix, scored against the true "
                   "suffix in one code tokenization for every model (words and single symbols): token accuracy is the "
                   "position-wise match over the reference length; BLEU-4 is corpus BLEU on those tokens with the "
                   "generation cut to the reference length. Table figures are weighted by reference tokens.", ""]
            for split in results["models"]["base"]["perplexity"]:
                md += [f"### {split}", ""] + generation_table(results, split) + [""]
    atomic_write_text(out.path / "report.md", "\n".join(md) + "\n")
    atomic_write_text(out.path / "report.html", _html(md, out.path))
    out.summary.update({"report": "report.md", "html": "report.html", "figures": [f for f, _ in figures],
                        "headline": headline(results) if results else []})


def _html(md_lines: list[str], root: Path) -> str:
    """A self-contained HTML page (tables and images inlined) from the markdown lines."""
    body, table = [], []

    def close_table() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-:")]
            cells = [[html.escape(c.strip()).replace("**", "") for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            rest = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            body.append(f"<table><tr>{head}</tr>{rest}</table>")
            table.clear()

    for line in md_lines:
        if line.startswith("|"):
            table.append(line)
            continue
        close_table()
        if line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            data = base64.b64encode((root / src.rstrip(")")).read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    close_table()
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>firmlm report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
