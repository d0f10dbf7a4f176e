"""The report's sweep section (also `firmlm sweep --report`): a row per trial like the Spark paper's Tables 7, 9
and 12, the marginal effect of each axis like its Table 8, loss and gradient-norm curves grouped by rank, and the
largest stable LR against rank on log-log axes next to the r^-0.5 prediction. Reads RUN/sweep/summary.json."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmlm.report import fmt

Figure = Callable[[list[str], str, str, Callable[[Path], Any]], None]


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return fmt.MISSING
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _short(key: str) -> str:
    return key.split(".")[-1]


def trial_table(summary: dict[str, Any]) -> list[str]:
    keys = list(summary.get("space") or {})
    head = ["trial", "state", *map(_short, keys), "steps", "initial loss", "final loss", "min loss", "reduction",
            "peak grad norm", "mean grad norm", "token accuracy", "entropy", "objective", "why stopped"]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary.get("trials") or []:
        f = row.get("figures") or {}
        reduction = f.get("loss_reduction_pct")
        md.append("| " + " | ".join([
            str(row["number"]), row["state"], *[_num(row["params"].get(k)) for k in keys], _num(f.get("steps")),
            _num(f.get("initial_loss")), _num(f.get("final_loss")), _num(f.get("min_loss")),
            fmt.MISSING if reduction is None else f"{reduction:.1f}%", _num(f.get("peak_grad_norm"), 3),
            _num(f.get("mean_grad_norm"), 3), _num(f.get("token_accuracy"), 3), _num(f.get("entropy"), 3),
            _num(row.get("value")),
            (row.get("reason") or "").replace("|", "/")[:80]]) + " |")
    return md


def marginal_table(summary: dict[str, Any]) -> list[str]:
    md = ["| axis | value | trials | completed | mean objective | mean final loss | mean reduction | stable |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key, values in (summary.get("marginal") or {}).items():
        for v in values:
            reduction = v.get("mean_loss_reduction_pct")
            md.append(f"| {_short(key)} | {v['value']} | {v['trials']} | {v['completed']} | "
                      f"{_num(v.get('mean_objective'))} | {_num(v.get('mean_final_loss'))} | "
                      f"{fmt.MISSING if reduction is None else f'{reduction:.1f}%'} | {100 * v['stable_share']:.0f}% |")
    return md


def fit_lines(fit: dict[str, Any] | None) -> list[str]:
    if not fit or not fit.get("points"):
        return ["No rank–LR fit: the space needs both train.lora.rank and train.lr, and a stable trial."]
    md = ["| rank | largest stable LR | smallest unstable LR above | limit (geometric midpoint) | trials | unstable |",
          "|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {p['rank']:g} | {p['max_stable_lr']:.3g} | "
           f"{'none (censored)' if p['censored'] else format(p['min_unstable_lr'], '.3g')} | "
           f"{fmt.MISSING if p['limit'] is None else format(p['limit'], '.3g')} | {p['trials']} | {p['unstable']} |"
           for p in fit["points"]]
    if fit.get("slope") is None:
        md += ["", f"No slope: it needs uncensored limits at two ranks or more ({fit.get('fitted_points', 0)} here)."]
    else:
        ci = fit.get("ci95")
        interval = f" ± {fit['stderr']:.2f} (95% interval [{ci[0]:.2f}, {ci[1]:.2f}])" if ci else \
            " (no interval: needs three ranks)"
        verdict = ""
        if ci:
            verdict = (" The prediction lies inside the interval." if fit.get("prediction_inside_ci95")
                       else " The prediction lies outside the interval.")
        md += ["", f"log-log slope of the LR stability limit against rank over {fit['fitted_points']} uncensored "
               f"ranks: {fit['slope']:.2f}{interval}; the paper predicts {fit['predicted_slope']}.{verdict}"]
    if fit.get("censored_points"):
        md.append(f"{fit['censored_points']} of {len(fit['points'])} ranks are censored (no LR above the largest "
                  "stable one diverged there, so the limit may be anywhere higher) and left out of the fit: widen "
                  "the LR range to pin them.")
    return md


def curves_figure(summary: dict[str, Any], path: Path) -> None:
    """Smoothed loss and gradient norm per step, one line per trial, coloured by LoRA rank."""
    from firmlm.report.figures import pyplot, save_figure

    plt = pyplot()
    rows = [r for r in summary.get("trials") or [] if (r.get("curve") or {}).get("step")]
    ranks = [str(v) for v in sorted({r["params"].get("train.lora.rank", "-") for r in rows}, key=str)]
    ranks.sort(key=lambda v: (0, float(v)) if v.replace(".", "", 1).isdigit() else (1, 0))
    colours = {rank: plt.get_cmap("viridis")(i / max(1, len(ranks) - 1)) for i, rank in enumerate(ranks)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: ranks.index(str(r["params"].get("train.lora.rank", "-")))):
        rank = str(row["params"].get("train.lora.rank", "-"))
        curve = row["curve"]
        style = "-" if row["stable"] else ":"
        label = None if rank in seen else f"rank {rank}"
        seen.add(rank)
        axes[0].plot(curve["step"], [v if v is not None else float("nan") for v in curve["loss"]], style,
                     color=colours[rank], label=label, linewidth=1.2)
        axes[1].plot(curve["step"], [v if v is not None else float("nan") for v in curve["grad_norm"]], style,
                     color=colours[rank], linewidth=1.0)
    axes[0].set(xlabel="step", ylabel="smoothed loss", title="Loss by rank (dotted: unstable)")
    axes[1].set(xlabel="step", ylabel="gradient norm", title="Gradient norm by rank")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def fit_figure(fit: dict[str, Any], path: Path) -> None:
    """The LR stability bracket per rank (largest stable to smallest unstable) on log-log axes, the fitted line
    through the brackets' midpoints and the r^-0.5 prediction through their mean."""
    from firmlm.report.figures import pyplot, save_figure

    plt = pyplot()
    points = fit["points"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for p in points:
        top = p["min_unstable_lr"] or p["max_stable_lr"] * 3
        ax.plot([p["rank"], p["rank"]], [p["max_stable_lr"], top], ":" if p["censored"] else "-", color="tab:blue")
        ax.scatter([p["rank"]], [p["max_stable_lr"]], color="tab:green", zorder=3)
        if p["min_unstable_lr"]:
            ax.scatter([p["rank"]], [p["min_unstable_lr"]], color="tab:red", marker="x", zorder=3)
    limits = [p for p in points if p["limit"]]
    ranks = [p["rank"] for p in points]
    span = [min(ranks) / 1.3, max(ranks) * 1.3]
    if fit.get("slope") is not None:
        ax.plot(span, [math.exp(fit["intercept"] + fit["slope"] * math.log(r)) for r in span],
                label=f"fit through the midpoints, slope {fit['slope']:.2f}")
    if limits:
        mx = sum(math.log(p["rank"]) for p in limits) / len(limits)
        my = sum(math.log(p["limit"]) for p in limits) / len(limits)
        ax.plot(span, [math.exp(my + fit["predicted_slope"] * (math.log(r) - mx)) for r in span], "--",
                label=f"prediction, slope {fit['predicted_slope']}")
    ax.set_title("green: largest stable LR, red: smallest unstable", fontsize=9)
    ax.set(xscale="log", yscale="log", xlabel="LoRA rank", ylabel="learning rate")
    if fit.get("slope") is not None or limits:
        ax.legend(fontsize=8)
    save_figure(fig, path)


def sweep_lines(summary: dict[str, Any], figure: Figure | None = None) -> list[str]:
    """The section's Markdown; ``figure(md, name, caption, draw)`` adds the figures (report/ or sweep/ folder)."""
    states = ", ".join(f"{v} {k}" for k, v in (summary.get("states") or {}).items())
    best = summary.get("best")
    md = ["## Sweep", "",
          f"Study `{summary.get('study')}`, sampler {summary.get('sampler')}, objective {summary.get('objective')} "
          f"(minimised); trials: {states or 'none'}.",
          ""]
    if best:
        md += [f"Best: trial {best['number']}, {summary.get('objective')} {_num(best['value'])} with "
               + ", ".join(f"{_short(k)} {v}" for k, v in best["params"].items()) + ".", ""]
    md += ["Trials (losses smoothed as the pruner saw them; the initial loss is the first step's):", ""]
    md += trial_table(summary) + ["", "Marginal effect of each axis (Table 8 of the Spark paper):", ""]
    md += marginal_table(summary) + [""]
    if figure is not None and any((r.get("curve") or {}).get("step") for r in summary.get("trials") or []):
        figure(md, "figures/sweep_curves.png", "Loss and gradient-norm curves by rank",
               lambda path: curves_figure(summary, path))
    fit = summary.get("lr_rank_fit")
    md += ["The learning rate's stability limit against rank (Section 8.2 of the Spark paper: the largest stable LR "
           "scales as r^-0.5):", ""] + fit_lines(fit) + [""]
    if figure is not None and fit and fit.get("points"):
        figure(md, "figures/sweep_lr_rank.png", "LR stability bracket against rank, log-log",
               lambda path: fit_figure(fit, path))
    return md
