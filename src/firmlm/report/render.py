"""The report stage: tables and figures from artifacts alone (corpus manifest, train metrics, eval results)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from firmlm.report.figures import (
    checkpoint_figure,
    completion_figure,
    generation_figure,
    ppl_figure,
    training_figure,
)
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


def scored(results: dict[str, Any], split: str, section: str = "perplexity") -> list[str]:
    """Models with figures for ``split`` in ``section``, the reference first."""
    names = [m for m, r in results["models"].items() if split in (r.get(section) or {})]
    ref = results.get("reference", "base")
    return sorted(names, key=lambda m: m != ref)


def ppl_table(results: dict[str, Any], split: str) -> list[str]:
    """Markdown rows: category, docs, tokens, perplexity of each model (reference first), the target's
    reduction against the reference, and bits per byte of both."""
    names = scored(results, split)
    if not names:
        return []
    ref, target = names[0], results.get("target")
    figs = {m: results["models"][m]["perplexity"][split] for m in names}
    red = results.get("reduction_pct", {}).get(split, {})
    bpb_models = [ref] + ([target] if target in figs else [])
    lines = ["| category | docs | tokens | " + " | ".join(f"{m} ppl" for m in names) + " | reduction | "
             + " | ".join(f"{m} bpb" for m in bpb_models) + " |",
             "|---|---:|---:|" + "---:|" * (len(names) + 1 + len(bpb_models))]
    for cat in [*figs[ref]["per_category"], "overall"]:
        row = {m: (f["overall"] if cat == "overall" else f["per_category"].get(cat)) for m, f in figs.items()}
        r = red.get("overall") if cat == "overall" else red.get("per_category", {}).get(cat)
        cells = [f"{row[m]['ppl']:.3f}" if row[m] else "–" for m in names]
        cells.append(f"{r:+.1f}%" if r is not None else "–")
        cells += [f"{row[m]['bpb']:.4f}" if row[m] else "–" for m in bpb_models]
        label = "**overall**" if cat == "overall" else cat
        lines.append(f"| {label} | {row[ref]['docs']} | {row[ref]['tokens']} | " + " | ".join(cells) + " |")
    return lines


def completion_table(results: dict[str, Any], split: str) -> list[str]:
    """Markdown rows of teacher-forced completion on the 25% suffix: top-1/top-5 accuracy and loss per model."""
    names = scored(results, split)
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
    names = scored(results, split, "generation")
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
    """One row per split: the reference's and the target's overall perplexity and top-1, the reduction, and
    the categories the target improved."""
    rows = []
    ref_name, target_name = results.get("reference", "base"), results.get("target")
    for split, base in results["models"][ref_name]["perplexity"].items():
        adapted = results["models"].get(target_name, {}).get("perplexity", {}).get(split) if target_name else None
        red = results.get("reduction_pct", {}).get(split, {})
        cats = red.get("per_category", {})
        rows.append(
            {
                "split": split,
                "reference": ref_name,
                "target": target_name,
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


def winners_table(results: dict[str, Any], split: str) -> list[str]:
    """Markdown rows: per category, the best model on each metric with its value (paper Table 18)."""
    win = results.get("winners") or {}
    metrics = [m for m in ("perplexity", "top1", "token_accuracy", "bleu4") if split in win.get(m, {})]
    if not metrics:
        return []
    labels = {"perplexity": "perplexity (lowest)", "top1": "top-1", "token_accuracy": "gen. token acc", "bleu4": "BLEU-4"}
    cats = sorted({c for m in metrics for c in win[m][split]} - {"overall"}) + ["overall"]
    lines = ["| category | " + " | ".join(labels[m] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for cat in cats:
        cells = []
        for m in metrics:
            w = win[m][split].get(cat)
            value = "" if w is None else (f"{w['value']:.3f}" if m == "perplexity" else
                                          f"{100 * w['value']:.1f}%" if m in ("top1", "token_accuracy") else f"{w['value']:.1f}")
            cells.append(f"{w['model']} ({value})" if w else "–")
        lines.append(f"| {'**overall**' if cat == 'overall' else cat} | " + " | ".join(cells) + " |")
    return lines


def checkpoint_table(results: dict[str, Any]) -> list[str]:
    """Markdown rows: overall perplexity per split at each training step (paper Table 15)."""
    series = results.get("checkpoints") or []
    if not series:
        return []
    splits = [s for s in results.get("splits", []) if any(s in r for r in series)]
    lines = ["| model | step | " + " | ".join(f"{s} ppl" for s in splits) + " |", "|---|---:|" + "---:|" * len(splits)]
    for r in series:
        lines.append(f"| {r['model']} | {r['step']} | " + " | ".join(f"{r[s]:.3f}" if r.get(s) else "–" for s in splits) + " |")
    return lines


def failure_lines(results: dict[str, Any]) -> list[str]:
    """Markdown rows of everything that did not go to plan, per model: nothing is dropped silently."""
    lines = ["| model | cut to context (ppl) | generation failed | empty generations | prompt cut to budget | API requests | API cache hits | API retries | API errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results["models"].items():
        g = (r.get("generation") or {}).get("failures", {})
        api = r.get("api") or {}
        errors = ", ".join(f"{k} {v}" for k, v in api.get("failures", {}).items()) or ("0" if api else "–")

        def cell(value: Any) -> str:
            return "–" if value is None else str(value)

        lines.append(f"| {name} | {cell(r.get('truncated_to_context'))} | {cell(g.get('failed_requests'))} | "
                     f"{cell(g.get('empty_generations'))} | {cell(g.get('prompt_truncated'))} | {cell(api.get('requests'))} | "
                     f"{cell(api.get('cache_hits'))} | {cell(api.get('retries'))} | {errors} |")
    skipped = results.get("skipped_models") or []
    if skipped:
        lines += ["", "Skipped models: " + "; ".join(f"{s['model']} ({s['reason']})" for s in skipped) + "."]
    return lines


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
        if manifest.get("secrets_replaced"):
            md += ["", "Secrets and PII replaced by placeholders: "
                   + ", ".join(f"{k} {v}" for k, v in manifest["secrets_replaced"].items()) + "."]
        if manifest.get("cleaning_changes"):
            md += ["", "Cleaning (places changed): " + ", ".join(f"{k} {v}" for k, v in manifest["cleaning_changes"].items()) + "."]
        if manifest.get("forks"):
            md += ["", "Forks: " + ", ".join(f"{k} of {v['of']} ({100 * v['share']:.0f}% duplicated)"
                                            for k, v in manifest["forks"].items()) + "."]
        md.append("")
    if train:
        devices = train.get("world_size") or 1
        per_device = train.get("tokens_per_s_per_device")
        speed = f"{train['tokens_per_s']} tokens/s" + (
            f" on {devices} processes, {per_device} per device" if devices > 1 and per_device else "")
        if train.get("mfu") is not None:
            speed += f", MFU {100 * train['mfu']:.1f}%"
        md += ["## Training", "", f"Model `{train['model']}`, LoRA r={train['lora']['rank']} alpha={train['lora']['alpha']} "
               f"rslora={train['lora']['rslora']}, {train['steps']} steps, {train['train_tokens']} tokens in "
               f"{train['train_seconds']} s ({speed}); loss {_digits(train['first_loss'])} → "
               f"{_digits(train['final_loss'])}.", ""]

    def figure(name: str, caption: str, draw) -> None:
        draw(out.path / name)
        figures.append((name, caption))
        md.extend([f"![{caption}]({name})", ""])

    if metrics:
        figure("figures/training.png", "Training loss, LR schedule, gradient norm and throughput",
               lambda path: training_figure(metrics, path))
    if results:
        ref, target = results.get("reference", "base"), results.get("target")
        splits = list(results["models"][ref]["perplexity"])
        reduction = f" Reduction = ({ref} − {target}) / {ref}." if target else ""
        md += ["## Perplexity", "", f"Token-weighted perplexity over the same {results['samples']} samples for every "
               f"model; bits per byte (bpb) compare models with different tokenizers.{reduction}", ""]
        for split in splits:
            md += [f"### {split}", ""] + ppl_table(results, split) + [""]
            figure(f"figures/ppl_{split}.png", f"Per-category perplexity, {split}",
                   lambda path, s=split: ppl_figure(results, s, path))
        if results.get("checkpoints"):
            md += ["## Perplexity across checkpoints", "", "Overall perplexity of the base model (step 0), the kept "
                   "checkpoints and the final adapter.", ""] + checkpoint_table(results) + [""]
            figure("figures/ppl_checkpoints.png", "Perplexity across checkpoints",
                   lambda path: checkpoint_figure(results["checkpoints"], splits, path))
        md += ["## Teacher-forced completion", "", "Each sample is split at the line boundary nearest 75% of its "
               "length and fed whole once; on the suffix tokens: top-1 and top-5 next-token accuracy and the mean "
               "loss (token-weighted).", ""]
        for split in splits:
            md += [f"### {split}", ""] + completion_table(results, split) + [""]
            figure(f"figures/completion_{split}.png", f"Teacher-forced top-1 and top-5, {split}",
                   lambda path, s=split: completion_figure(results, s, path))
        if any("generation" in r for r in results["models"].values()):
            md += ["## Generative completion", "", f"Greedy continuation of the 75% prefix of {results.get('generation_samples')} "
                   "samples, scored against the true suffix in one code tokenization for every model (words and single "
                   "symbols): token accuracy is the position-wise match over the reference length; BLEU-4 is corpus BLEU "
                   "on those tokens with the generation cut to the reference length. Table figures are weighted by "
                   "reference tokens; the unweighted means over samples follow each table.", ""]
            for split in splits:
                if not scored(results, split, "generation"):
                    continue
                md += [f"### {split}", ""] + generation_table(results, split) + [""]
                figure(f"figures/generation_{split}.png", f"Generative token accuracy and BLEU-4, {split}",
                       lambda path, s=split: generation_figure(results, s, path))
        if len(results["models"]) > 2 or any("generation" in r for r in results["models"].values()):
            md += ["## Winner per category", "", "The best model on each metric, per category (ties: the model listed "
                   "first).", ""]
            for split in splits:
                md += [f"### {split}", ""] + winners_table(results, split) + [""]
        md += ["## Failures", "", "Samples cut to the model's context, failed or empty generations, prompts cut to the "
               "generation budget, and API traffic: counted here, never dropped silently.", ""] + failure_lines(results) + [""]
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


def _digits(value, n: int = 4):
    """A figure rounded to ``n`` significant digits for the text ('–' when missing)."""
    return "–" if value is None else f"{value:.{n}g}"
