"""Per-step metrics (raw values, one JSON line per optimizer step) and the wall-time budget."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)
LOG_EVERY = 10


class StepMetrics(TrainerCallback):
    """Writes ``metrics.jsonl``: step, loss, grad_norm, lr, lr_embed, tokens, tokens_per_s.

    Requires ``logging_steps=1`` so the logged loss is the step's own loss, not an average.
    Stops training at the next step boundary once ``max_seconds`` of training have passed.
    """

    def __init__(self, path: Path, tokens_per_step: int, max_seconds: float | None = None):
        self.path = path
        self.tokens_per_step = tokens_per_step
        self.max_seconds = max_seconds
        self.started: float | None = None
        self.first_step: int = 0
        self.lrs: dict[str, float] = {}
        self.stopped_for_time = False
        self.last: dict[str, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:
            self.lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}

    def on_step_end(self, args, state, control, **kwargs):
        if self.max_seconds is not None and self.started is not None:
            if time.perf_counter() - self.started >= self.max_seconds:
                self.stopped_for_time = True
                control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or self.started is None:
            return
        elapsed = time.perf_counter() - self.started
        done = state.global_step - self.first_step
        record = {
            "step": state.global_step,
            "loss": _num(logs.get("loss")),
            "grad_norm": _num(logs.get("grad_norm")),
            "lr": self.lrs.get("main"),
            "lr_embed": self.lrs.get("embed"),
            "tokens": state.global_step * self.tokens_per_step,
            "tokens_per_s": round(done * self.tokens_per_step / elapsed, 2) if elapsed > 0 else None,
            "elapsed_s": round(elapsed, 3),
        }
        self.last = record
        if state.global_step % LOG_EVERY == 0 or state.global_step == 1:
            log.info("step %d/%d loss %.4f grad_norm %.3f lr %.2e %.0f tokens/s", state.global_step, state.max_steps,
                     record["loss"], record["grad_norm"] or 0.0, record["lr"] or 0.0, record["tokens_per_s"] or 0.0)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else float("nan")
