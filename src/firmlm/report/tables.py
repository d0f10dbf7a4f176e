"""Markdown tables of the evaluation results (each function returns the table's lines; [] when no data)."""

from __future__ import annotations

from typing import Any

from firmlm.report import fmt


def scored(results: dict[str, Any], split: str, section: str = "perplexity") -> list[str]:
    """Models with figures for ``split`` in ``section``, the reference first."""
    names = [m for m, r in results["models"].items() if split in (r.get(section) or {})]
    ref = results.get("reference", "base")
    return sorted(names, key=lambda m: m != ref)


def _label(cat: str) -> str:
    return "**overall**" if cat == "overall" else cat


def _figs(split_figs: dict, cat: str) -> dict | None:
    return split_figs["overall"] if cat == "overall" else split_figs["per_category"].get(cat)


def control_categories(results: dict[str, Any], split: str) -> list[str]:
    return list(((results.get("control_margin") or {}).get(split) or {}).get("control_categories") or [])


def ppl_table(results: dict[str, Any], split: str) -> list[str]:
    """Per category: files (when recorded), documents, tokens, the perplexity of each model (reference first)
    and bits per byte of the reference and the target."""
    names = scored(results, split)
    if not names:
        return []
    ref, target = names[0], results.get("target")
    figs = {m: results["models"][m]["perplexity"][split] for m in names}
    bpb_models = [ref] + ([target] if target in figs and target != ref else [])
    with_files = "files" in figs[ref]["overall"]
    lines = ["| category | " + ("files | " if with_files else "") + "docs | tokens | "
             + " | ".join(f"{m} ppl" for m in names) + " | " + " | ".join(f"{m} bpb" for m in bpb_models) + " |",
             "|---|" + "---:|" * (int(with_files) + 2 + len(names) + len(bpb_models))]
    for cat in [*figs[ref]["per_category"], "overall"]:
        row = {m: _figs(f, cat) for m, f in figs.items()}
        cells = ([fmt.count(row[ref].get("files"))] if with_files else []) + [
            fmt.count(row[ref]["docs"]), fmt.count(row[ref]["tokens"])]
        cells += [fmt.ppl(row[m]["ppl"]) if row[m] else fmt.MISSING for m in names]
        cells += [fmt.bpb(row[m]["bpb"]) if row[m] else fmt.MISSING for m in bpb_models]
        lines.append(f"| {_label(cat)} | " + " | ".join(cells) + " |")
    return lines


