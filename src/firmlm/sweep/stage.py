"""`firmlm sweep`: one worker of a sweep. It builds (or reuses) the run's corpus, then asks the study for trials and
runs each as a child `firmlm run` until the study holds ``n_trials`` finished trials; any number of workers, on
any machines that share the database, can run at once.

A trial whose parameters equal an earlier live trial's (two workers, or a sampler proposing a configuration again)
is not run: it is pruned with ``duplicate_of`` and, in a finite space, a configuration nobody has taken yet is
queued instead. Stopped trials keep their reason (``prune_reason``: divergence, the median rule, a duplicate),
failed ones theirs (``fail_reason``: the child's exit and log tail). The curves and Table 7/9 figures of every
trial are kept in the study, so ``--report`` works from the database alone.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import socket
from pathlib import Path
from typing import Any

from firmlm.config import FirmlmConfig
from firmlm.sweep.space import check_space, configurations, space_size, suggest
from firmlm.sweep.study import open_study
from firmlm.sweep.trial import TrialStopped, objective_value, run_trial

log = logging.getLogger(__name__)
SWEEP_DIR = "sweep"


class TrialFailure(RuntimeError):
    """A trial's child process failed; the study records the trial as failed and the worker goes on."""


def _live_states():
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.PRUNED)


def counted(trial) -> bool:
    """A finished trial that counts toward n_trials: completed, or pruned for a reason other than duplication."""
    import optuna

    done = trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return done and "duplicate_of" not in trial.user_attrs


def duplicate_of(study, number: int, params: dict[str, Any]) -> int | None:
    """The earlier live (running, completed or pruned, not itself a duplicate) trial with these parameters."""
    for other in study.get_trials(deepcopy=False, states=_live_states()):
        if other.number < number and other.params == params and "duplicate_of" not in other.user_attrs:
            return other.number
    return None


def _taken(study) -> list[dict[str, Any]]:
    return [t.params for t in study.get_trials(deepcopy=False, states=_live_states())
            if "duplicate_of" not in t.user_attrs]


def finished(study, cfg: FirmlmConfig) -> bool:
    """n_trials counted trials, or (finite space) every configuration taken by a finished or running trial."""
    trials = study.get_trials(deepcopy=False)
    if sum(counted(t) for t in trials) >= cfg.sweep.n_trials:
        return True
    if space_size(cfg.sweep.space) is None:
        return False
    taken = _taken(study)
    return all(c in taken for c in configurations(cfg.sweep.space))


class Objective:
    """Runs one trial: suggest, refuse duplicates, train in a child process, prune, score."""

    def __init__(self, cfg: FirmlmConfig, sweep_dir: Path, live: dict[str, Any]):
        self.cfg, self.sweep_dir, self.live = cfg, sweep_dir, live
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def _queue_untaken(self, study) -> None:
        taken = _taken(study)
        waiting = [t.params for t in study.get_trials(deepcopy=False) if t.state.name == "WAITING"]
        for config in configurations(self.cfg.sweep.space):
            if config not in taken and config not in waiting:
                study.enqueue_trial(config)
                return

    def __call__(self, trial) -> float:
        import optuna

        params = suggest(trial, self.cfg.sweep.space)
        earlier = duplicate_of(trial.study, trial.number, params)
        if earlier is not None:
            trial.set_user_attr("duplicate_of", earlier)
            self._queue_untaken(trial.study)
            raise optuna.TrialPruned(f"duplicate of trial {earlier}")
        trial_dir = self.sweep_dir / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("run_dir", str(trial_dir))
        self.live.update({"trial": trial.number, "params": params, "step": 0, "loss": None})
        rule = self.cfg.sweep.pruning
        first: list[float] = []

        def on_step(step: int, loss: float) -> str | None:
            self.live.update({"step": step, "loss": loss})
            if not first and math.isfinite(loss):
                first.append(loss)
            if rule.enabled and (not math.isfinite(loss) or (first and loss > rule.divergence_ratio * first[0])):
                start = f"{first[0]:.4g}" if first else "nan"
                return f"diverged at step {step}: smoothed loss {loss:.4g}, first {start}"
            if math.isfinite(loss):
                trial.report(loss, step)
                if rule.enabled and rule.median and trial.should_prune():
                    return f"behind the median of earlier trials at step {step} (smoothed loss {loss:.4g})"
            return None

        try:
            run = run_trial(self.cfg, params, trial_dir, on_step)
        except TrialStopped as stopped:
            _keep_curve(trial, stopped.curve)
            trial.set_user_attr("prune_reason", stopped.reason)
            raise optuna.TrialPruned(stopped.reason) from None
        finally:
            self.live.update({"trial": None})
        _keep_curve(trial, run.curve)
        if run.returncode != 0:
            reason = f"child exited with {run.returncode}: {run.log_tail()[-600:]}"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailure(reason)
        try:
            return objective_value(self.cfg.sweep, run)
        except TrialStopped as stopped:
            trial.set_user_attr("fail_reason", stopped.reason)
            raise TrialFailure(stopped.reason) from None


def _keep_curve(trial, curve) -> None:
    """The Table 7/9 figures and the thinned curves, in the study (``--report`` reads nothing else)."""
    trial.set_user_attr("figures", curve.figures())
    trial.set_user_attr("curve", curve.thinned())


def _stop_when_finished(cfg: FirmlmConfig):
    def callback(study, trial) -> None:
        if trial.state.name == "PRUNED" and "prune_reason" in trial.user_attrs:
            log.info("trial %d pruned: %s", trial.number, trial.user_attrs["prune_reason"])
        elif trial.state.name == "COMPLETE":
            log.info("trial %d: %s = %.4g %s", trial.number, cfg.sweep.objective, trial.value, trial.params)
        elif trial.state.name == "FAIL":
            log.warning("trial %d failed: %s", trial.number, trial.user_attrs.get("fail_reason", "?"))
        if finished(study, cfg):
            study.stop()

    return callback


def run_sweep(cfg: FirmlmConfig) -> dict[str, Any]:
    """Check the space and the database, make sure the corpus exists, then run trials until the study is done;
    returns the analysis (also written to RUN/sweep/summary.json)."""
    from firmlm.stages import run_stages
    from firmlm.sweep.analysis import write_analysis
    from firmlm.sweep.live import LiveTable

    check_space(cfg)
    sweep_dir = Path(cfg.run_dir) / SWEEP_DIR
    study = open_study(cfg.sweep, sweep_dir)
    with open(sweep_dir / ".corpus.lock", "w") as lock:  # workers sharing this run dir build the corpus once
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_stages(cfg, [n for n in ("map", "corpus") if n == "corpus" or cfg.map.enabled])
    import optuna

    optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, and its parameters queued again
    live: dict[str, Any] = {"trial": None}
    if not finished(study, cfg):
        with LiveTable(study, cfg.sweep, live):
            study.optimize(Objective(cfg, sweep_dir, live), callbacks=[_stop_when_finished(cfg)],
                           catch=(TrialFailure,), gc_after_trial=False)
    return write_analysis(study, cfg.sweep, sweep_dir)


def run_analysis(cfg: FirmlmConfig) -> dict[str, Any]:
    """`firmlm sweep --report`: the analysis of the study as it stands (no trial runs)."""
    from firmlm.sweep.analysis import write_analysis

    sweep_dir = Path(cfg.run_dir) / SWEEP_DIR
    return write_analysis(open_study(cfg.sweep, sweep_dir), cfg.sweep, sweep_dir)

