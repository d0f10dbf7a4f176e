"""The report's execution section: pass@1 per model (overall and per level) and where the answers failed."""

from __future__ import annotations

from typing import Any

from firmlm.report import fmt

FAILURE_COLUMNS = ("unparseable", "syntax_error", "compile_error", "link_error", "missing_entry", "timeout",
                   "runtime_fault", "wrong_output")


def _share(value: float | None) -> str:
    return fmt.MISSING if value is None else f"{100 * value:.1f}%"


def execution_lines(summary: dict[str, Any]) -> list[str]:
    """From RUN/exec/summary.json: a pass@1 table per model and level, and the failure classes per model."""
    per_model = summary.get("models") or {}
    levels = [str(level) for level in summary.get("levels") or []]
    md = ["## Execution-grounded tasks", "",
          f"{fmt.count(summary.get('tasks'))} tasks ({', '.join(summary.get('targets') or [])}), one greedy answer "
          f"per model and task, built with the task's harness and run in the sandbox ({summary.get('isolation')}).",
          "", "| model | pass@1 | " + " | ".join(f"level {level}" for level in levels) + " | tasks run |",
          "|---|---:|" + "---:|" * (len(levels) + 1)]
    for name, figures in per_model.items():
        by_level = figures.get("per_level") or {}
        md.append(f"| {name} | {_share(figures.get('pass_at', {}).get('1'))} | "
                  + " | ".join(_share(by_level.get(level, {}).get("pass@1")) for level in levels)
                  + f" | {fmt.count(figures.get('tasks'))} |")
    md += ["", "Failures (answers per class; InCoder-32B's taxonomy):", "",
           "| model | " + " | ".join(c.replace("_", " ") for c in FAILURE_COLUMNS) + " |",
           "|---|" + "---:|" * len(FAILURE_COLUMNS)]
    for name, figures in per_model.items():
        failures = figures.get("failures") or {}
        md.append(f"| {name} | " + " | ".join(fmt.count(failures.get(c, 0)) for c in FAILURE_COLUMNS) + " |")
    rtl = {n: f["rtl_score"] for n, f in per_model.items() if f.get("rtl_score") is not None}
    if rtl:
        md += ["", "RTL tasks, VeriScope score (0: does not build, 50: builds but fails, 100: passes): "
               + ", ".join(f"{n} {score:.0f}" for n, score in rtl.items()) + "."]
    unsupported = {n: f.get("unsupported") for n, f in per_model.items() if f.get("unsupported")}
    if unsupported:
        md += ["", "Not run (target unavailable here): " + ", ".join(f"{n} {c}" for n, c in unsupported.items()) + "."]
    for error in summary.get("task_errors") or []:
        md.append(f"- task file skipped: {error['reason']}")
    return md + [""]
