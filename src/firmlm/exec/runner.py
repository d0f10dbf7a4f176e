"""One solution of one task: build → link → run → check, in a sandbox, with InCoder's failure classes.

Outcomes (``Outcome.stage``): ``passed``, or the first stage that failed: ``unparseable`` (no code in a model's
answer), ``syntax_error``, ``compile_error``, ``link_error`` (e.g. an undefined HAL/CMSIS symbol),
``missing_entry`` (no ``main``), ``timeout``, ``runtime_fault`` (a signal, or an exit status other than the
expected one), ``wrong_output``; ``unsupported`` when the task's target cannot run here (named in ``detail``).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from firmlm.exec.sandbox import Limits, SandboxResult, prepare_workdir, run_sandboxed
from firmlm.exec.targets import Target, target_for
from firmlm.exec.tasks import ExecTask

FAILURES = ("unparseable", "syntax_error", "compile_error", "link_error", "missing_entry", "timeout",
            "runtime_fault", "wrong_output")
LOG_CHARS = 2000

_SYNTAX = re.compile(r"error: (expected|stray|unterminated|missing terminating|invalid preprocessing|"
                     r"unknown type name|#endif without|unbalanced|empty character constant)|: syntax error", re.I)
_UNDEFINED_MAIN = re.compile(r"undefined reference to [`']main'|in function [`']_start'", re.I)
_LINK = re.compile(r"undefined reference to|multiple definition of|ld returned|cannot find -l|"
                   r"unknown module type", re.I)  # the last: Icarus Verilog, a module nobody defines


@dataclass
class Outcome:
    """What happened to one solution."""

    task: str
    stage: str  # passed, a FAILURES class, or unsupported
    detail: str = ""
    log: str = ""
    build_s: float = 0.0
    run_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.stage == "passed"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify_build(result: SandboxResult) -> tuple[str, str]:
    """(failure class, its first message) of a failed compile-and-link."""
    text = result.stderr
    if result.timed_out:
        return "compile_error", "the build ran past its time limit"
    first = next((ln for ln in text.splitlines() if "error" in ln.lower()), text.strip()[:200])
    if _SYNTAX.search(text):
        return "syntax_error", first
    if re.search(r"error:|: error", text, re.I) and not _LINK.search(text):
        return "compile_error", first
    if _UNDEFINED_MAIN.search(text):
        return "missing_entry", first
    if _LINK.search(text):
        culprit = next((ln for ln in text.splitlines() if _LINK.search(ln) and "ld returned" not in ln), first)
        return "link_error", culprit.strip()
    return "compile_error", first or f"the build exited with {result.returncode}"


def check_run(task: ExecTask, result: SandboxResult, target: Target | None = None) -> tuple[str, str]:
    """(``passed`` or the failure class, why) of a finished run."""
    if result.timed_out:
        return "timeout", f"no exit within {task.time_limit_s:g} s"
    status = result.returncode if result.returncode >= 0 else 128 - result.returncode  # bwrap: 134 reads as -6
    meaning = target.exit_meaning(status) if target is not None and status != task.expected_exit else None
    if meaning:
        return "runtime_fault", f"{meaning} (exit status {status})"
    if result.returncode < 0:
        return "runtime_fault", f"killed by signal {-result.returncode}"
    if result.returncode != task.expected_exit:
        return "runtime_fault", f"exit status {result.returncode}, expected {task.expected_exit}"
    if task.expected_output is not None and result.stdout != task.expected_output:
        return "wrong_output", f"printed {result.stdout[:200]!r}, expected {task.expected_output[:200]!r}"
    return "passed", ""


def _tail(text: str) -> str:
    return text if len(text) <= LOG_CHARS else "…" + text[-LOG_CHARS:]


def evaluate_solution(task: ExecTask, source: str | None, work_parent: Path | None = None,
                      build_limits: Limits | None = None) -> Outcome:
    """Build ``source`` (a whole solution file; None when no code could be extracted) with the task's harness and
    run it on the task's target, each in the sandbox; the work folder is removed afterwards."""
    if source is None or not source.strip():
        return Outcome(task.id, "unparseable", "no code in the answer")
    target: Target | None = target_for(task.target)
    problem = target.unavailable() if target is not None else f"target {task.target} is not implemented yet"
    if target is None or problem:
        return Outcome(task.id, "unsupported", problem or "")
    workdir = prepare_workdir(work_parent)
    try:
        target.write_sources(workdir, task, source)
        build = run_sandboxed(target.build_command(task), workdir, build_limits or Limits(wall_s=60, cpu_s=60))
        if build.returncode != 0 or build.timed_out:
            stage, detail = classify_build(build)
            return Outcome(task.id, stage, detail, _tail(build.stderr), build.wall_s)
        limits = Limits(wall_s=task.time_limit_s, cpu_s=max(1, int(task.time_limit_s) + 1))
        run = run_sandboxed(target.run_command(task), workdir, limits)
        stage, detail = check_run(task, run, target)
        missing = target.check_after_run(task, workdir) if stage == "passed" else None
        if missing:
            stage, detail = "wrong_output", missing
        return Outcome(task.id, stage, detail, _tail(run.stdout + run.stderr), build.wall_s, run.wall_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
