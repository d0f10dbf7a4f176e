"""``firmlm exec --check-references``: every task's reference must pass and every wrong solution must fail.

No model is involved; this is how a task suite (firmlm's own or a user's) is validated before models are scored
on it. Tasks run in parallel (threads, each driving sandboxed subprocesses); unreadable task files are reported
with their reason while the other tasks still run.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from firmlm.exec.runner import Outcome, evaluate_solution
from firmlm.exec.tasks import ExecTask, load_tasks


@dataclass
class ReferenceCheck:
    """A task's reference outcome and its wrong solutions' outcomes."""

    task: ExecTask
    reference: Outcome
    wrong: list[Outcome] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return self.reference.stage != "unsupported"

    @property
    def ok(self) -> bool:
        """Reference passed and every wrong solution failed (an unsupported target is not ok)."""
        return self.reference.passed and all(not w.passed for w in self.wrong)


def check_task(task: ExecTask) -> ReferenceCheck:
    reference = evaluate_solution(task, task.reference)
    if reference.stage == "unsupported":
        return ReferenceCheck(task, reference)
    return ReferenceCheck(task, reference, [evaluate_solution(task, source) for source in task.wrong])


def check_references(folder: Path, workers: int | None = None) -> tuple[list[ReferenceCheck], list[dict[str, str]]]:
    """Checks of every task under ``folder`` (in file order), and the task files that could not be read."""
    tasks, errors = load_tasks(folder)
    with ThreadPoolExecutor(max(1, workers or os.cpu_count() or 1)) as pool:
        return list(pool.map(check_task, tasks)), errors


def render_checks(checks: list[ReferenceCheck], errors: list[dict[str, str]]) -> str:
    """One line per task (reference stage, each wrong solution's failure class), then unreadable files."""
    lines = []
    for c in checks:
        if not c.supported:
            lines.append(f"SKIP {c.task.id} ({c.task.target}): {c.reference.detail}")
            continue
        wrong = ", ".join(w.stage for w in c.wrong)
        why = "" if c.reference.passed else f" — reference {c.reference.stage}: {c.reference.detail}"
        caught = [w for w in c.wrong if w.passed]
        why += f" — {len(caught)} wrong solution(s) passed" if caught else ""
        lines.append(f"{'ok  ' if c.ok else 'FAIL'} {c.task.id} (level {c.task.level}, {c.task.target}): reference "
                     f"{c.reference.stage}; wrong: {wrong}{why}")
    lines += [f"ERROR {e['reason']}" for e in errors]
    supported = [c for c in checks if c.supported]
    lines.append(f"{sum(c.ok for c in supported)} of {len(supported)} tasks ok, {len(checks) - len(supported)} "
                 f"skipped (target not available), {len(errors)} unreadable task files")
    return "\n".join(lines)