def comparison_table(results: dict[str, Any], split: str) -> list[str]:
    """Per category: the target's reduction against the reference with its 95% interval, whether the whole
    interval is above zero, the top-1 change, and the share of the category's 13-grams seen in training.
    Old runs without intervals get the point reductions."""
    comp = (results.get("comparison") or {}).get(split)
    points = (results.get("reduction_pct") or {}).get(split) or {}
    if not comp and not points:
        return []
    contamination = (results.get("contamination") or {}).get(split) or {}
    controls = control_categories(results, split)
    cats = list((comp or points)["per_category"])
    head = ["category"]
    head += (["files", "tokens", "reduction [95% CI]", "improved (CI > 0)", "top-1 Δ pts [95% CI]"] if comp
             else ["reduction"])
    head += ["13-grams seen in training"] if contamination else []
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for cat in [*cats, "overall"]:
        label = _label(cat) + (" (control)" if cat in controls else "")
        if comp:
            f = comp["overall"] if cat == "overall" else comp["per_category"].get(cat) or {}
            cells = [fmt.count(f.get("files")), fmt.count(f.get("tokens")),
                     fmt.change(f.get("reduction_pct"), f.get("ci95")),
                     ("yes" if f["improved"] else "no") if "improved" in f else fmt.MISSING,
                     fmt.change(f.get("top1_delta_pts"), f.get("top1_ci95"), unit="")]
        else:
            value = points.get("overall") if cat == "overall" else points["per_category"].get(cat)
            cells = [fmt.change(value)]
        if contamination:
            seen = (contamination.get(cat) or {}).get("shared_13gram_share")
            cells.append(fmt.share(seen) if cat != "overall" else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def completion_table(results: dict[str, Any], split: str) -> list[str]:
    """Teacher-forced completion on the suffix: top-1/top-5 accuracy and loss per model."""
    names = scored(results, split)
    if not names:
        return []
    head = "| category | suffix tokens | " + " | ".join(f"{m} top-1 | {m} top-5 | {m} loss" for m in names) + " |"
    lines = [head, "|---|---:|" + "---:|" * (3 * len(names))]
    base = results["models"][names[0]]["perplexity"][split]
    for cat in [*base["per_category"], "overall"]:
        cells = []
        for m in names:
            c = (_figs(results["models"][m]["perplexity"][split], cat) or {}).get("completion") or {}
            cells += [fmt.share(c.get("top1")), fmt.share(c.get("top5")),
                      f"{c['suffix_loss']:.3f}" if c.get("suffix_loss") is not None else fmt.MISSING]
        suffix = ((_figs(base, cat) or {}).get("completion") or {}).get("suffix_tokens")
        lines.append(f"| {_label(cat)} | {fmt.count(suffix)} | " + " | ".join(cells) + " |")
    return lines


def generation_table(results: dict[str, Any], split: str) -> list[str]:
    """Generative completion per model: token accuracy and BLEU-4 weighted by reference tokens (corpus BLEU),
    empty generations, then the unweighted means."""
    names = scored(results, split, "generation")
    if not names:
        return []
    lines = ["| category | samples | " + " | ".join(f"{m} token acc | {m} BLEU-4 | {m} empty" for m in names) + " |",
             "|---|---:|" + "---:|" * (3 * len(names))]
    first = results["models"][names[0]]["generation"][split]
    for cat in [*first["per_category"], "overall"]:
        cells = []
        for m in names:
            a = _figs(results["models"][m]["generation"][split], cat) or {}
            w = a.get("weighted", {})
            cells += [fmt.share(w.get("token_accuracy")), f"{w['bleu4_corpus']:.1f}" if "bleu4_corpus" in w else fmt.MISSING,
                      str(a.get("empty_generations", fmt.MISSING))]
        lines.append(f"| {_label(cat)} | {_figs(first, cat)['samples']} | " + " | ".join(cells) + " |")
    unweighted = "; ".join(
        f"{m}: token acc {fmt.share(u['token_accuracy'])}, BLEU-4 {u['bleu4_mean_sentence']:.1f}"
        for m in names for u in [results["models"][m]["generation"][split]["overall"]["unweighted"]])
    return lines + ["", f"Unweighted means over samples (overall): {unweighted}."]


def winners_table(results: dict[str, Any], split: str) -> list[str]:
    """Per category, the best model on each metric with its value (paper Table 18)."""
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
            if w is None:
                cells.append(fmt.MISSING)
                continue
            value = (fmt.ppl(w["value"]) if m == "perplexity" else fmt.share(w["value"])
                     if m in ("top1", "token_accuracy") else f"{w['value']:.1f}")
            cells.append(f"{w['model']} ({value})")
        lines.append(f"| {_label(cat)} | " + " | ".join(cells) + " |")
    return lines


def checkpoint_table(results: dict[str, Any]) -> list[str]:
    """Overall perplexity per split at each training step (paper Table 15)."""
    series = results.get("checkpoints") or []
    if not series:
        return []
    splits = [s for s in results.get("splits", []) if any(s in r for r in series)]
    lines = ["| model | step | " + " | ".join(f"{s} ppl" for s in splits) + " |", "|---|---:|" + "---:|" * len(splits)]
    for r in series:
        lines.append(f"| {r['model']} | {r['step']} | " + " | ".join(fmt.ppl(r.get(s)) for s in splits) + " |")
    return lines


def failure_lines(results: dict[str, Any]) -> list[str]:
    """Everything that did not go to plan, per model: nothing is dropped silently."""
    lines = ["| model | cut to context (ppl) | generation failed | empty generations | prompt cut to budget | API requests | API cache hits | API retries | API errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results["models"].items():
        g = (r.get("generation") or {}).get("failures", {})
        api = r.get("api") or {}
        errors = ", ".join(f"{k} {v}" for k, v in api.get("failures", {}).items()) or ("0" if api else fmt.MISSING)

        def cell(value: Any) -> str:
            return fmt.MISSING if value is None else str(value)

        lines.append(f"| {name} | {cell(r.get('truncated_to_context'))} | {cell(g.get('failed_requests'))} | "
                     f"{cell(g.get('empty_generations'))} | {cell(g.get('prompt_truncated'))} | {cell(api.get('requests'))} | "
                     f"{cell(api.get('cache_hits'))} | {cell(api.get('retries'))} | {errors} |")
    skipped = results.get("skipped_models") or []
    if skipped:
        lines += ["", "Skipped models: " + "; ".join(f"{s['model']} ({s['reason']})" for s in skipped) + "."]
    return lines
