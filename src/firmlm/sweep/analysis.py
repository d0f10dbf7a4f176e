"""What a sweep found, from the study alone: a row per trial (the Spark paper's Tables 7 and 9), the marginal
effect of each axis (Table 8), and the largest stable learning rate against the LoRA rank on log-log axes
(Section 8.2 predicts a slope of -0.5).

A trial is *stable* when it completed or was stopped only for being behind the median; it is *unstable* when it
diverged or failed. Per rank, the stability limit lies between the largest stable LR and the smallest unstable LR
above it (its geometric midpoint is the point fitted); a rank without an unstable LR above its largest stable one
is ``censored`` (the limit may be anywhere higher). The slope is an ordinary least-squares fit of log(limit) on
log(rank) over the uncensored ranks, with its standard error (n - 2 degrees of freedom) and a 95% interval from
Student's t.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from firmlm.config import SweepConfig
from firmlm.runs import atomic_write_text

RANK_KEY = "train.lora.rank"
LR_KEY = "train.lr"
PREDICTED_SLOPE = -0.5


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial except duplicates: number, state, parameters, objective, figures, curve, and why it stopped."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "duplicate_of" in t.user_attrs:
            continue
        reason = t.user_attrs.get("prune_reason") or t.user_attrs.get("fail_reason")
        if t.state.name == "FAIL" and not reason:
            reason = "its worker stopped sending heartbeats (killed or crashed); queued again"
        diverged = t.state.name == "FAIL" or (t.state.name == "PRUNED" and str(reason).startswith("diverged"))
        value = t.value if t.state.name == "COMPLETE" else None  # a pruned trial's value is its last report
        rows.append({"number": t.number, "state": t.state.name.lower(), "params": t.params, "value": value,
                     "stable": t.state.name in ("COMPLETE", "PRUNED") and not diverged,
                     "reason": reason, "figures": t.user_attrs.get("figures") or {},
                     "curve": t.user_attrs.get("curve") or {}, "worker": t.user_attrs.get("worker"),
                     "retry_of": t.system_attrs.get("failed_trial")})
    return rows


def marginal_effects(rows: list[dict[str, Any]], space: dict) -> dict[str, list[dict[str, Any]]]:
    """Per axis and value: completed trials, mean objective, mean final loss and loss reduction, and the share of
    stable trials (all trials that ran)."""
    effects: dict[str, list[dict[str, Any]]] = {}
    for key in space:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if key in row["params"]:
                groups[json.dumps(row["params"][key])].append(row)
        table = []
        for value, members in sorted(groups.items(), key=lambda item: _sort_key(json.loads(item[0]))):
            done = [m for m in members if m["value"] is not None]

            def mean(values: list[float]) -> float | None:
                finite = [v for v in values if v is not None and math.isfinite(v)]
                return sum(finite) / len(finite) if finite else None

            table.append({"value": json.loads(value), "trials": len(members), "completed": len(done),
                          "mean_objective": mean([m["value"] for m in done]),
                          "mean_final_loss": mean([m["figures"].get("final_loss") for m in done]),
                          "mean_loss_reduction_pct": mean([m["figures"].get("loss_reduction_pct") for m in done]),
                          "stable_share": sum(m["stable"] for m in members) / len(members)})
        effects[key] = table
    return effects


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, int | float) and not isinstance(value, bool) else (1, 0, str(value))


_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def stable_lr_fit(rows: list[dict[str, Any]], rank_key: str = RANK_KEY, lr_key: str = LR_KEY) -> dict[str, Any] | None:
    """The stability limit of the LR per rank and the log-log slope against rank, or None without both axes.

    Per rank the limit lies between the largest stable LR and the smallest unstable LR above it; the fit uses the
    geometric midpoint of that bracket. A rank with no unstable LR above its largest stable one is censored (the
    limit may be anywhere higher) and left out of the fit.
    """
    ran = [r for r in rows if rank_key in r["params"] and lr_key in r["params"] and r["state"] != "running"]
    if not ran:
        return None
    by_rank: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for row in ran:
        by_rank[float(row["params"][rank_key])].append(row)
    points = []
    for rank, members in sorted(by_rank.items()):
        stable = [float(m["params"][lr_key]) for m in members if m["stable"]]
        if not stable:
            continue
        best = max(stable)
        above = [float(m["params"][lr_key]) for m in members if not m["stable"] and float(m["params"][lr_key]) > best]
        first_unstable = min(above) if above else None
        points.append({"rank": rank, "max_stable_lr": best, "min_unstable_lr": first_unstable,
                       "limit": math.sqrt(best * first_unstable) if first_unstable else None,
                       "trials": len(members), "unstable": sum(not m["stable"] for m in members),
                       "censored": first_unstable is None})
    fit: dict[str, Any] = {"points": points, "rank_key": rank_key, "lr_key": lr_key,
                           "predicted_slope": PREDICTED_SLOPE, "slope": None, "stderr": None, "ci95": None}
    limits = [p for p in points if not p["censored"]]
    fit["fitted_points"] = len(limits)
    if len(limits) >= 2:
        x = [math.log(p["rank"]) for p in limits]
        y = [math.log(p["limit"]) for p in limits]
        n, mx, my = len(x), sum(x) / len(x), sum(y) / len(y)
        sxx = sum((a - mx) ** 2 for a in x)
        if sxx > 0:
            slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
            fit.update({"slope": slope, "intercept": my - slope * mx})
            if n >= 3:
                residual = sum((b - (my + slope * (a - mx))) ** 2 for a, b in zip(x, y))
                stderr = math.sqrt(residual / (n - 2) / sxx)
                t = _T95.get(n - 2, 1.96)
                fit.update({"stderr": stderr, "ci95": [slope - t * stderr, slope + t * stderr],
                            "prediction_inside_ci95": slope - t * stderr <= PREDICTED_SLOPE <= slope + t * stderr})
    fit["censored_points"] = sum(p["censored"] for p in points)
    return fit


def analyse(study, sweep: SweepConfig) -> dict[str, Any]:
    rows = trial_rows(study)
    completed = [r for r in rows if r["value"] is not None]
    best = min(completed, key=lambda r: r["value"]) if completed else None
    states: dict[str, int] = defaultdict(int)
    for r in rows:
        states[r["state"]] += 1
    return {"study": sweep.study_name, "objective": sweep.objective, "sampler": sweep.sampler,
            "n_trials": sweep.n_trials, "space": {k: v.model_dump(exclude_none=True) for k, v in sweep.space.items()},
            "states": dict(states), "best": best and {"number": best["number"], "value": best["value"],
                                                      "params": best["params"]},
            "trials": rows, "marginal": marginal_effects(rows, sweep.space), "lr_rank_fit": stable_lr_fit(rows)}


def write_analysis(study, sweep: SweepConfig, sweep_dir: Path) -> dict[str, Any]:
    """Analyse the study and write RUN/sweep/summary.json (atomically); returns the analysis."""
    summary = analyse(study, sweep)
    atomic_write_text(sweep_dir / "summary.json", json.dumps(summary, indent=2))
    return summary
