"""The headline: per split, the target's reduction against the reference with its 95% interval, the
categories improved by interval, the embedded-minus-control margin, and what was trained on how much.

Reductions are positive when the target's perplexity (or bits per byte) is lower than the reference's.
Runs evaluated before intervals existed lack ``comparison``/``control_margin``: their rows fall back to the
point reduction and count categories improved by point estimate (``improved_by`` says which).
"""

from __future__ import annotations

from typing import Any

from firmlm.report import fmt


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per split (the report stage's ``summary["headline"]``, printed by the CLI)."""
    rows = []
    ref_name, target_name = results.get("reference", "base"), results.get("target")
    models = results["models"]
    for split, base in models[ref_name]["perplexity"].items():
        adapted = models.get(target_name, {}).get("perplexity", {}).get(split) if target_name else None
        comp = (results.get("comparison") or {}).get(split)
        margin = (results.get("control_margin") or {}).get(split) or {}
        if comp:
            overall = comp["overall"]
            figures = {"metric": comp.get("metric", "perplexity"), "reduction_pct": overall.get("reduction_pct"),
                       "reduction_ci95": overall.get("ci95"), "top1_delta_pts": overall.get("top1_delta_pts"),
                       "top1_ci95": overall.get("top1_ci95"), "categories_improved": comp.get("categories_improved"),
                       "categories": comp.get("categories"), "improved_by": "interval"}
        else:
            red = (results.get("reduction_pct") or {}).get(split) or {}
            figures = {"metric": "perplexity", "reduction_pct": red.get("overall"), "reduction_ci95": None,
                       "top1_delta_pts": None, "top1_ci95": None,
                       "categories_improved": sum(1 for v in red.get("per_category", {}).values() if v > 0),
                       "categories": len(base["per_category"]), "improved_by": "point estimate"}
        rows.append({
            "split": split,
            "reference": ref_name,
            "target": target_name,
            "base_ppl": base["overall"]["ppl"],
            "adapted_ppl": adapted["overall"]["ppl"] if adapted else None,
            "base_top1": (base["overall"].get("completion") or {}).get("top1"),
            "adapted_top1": (adapted["overall"].get("completion") or {}).get("top1") if adapted else None,
            **figures,
            "control_categories": margin.get("control_categories") or [],
            "control_margin_pts": margin.get("margin_pts"),
            "control_margin_ci95": margin.get("ci95"),
        })
    return rows


def trained(train: dict[str, Any] | None, code: str = "`") -> str | None:
    """What was trained on how much, in one sentence (``code`` quotes the model reference)."""
    if not train:
        return None
    lora = train.get("lora") or {}
    targets = lora.get("targets")
    targets = ", ".join(targets) if isinstance(targets, list) else targets
    adapter = f"LoRA r={lora.get('rank')}" + (f" (alpha {lora['alpha']:g}{', rsLoRA' if lora.get('rslora') else ''})"
                                               if lora.get("alpha") is not None else "")
    text = (f"{code}{train.get('model')}{code} with {adapter}" + (f" on {targets}" if targets else "")
            + f": {fmt.count(train.get('steps'))} steps, {fmt.tokens(train.get('train_tokens'))} train tokens, "
            f"{fmt.minutes(train.get('train_seconds'))}")
    if train.get("stopped_for_time"):
        text += " (stopped by the time budget)"
    return text + "."


def headline_lines(results: dict[str, Any] | None, train: dict[str, Any] | None) -> list[str]:
    """The report's opening block (Markdown): the per-split table, how to read it, and the training line."""
    lines = ["## Headline", ""]
    what = trained(train)
    if what:
        lines += [f"**Trained:** {what}", ""]
    rows = headline(results) if results else []
    if not rows or not rows[0]["target"]:
        return lines + ["No evaluation results that compare a target with the reference.", ""]
    ref, target = rows[0]["reference"], rows[0]["target"]
    bpb = any(r["metric"] == "bpb" for r in rows)
    by_interval = all(r["improved_by"] == "interval" for r in rows)
    with_margin = any(r["control_margin_pts"] is not None for r in rows)
    head = ["split", f"{ref} ppl", f"{target} ppl", "reduction [95% CI]" if by_interval else "reduction",
            "categories improved" + (" (CI > 0)" if by_interval else " (point estimate)")]
    head += ["embedded − control [95% CI]"] if with_margin else []
    head += ["top-1 Δ pts [95% CI]"] if by_interval else []
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["split"], fmt.ppl(r["base_ppl"]), fmt.ppl(r["adapted_ppl"]),
                 fmt.change(r["reduction_pct"], r["reduction_ci95"]),
                 f"{r['categories_improved']} of {r['categories']}"]
        if with_margin:
            cells.append(fmt.change(r["control_margin_pts"], r["control_margin_ci95"], unit="pts"))
        if by_interval:
            cells.append(fmt.change(r["top1_delta_pts"], r["top1_ci95"], unit=""))
        lines.append("| " + " | ".join(cells) + " |")
    metric = "bits per byte (the tokenizers differ)" if bpb else "token-weighted perplexity"
    lines += ["", f"Reduction = ({ref} − {target}) / {ref} on {metric}: **positive means {target} predicts the code "
              "better**." + (" Intervals: 95% paired bootstrap over files; a category counts as improved only when "
                             "its whole interval is above zero." if by_interval else
                             " This run has no intervals (evaluated before they existed): categories are counted "
                             "by point estimate.")]
    if with_margin:
        lines += ["", "Embedded − control: the reduction on embedded categories minus the reduction on the control "
                  "categories, in percentage points. Training on any C lowers perplexity on C in general; the margin "
                  "is the gain specific to embedded code.", ""]
        for split, m in (results.get("control_margin") or {}).items():
            controls = ", ".join(m.get("control_categories") or [])
            lines.append(f"- {split}: embedded {fmt.change(m.get('embedded_reduction_pct'))} over "
                         f"{fmt.count(m.get('embedded_files'))} files, control ({controls}) "
                         f"{fmt.change(m.get('control_reduction_pct'))} over {fmt.count(m.get('control_files'))} files")
    return lines + [""]
