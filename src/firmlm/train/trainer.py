"""The transformers Trainer with what firmlm adds: guarded optimizer steps, atomic and emergency
checkpoints with monitor state, signal-driven stops, and the last batch kept for anomaly previews."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from firmlm.distributed import any_rank, barrier, is_main_process, mean_over_ranks
from firmlm.train.checkpoints import publish, rotate
from firmlm.train.monitor import TrainingMonitor
from firmlm.train.signals import StopFlag
from firmlm.train.upload import free_disk_gb

log = logging.getLogger(__name__)
MONITOR_STATE = "firmlm-monitor.json"
PREVIEW_CHARS = 240


class GuardedAdamW(torch.optim.AdamW):
    """AdamW that skips the update (and clears the gradients) when any gradient is NaN/Inf."""

    skipped_steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    self.skipped_steps += 1
                    self.zero_grad(set_to_none=True)
                    return None
        return super().step(closure)


class SignalStop(TrainerCallback):
    """At a step boundary after a signal: request a save (routed to emergency/) and a stop."""

    def __init__(self, flag: StopFlag):
        self.flag = flag
        self.trainer: FirmlmTrainer | None = None  # set once the trainer exists

    def _check(self, control) -> None:
        if any_rank(bool(self.flag)) and self.trainer.emergency_reason is None:
            self.trainer.emergency_reason = f"signal {self.flag.signal or 'on another rank'}"
            control.should_save = True
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        self._check(control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._check(control)  # runs before the Trainer acts on should_save for this step


class FirmlmTrainer(Trainer):
    """Trainer whose checkpoints are published atomically to ``checkpoints/`` or ``emergency/``."""

    def __init__(self, *args, train_dir: Path, monitor: TrainingMonitor, keep_checkpoints: int,
                 checkpoint_meta: dict[str, Any], tokenizer_for_preview=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_dir = train_dir
        self.monitor = monitor
        self.keep_checkpoints = keep_checkpoints
        self.checkpoint_meta = checkpoint_meta
        self.preview_tokenizer = tokenizer_for_preview
        self.emergency_reason: str | None = None
        self.last_inputs: dict[str, torch.Tensor] | None = None
        self._step_loss: float | None = None
        self.saved: list[Path] = []
        self.uploader = None  # a CheckpointUploader when train.upload_to is set
        monitor.preview = self.batch_preview
        monitor.raw_loss = self.pop_step_loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.last_inputs = inputs
        loss = super().training_step(model, inputs, num_items_in_batch)
        # micro-step losses are scaled so that they sum to the optimizer step's mean loss
        self._step_loss = (self._step_loss or 0.0) + float(loss)
        return loss

    def pop_step_loss(self) -> float | None:
        """The raw loss of the optimizer step just finished (the Trainer's own figure is a running
        accumulator that one NaN poisons for the rest of the run)."""
        value, self._step_loss = self._step_loss, None
        return None if value is None else mean_over_ranks(value)

    def batch_preview(self) -> str:
        if self.last_inputs is None or self.preview_tokenizer is None:
            return ""
        ids = self.last_inputs["input_ids"][0][: PREVIEW_CHARS].tolist()
        return self.preview_tokenizer.decode(ids)[:PREVIEW_CHARS]

    def _save_checkpoint(self, model, trial):
        """Every rank writes its part into a staging folder; the main process publishes it atomically."""
        if self.monitor.emergency_requested and self.emergency_reason is None:
            self.emergency_reason = self.monitor.stop_reason
        staging_root = self.train_dir / ".staging"
        if is_main_process():
            shutil.rmtree(staging_root, ignore_errors=True)
        barrier()
        original = self.args.output_dir
        self.args.output_dir = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = original
        barrier()
        emergency = self.emergency_reason is not None
        dest_root = self.train_dir / ("emergency" if emergency else "checkpoints")
        step = self.state.global_step
        folder = dest_root / f"step-{step}"
        if is_main_process():
            staged = staging_root / f"checkpoint-{step}"
            (staged / MONITOR_STATE).write_text(json.dumps(self.monitor.state_dict()))
            meta = {**self.checkpoint_meta, "emergency": emergency, "reason": self.emergency_reason,
                    "world_size": self.args.world_size}
            folder = publish(staged, dest_root, step, meta)
            shutil.rmtree(staging_root, ignore_errors=True)
            if not emergency:
                rotate(dest_root, self.keep_checkpoints)
            log.info("%s checkpoint: %s (%.1f GiB free)", "emergency" if emergency else "saved", folder,
                     free_disk_gb(folder))
            if self.uploader is not None:
                self.uploader.submit(folder)
        self.saved.append(folder)
        barrier()


def load_monitor_state(checkpoint: Path, monitor: TrainingMonitor) -> None:
    path = checkpoint / MONITOR_STATE
    if path.is_file():
        monitor.load_state_dict(json.loads(path.read_text()))
