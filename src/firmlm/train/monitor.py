"""Stability monitor: raw per-step metrics, NaN/Inf and spike anomalies, throughput and the time budget.

One JSON line per optimizer step goes to ``metrics.jsonl`` (raw values: requires ``logging_steps=1``).
Anomalies go to ``anomalies.jsonl`` with a decoded preview of the step's batch:
- ``nonfinite_loss`` / ``nonfinite_grad``: NaN or Inf (the optimizer step is skipped by GuardedAdamW);
  after ``nan_patience`` such steps in a row the monitor asks for an emergency checkpoint and a stop;
- ``loss_spike``: loss above ``loss_spike_ratio`` x the mean of the last ``window`` finite losses;
- ``grad_norm_spike``: grad norm above ``grad_spike_ratio`` x the mean of the last ``window`` norms.
Throughput (tokens/s, per device, MFU) counts only the steps this process trained, so a resume does not
look like a slowdown. ``state_dict`` (windows, counters, training seconds, skipped steps) goes into every
checkpoint, so the time budget and the counters continue across a resume. On the main process a progress
bar (stderr, interactive terminals only) follows the steps: step/total, loss, tokens/s and the ETA.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from firmlm.distributed import any_rank, is_main_process, mean_over_ranks, world_size
from firmlm.progress import StepBar

log = logging.getLogger(__name__)
LOG_EVERY = 10
MIN_HISTORY = 5
PREVIEW_CHARS = 240


class StepRecord:
    """What the trainer saw during the optimizer step in progress: the raw loss and the last batch."""

    def __init__(self) -> None:
        self.loss: torch.Tensor | None = None
        self.inputs: dict[str, torch.Tensor] | None = None
        self.predictions: torch.Tensor | None = None  # [correct, entropy sum, positions] of the sampled positions

    def add(self, loss: torch.Tensor, inputs: dict[str, torch.Tensor]) -> None:
        """One micro-step (losses are scaled so that they sum to the optimizer step's mean loss); kept on the
        device so that recording costs no host sync."""
        loss = loss.detach().float()
        self.loss = loss if self.loss is None else self.loss + loss
        self.inputs = inputs

    def add_predictions(self, stats: torch.Tensor) -> None:
        """A micro-step's :func:`~firmlm.train.predictions.prediction_stats` (kept on the device)."""
        stats = stats.detach().float()
        self.predictions = stats if self.predictions is None else self.predictions + stats.to(self.predictions)

    def pop_predictions(self) -> tuple[float | None, float | None]:
        """(token accuracy, mean predictive entropy in nats) of the step's sampled positions, averaged over ranks."""
        value, self.predictions = self.predictions, None
        if value is None or float(value[2]) == 0:
            return None, None
        correct, entropy, positions = (float(v) for v in value)
        return mean_over_ranks(correct / positions), mean_over_ranks(entropy / positions)

    def pop_loss(self) -> float | None:
        """The step's loss averaged over ranks (the Trainer's own figure is an accumulator that one NaN poisons)."""
        value, self.loss = self.loss, None
        return None if value is None else mean_over_ranks(float(value))

    def preview(self, tokenizer) -> str:
        if self.inputs is None or tokenizer is None:
            return ""
        ids = self.inputs["input_ids"][0][:PREVIEW_CHARS].tolist()
        return tokenizer.decode(ids)[:PREVIEW_CHARS]


@dataclass
class StopRequest:
    """Why training is being stopped with an emergency checkpoint (None: no emergency)."""

    reason: str | None = None


class TrainingMonitor(TrainerCallback):
    """Writes metrics and anomalies; requests emergency stops; enforces the time budget."""

    def __init__(
        self,
        train_dir: Path,
        tokens_per_step: int,
        record: StepRecord,
        stop: StopRequest,
        max_seconds: float | None = None,
        window: int = 20,
        loss_spike_ratio: float = 1.5,
        grad_spike_ratio: float = 2.0,
        nan_patience: int = 3,
        flops_per_token: float | None = None,
        peak_flops: float | None = None,
        bar: StepBar | None = None,
    ):
        self.metrics_path = train_dir / "metrics.jsonl"
        self.anomalies_path = train_dir / "anomalies.jsonl"
        self.tokens_per_step = tokens_per_step
        self.record = record
        self.stop = stop
        self.max_seconds = max_seconds
        self.loss_spike_ratio = loss_spike_ratio
        self.grad_spike_ratio = grad_spike_ratio
        self.nan_patience = nan_patience
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.losses: deque[float] = deque(maxlen=window)
        self.grad_norms: deque[float] = deque(maxlen=window)
        self.consecutive_nonfinite = 0
        self.counts: dict[str, int] = {}
        self.seconds_before = 0.0  # training seconds of earlier processes (restored on resume)
        self.skipped_before = 0  # optimizer steps skipped by earlier processes
        self.skipped_here = 0
        self.started: float | None = None
        self.first_step = 0
        self.lrs: dict[str, float] = {}
        self.stop_reason: str | None = None
        self.last: dict[str, Any] = {}
        self.bar = bar if bar is not None else StepBar()

    # --- state that survives resume ---
    def state_dict(self) -> dict[str, Any]:
        return {
            "losses": list(self.losses),
            "grad_norms": list(self.grad_norms),
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "counts": dict(self.counts),
            "train_seconds": self.train_seconds,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses.extend(state.get("losses", []))
        self.grad_norms.extend(state.get("grad_norms", []))
        self.consecutive_nonfinite = int(state.get("consecutive_nonfinite", 0))
        self.counts = dict(state.get("counts", {}))
        self.seconds_before = float(state.get("train_seconds", 0.0))
        self.skipped_before = int(state.get("skipped_steps", 0))

    @property
    def seconds_here(self) -> float:
        return time.perf_counter() - self.started if self.started is not None else 0.0

    @property
    def train_seconds(self) -> float:
        """Training seconds over the whole run, earlier (resumed-from) processes included."""
        return self.seconds_before + self.seconds_here

    @property
    def skipped_steps(self) -> int:
        return self.skipped_before + self.skipped_here

    # --- callback hooks ---
    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            self.bar.start(state.max_steps, done=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:
            self.lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}

    def on_step_end(self, args, state, control, **kwargs):
        if self.max_seconds is not None and self.started is not None and not control.should_training_stop:
            if any_rank(self.train_seconds >= self.max_seconds):
                self.stop_reason = "time_budget"
                control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, optimizer=None, processing_class=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or self.started is None:
            return
        step = state.global_step
        raw = self.record.pop_loss()
        accuracy, entropy = self.record.pop_predictions()
        loss = raw if raw is not None else _num(logs.get("loss"))
        grad_norm = _num(logs.get("grad_norm"))
        self.skipped_here = _skipped(optimizer)
        elapsed = self.seconds_here
        done = step - self.first_step
        tokens_per_s = done * self.tokens_per_step / elapsed if elapsed > 0 else None
        per_device = tokens_per_s / world_size() if tokens_per_s is not None else None
        mfu = (per_device * self.flops_per_token / self.peak_flops
               if per_device is not None and self.flops_per_token and self.peak_flops else None)
        record = {
            "step": step,
            "loss": loss,
            "grad_norm": grad_norm,
            "token_accuracy": _round(accuracy, 4),
            "entropy": _round(entropy, 4),
            "lr": self.lrs.get("main"),
            "lr_embed": self.lrs.get("embed"),
            "tokens": step * self.tokens_per_step,
            "tokens_per_s": _round(tokens_per_s, 2),
            "tokens_per_s_per_device": _round(per_device, 2),
            "mfu": _round(mfu, 4),
            "elapsed_s": round(elapsed, 3),
            "train_seconds": round(self.train_seconds, 3),
            "skipped_steps": self.skipped_steps,
        }
        self.last = record
        if is_main_process():
            _append(self.metrics_path, record)
            self.bar.update(step, loss, record["tokens_per_s"])
        self._check(step, loss, grad_norm, control, processing_class)
        if is_main_process() and (step % LOG_EVERY == 0 or step == 1):
            log.info("step %d/%d loss %.4f grad_norm %.3f lr %.2e %.0f tokens/s", step, state.max_steps,
                     loss, grad_norm if grad_norm is not None else float("nan"), record["lr"] or 0.0,
                     record["tokens_per_s"] or 0.0)

    def _check(self, step: int, loss: float, grad_norm: float | None, control, tokenizer) -> None:
        finite_loss = math.isfinite(loss)
        finite_grad = grad_norm is None or math.isfinite(grad_norm)
        if not (finite_loss and finite_grad):
            self.consecutive_nonfinite += 1
            self._anomaly(step, "nonfinite_loss" if not finite_loss else "nonfinite_grad", tokenizer, loss=loss,
                          grad_norm=grad_norm, consecutive=self.consecutive_nonfinite)
            if self.consecutive_nonfinite >= self.nan_patience and self.stop.reason is None:
                self.stop.reason = self.stop_reason = f"{self.consecutive_nonfinite} consecutive non-finite steps"
                control.should_save = True
                control.should_training_stop = True
            return
        self.consecutive_nonfinite = 0
        if len(self.losses) >= MIN_HISTORY:
            mean = sum(self.losses) / len(self.losses)
            if loss > self.loss_spike_ratio * mean:
                self._anomaly(step, "loss_spike", tokenizer, loss=loss, window_mean=round(mean, 4))
        if grad_norm is not None and len(self.grad_norms) >= MIN_HISTORY:
            mean = sum(self.grad_norms) / len(self.grad_norms)
            if grad_norm > self.grad_spike_ratio * mean:
                self._anomaly(step, "grad_norm_spike", tokenizer, grad_norm=grad_norm, window_mean=round(mean, 4))
        self.losses.append(loss)
        if grad_norm is not None:
            self.grad_norms.append(grad_norm)

    def _anomaly(self, step: int, kind: str, tokenizer, **figures: Any) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if not is_main_process():
            return
        record = {"step": step, "kind": kind, **figures, "batch_preview": self.record.preview(tokenizer)}
        _append(self.anomalies_path, record)
        log.warning("step %d: %s %s", step, kind, {k: v for k, v in figures.items()})


def _skipped(optimizer) -> int:
    """Steps skipped by the GuardedAdamW inside whatever wraps it (accelerate, DeepSpeed)."""
    while optimizer is not None and not hasattr(optimizer, "skipped_steps"):
        optimizer = getattr(optimizer, "optimizer", None)
    return int(getattr(optimizer, "skipped_steps", 0) or 0)


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop lines after ``last_step`` (a resumed run rewrites them); written atomically."""
    from firmlm.runs import atomic_write_text

    if not path.is_file():
        return
    keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and json.loads(ln)["step"] <= last_step]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))
