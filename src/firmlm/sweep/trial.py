"""One sweep trial: a run directory with its own config, a `firmlm run` child process, and the training curve
watched while it runs (reported to Optuna, pruned on divergence or when behind the median).

The trial's run directory links the parent run's ``corpus`` when the trial's corpus configuration is the
parent's (the usual case: only train keys are searched), so nothing is re-read or re-tokenised (token caches are
shared through firmlm's cache folder); a trial that searches corpus keys builds its own corpus. The child gets
SIGKILL when its worker dies (Linux ``PR_SET_PDEATHSIG``), so a killed worker leaves no orphan training.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from firmlm.config import FirmlmConfig, SweepConfig
from firmlm.stages import fingerprints
from firmlm.sweep.space import apply_params

SMOOTHING = 0.3  # EMA weight of a new step's loss: the curve pruning and the objective read
CURVE_POINTS = 200  # points of each curve kept in the study (user attributes)
LOG_TAIL = 1500


def trial_config(parent: FirmlmConfig, params: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
    """The trial's config: the parent's with the trial's values, its own run_dir, the sweep's budget, and only the
    stages the objective needs (eval scores the trained adapter alone, perplexity only)."""
    data = apply_params(parent.model_dump(mode="json"), params)
    sweep = parent.sweep
    data["run_dir"] = str(trial_dir)
    data["train"]["enabled"] = True
    if sweep.steps is not None:
        data["train"]["max_steps"] = sweep.steps
    if sweep.minutes is not None:
        data["train"]["max_minutes"] = sweep.minutes
    data["train"]["save_steps"] = 0
    for section in ("map", "exec", "report"):
        data[section]["enabled"] = False
    evaluate = sweep.objective.endswith("_perplexity")
    data["eval"]["enabled"] = evaluate
    if evaluate:
        data["eval"]["models"] = [{"name": "final", "adapter": "final", "tasks": ["perplexity"]}]
        data["eval"]["splits"] = [sweep.objective.split("_")[0]]
        data["eval"]["generation"]["enabled"] = False
    return data


def link_parent_corpus(parent: FirmlmConfig, trial: FirmlmConfig) -> bool:
    """Link the parent's finished corpus into the trial's run directory when the trial would build the same one."""
    if fingerprints(parent)["corpus"] != fingerprints(trial)["corpus"]:
        return False
    target = Path(trial.run_dir) / "corpus"
    if not target.exists():
        target.symlink_to(Path(parent.run_dir).resolve() / "corpus", target_is_directory=True)
    return True


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the worker that started it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Curve:
    """The training curve read so far: raw and smoothed loss, gradient norm."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    token_accuracy: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> float:
        loss = row.get("loss")
        loss = float("nan") if loss is None else float(loss)
        previous = self.smoothed[-1] if self.smoothed else None
        if previous is None or not math.isfinite(previous):
            value = loss
        else:
            value = previous + SMOOTHING * (loss - previous) if math.isfinite(loss) else loss
        self.steps.append(int(row["step"]))
        self.loss.append(loss)
        self.smoothed.append(value)
        self.grad_norm.append(float(row.get("grad_norm") or float("nan")))
        for series, key in ((self.token_accuracy, "token_accuracy"), (self.entropy, "entropy")):
            if row.get(key) is not None:
                series.append(float(row[key]))
        return value

    def figures(self) -> dict[str, Any]:
        """The paper's Table 7/9 columns (initial, final and minimum loss, reduction, peak and mean grad norm) and its
        Table 12 columns (token accuracy and predictive entropy, means over the last tenth of the steps)."""
        finite = [v for v in self.smoothed if math.isfinite(v)]
        norms = [g for g in self.grad_norm if math.isfinite(g)]
        initial = self.loss[0] if self.loss else None
        final = self.smoothed[-1] if self.smoothed else None
        out = {"steps": self.steps[-1] if self.steps else 0, "initial_loss": initial, "final_loss": final,
               "min_loss": min(finite) if finite else None,
               "peak_grad_norm": max(norms) if norms else None,
               "mean_grad_norm": sum(norms) / len(norms) if norms else None}
        if initial and final is not None and math.isfinite(final) and math.isfinite(initial):
            out["loss_reduction_pct"] = 100 * (initial - final) / initial
        for key, series in (("token_accuracy", self.token_accuracy), ("entropy", self.entropy)):
            tail = [v for v in series[-max(1, len(series) // 10):] if math.isfinite(v)]  # the last tenth of steps
            out[key] = sum(tail) / len(tail) if tail else None
        return out

    def thinned(self) -> dict[str, list]:
        """At most CURVE_POINTS points of each series, for the study's user attributes."""
        every = max(1, math.ceil(len(self.steps) / CURVE_POINTS))
        pick = list(range(0, len(self.steps), every))
        if self.steps and pick[-1] != len(self.steps) - 1:
            pick.append(len(self.steps) - 1)

        def finite(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {"step": [self.steps[i] for i in pick], "loss": [finite(self.smoothed[i]) for i in pick],
                "grad_norm": [finite(self.grad_norm[i]) for i in pick]}


class MetricsTail:
    """New lines of a growing metrics.jsonl (a partial last line waits for its newline)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        rows = []
        for line in data[:end].splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


class TrialStopped(Exception):
    """The watcher stopped the trial; ``reason`` says why (divergence or the median rule), ``curve`` is what it
    trained until then."""

    def __init__(self, reason: str, curve: Curve | None = None):
        super().__init__(reason)
        self.reason, self.curve = reason, curve or Curve()


@dataclass
class TrialRun:
    """A trial's child process and what it has trained so far."""

    trial_dir: Path
    config_path: Path
    curve: Curve = field(default_factory=Curve)
    returncode: int | None = None

    def log_tail(self) -> str:
        path = self.trial_dir / "trial.log"
        text = path.read_text(errors="replace") if path.is_file() else ""
        return text[-LOG_TAIL:]


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def run_trial(parent: FirmlmConfig, params: dict[str, Any], trial_dir: Path,
              on_step: Callable[[int, float], str | None], poll_s: float = 1.0) -> TrialRun:
    """Write the trial's config, run it in a child process, and call ``on_step(step, smoothed loss)`` for every
    step; a reason returned by ``on_step`` stops the trial (:class:`TrialStopped`)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    data = trial_config(parent, params, trial_dir)
    config_path = trial_dir / "trial.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    link_parent_corpus(parent, FirmlmConfig.model_validate(data))
    run = TrialRun(trial_dir, config_path)
    tail = MetricsTail(trial_dir / "train" / "metrics.jsonl")
    env = {**os.environ, "TTY_INTERACTIVE": "0"}
    with (trial_dir / "trial.log").open("ab") as log:
        launcher = parent.sweep.launcher or [sys.executable, "-m"]
        process = subprocess.Popen([*launcher, "firmlm", "run", "-c", str(config_path)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                   preexec_fn=_die_with_parent)
        try:
            while True:
                finished = process.poll() is not None
                for row in tail.read():
                    reason = on_step(int(row["step"]), run.curve.add(row))
                    if reason:
                        _stop(process)
                        raise TrialStopped(reason, run.curve)
                if finished:
                    break
                time.sleep(poll_s)
        except BaseException:
            if process.poll() is None:
                _stop(process)
            raise
    run.returncode = process.returncode
    return run


def objective_value(sweep: SweepConfig, run: TrialRun) -> float:
    """The trial's objective from its curve, or from its eval results (perplexity of the trained adapter)."""
    figures = run.curve.figures()
    if sweep.objective in ("final_loss", "min_loss"):
        value = figures[sweep.objective]
    else:
        split = sweep.objective.split("_")[0]
        results = json.loads((run.trial_dir / "eval" / "results.json").read_text())
        value = results["models"]["final"]["perplexity"][split]["overall"]["ppl"]
    if value is None or not math.isfinite(value):
        raise TrialStopped(f"{sweep.objective} is not finite ({value})", run.curve)
    return float(value)
