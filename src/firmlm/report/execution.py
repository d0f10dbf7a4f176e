"""The report's execution section: pass@k per model (overall and per level), where the answers failed, pass@1
after repair, and the general-code forgetting check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmlm.report import fmt

FAILURE_COLUMNS = ("unparseable", "syntax_error", "compile_error", "link_error", "missing_entry", "timeout",
                   "runtime_fault", "wrong_output")


def _share(value: float | None) -> str:
    return fmt.MISSING if value is None else f"{100 * value:.1f}%"


def _pass_table(per_model: dict[str, Any], levels: list[str], ks: list[int]) -> list[str]:
    heads = [f"pass@{k}" for k in ks]
    md = ["| model | " + " | ".join(heads) + " | " + " | ".join(f"level {level}" for level in levels) + " | tasks run |",
          "|---|" + "---:|" * (len(heads) + len(levels) + 1)]
    for name, figures in per_model.items():
        by_level = figures.get("per_level") or {}
        md.append(f"| {name} | " + " | ".join(_share(figures.get("pass_at", {}).get(str(k))) for k in ks) + " | "
                  + " | ".join(_share(by_level.get(level, {}).get("pass@1")) for level in levels)
                  + f" | {fmt.count(figures.get('tasks'))} |")
    return md


def execution_lines(summary: dict[str, Any], figure: Callable[[list[str], str, str, Callable], None] | None = None
                    ) -> list[str]:
    """From RUN/exec/summary.json: pass@k per model and level (level columns are pass@1), the failure classes per
    model (a table and, with ``figure``, a stacked bar figure), pass@1 after repair, and the forgetting check."""
    per_model = summary.get("models") or {}
    levels = [str(level) for level in summary.get("levels") or []]
    samples = summary.get("samples") or 1
    ks = summary.get("pass_at") or [1]
    answers = "one greedy answer" if samples == 1 else f"{samples} sampled answers"
    md = ["## Execution-grounded tasks", "",
          f"{fmt.count(summary.get('tasks'))} firmware tasks ({', '.join(summary.get('targets') or [])}), {answers} "
          f"per model and task, built with the task's harness and run in the sandbox ({summary.get('isolation')}). "
          "pass@k is the unbiased estimator, averaged over tasks; the level columns are pass@1.", ""]
    md += _pass_table(per_model, levels, ks)
    md += ["", "Failures of the first answers (answers per class; InCoder-32B's taxonomy):", "",
           "| model | " + " | ".join(c.replace("_", " ") for c in FAILURE_COLUMNS) + " |",
           "|---|" + "---:|" * len(FAILURE_COLUMNS)]
    for name, figures in per_model.items():
        failures = figures.get("failures") or {}
        md.append(f"| {name} | " + " | ".join(fmt.count(failures.get(c, 0)) for c in FAILURE_COLUMNS) + " |")
    md.append("")
    if figure is not None and any(f.get("failures") for f in per_model.values()):
        figure(md, "figures/exec_failures.png", "Failure classes of the first answers per model",
               lambda path: failure_figure(per_model, path))
    repaired = {n: f["repair"] for n, f in per_model.items() if f.get("repair")}
    if repaired:
        rounds = next(iter(repaired.values()))["rounds"]
        md += [f"Feedback-driven repair (up to {rounds} rounds; the compiler's or the run's output goes back to the "
               "model):", "", "| model | pass@1 | pass@1 with repair | answers fixed |", "|---|---:|---:|---:|"]
        md += [f"| {n} | {_share(per_model[n].get('pass_at', {}).get('1'))} | {_share(r.get('pass_at_1'))} | "
               f"{fmt.count(r.get('fixed'))} |" for n, r in repaired.items()]
        md.append("")
    general = {n: f["general"] for n, f in per_model.items() if f.get("general")}
    if general:
        md += [f"General-code forgetting check ({fmt.count(summary.get('general_tasks'))} host C/C++ tasks with unit "
               "tests, outside the domain):", "", "| model | compiles | passes | answers |", "|---|---:|---:|---:|"]
        md += [f"| {n} | {_share(g.get('compile_rate'))} | {_share(g.get('pass_rate'))} | {fmt.count(g.get('samples'))} |"
               for n, g in general.items()]
        md.append("")
    rtl = {n: f["rtl_score"] for n, f in per_model.items() if f.get("rtl_score") is not None}
    if rtl:
        md += ["RTL tasks, VeriScope score (0: does not build, 50: builds but fails, 100: passes): "
               + ", ".join(f"{n} {score:.0f}" for n, score in rtl.items()) + ".", ""]
    unsupported = {n: f.get("unsupported") for n, f in per_model.items() if f.get("unsupported")}
    if unsupported:
        md += ["Not run (target unavailable here): " + ", ".join(f"{n} {c}" for n, c in unsupported.items()) + ".", ""]
    for error in summary.get("task_errors") or []:
        md.append(f"- task file skipped: {error['reason']}")
    return md + [""]


def failure_figure(per_model: dict[str, Any], path: Path) -> None:
    """Stacked bars: the share of each model's first answers per outcome (passed, then the failure classes)."""
    from firmlm.report.figures import save_figure, pyplot

    plt = pyplot()
    names = list(per_model)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names) + 3), 3.8))
    totals = [max(1, f.get("samples") or 0) for f in per_model.values()]
    bottom = [0.0] * len(names)
    passed = [100 * (f.get("samples", 0) - sum((f.get("failures") or {}).values())) / t
              for f, t in zip(per_model.values(), totals)]
    for label, values in [("passed", passed)] + [
            (c.replace("_", " "), [100 * (f.get("failures") or {}).get(c, 0) / t for f, t in zip(per_model.values(), totals)])
            for c in FAILURE_COLUMNS]:
        if any(values):
            ax.bar(names, values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("share of answers (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    save_figure(fig, path)
