"""The transformers Trainer with what firmlm adds, through its public seams: the dual-LR guarded optimizer
and its schedule from ``create_optimizer`` / ``create_scheduler`` (so FSDP and DeepSpeed build it too), the
raw step loss and last batch recorded in ``training_step``, a document-masking check on the first
batches, and (``train.compile``, one process) the fused LM-head loss in ``compute_loss``. Checkpoint
publishing, the monitor and signal stops are callbacks."""

from __future__ import annotations

import logging

import torch
from transformers import Trainer, TrainerCallback

from firmlm.config import TrainConfig
from firmlm.distributed import any_rank
from firmlm.train.head_loss import FusedHeadLoss
from firmlm.train.masking import capture_attention_inputs, verify_document_masking
from firmlm.train.monitor import StepRecord, StopRequest
from firmlm.train.predictions import prediction_stats, shifted
from firmlm.train.optim import build_optimizer, build_scheduler
from firmlm.train.signals import StopFlag

log = logging.getLogger(__name__)
MASK_CHECK_BATCHES = 16  # batches looked at for a document boundary before the check gives up


class FirmlmTrainer(Trainer):
    """Trainer that builds firmlm's optimizer and schedule and records each step for the monitor."""

    def __init__(self, *args, train_config: TrainConfig, record: StepRecord, head_loss: FusedHeadLoss | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.train_config = train_config
        self.record = record
        self.head_loss = head_loss
        self.mask_checks_left = MASK_CHECK_BATCHES

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = build_optimizer(self.model if model is None else model, self.train_config)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            self.lr_scheduler = build_scheduler(optimizer or self.optimizer, self.train_config)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's own loss, or the fused head loss: the same figure (sum over predicted tokens divided by
        ``num_items_in_batch``, else the mean), under the Trainer's autocast. Training steps also record the
        sampled token accuracy and predictive entropy (:mod:`firmlm.train.predictions`)."""
        if "labels" not in inputs or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.head_loss is None:
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            self.record.add_predictions(prediction_stats(*shifted(outputs.logits, inputs["labels"])))
            return (loss, outputs) if return_outputs else loss
        if return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with self.accelerator.autocast():
            loss, stats = self.head_loss(inputs, num_items_in_batch if self.model_accepts_loss_kwargs else None,
                                         with_predictions=True)
        self.record.add_predictions(stats)
        return loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.mask_checks_left > 0:
            with capture_attention_inputs(model) as seen:
                loss = super().training_step(model, inputs, num_items_in_batch)
            attn = getattr(self.model.config, "_attn_implementation", None)
            self.mask_checks_left = 0 if verify_document_masking(seen, inputs, attn) else self.mask_checks_left - 1
        else:
            loss = super().training_step(model, inputs, num_items_in_batch)
        self.record.add(loss, inputs)
        return loss


class SignalStop(TrainerCallback):
    """At a step boundary after a signal on any rank: request a save (routed to emergency/) and a stop."""

    def __init__(self, flag: StopFlag, stop: StopRequest):
        self.flag = flag
        self.stop = stop

    def _check(self, control) -> None:
        if any_rank(bool(self.flag)) and self.stop.reason is None:
            self.stop.reason = f"signal {self.flag.signal or 'on another rank'}"
            control.should_save = True
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        self._check(control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._check(control)  # runs before the Trainer acts on should_save for this step
