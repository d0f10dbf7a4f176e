"""Fit a run to the machine and to its time budget.

- Precision: bf16 on a GPU that has it and bf16 autocast on a CPU with native bf16 (AVX512-BF16/AMX), else fp32
  (emulated bf16 measured 50-80x slower); see ``use_bf16``.
- ``micro_batch_size: auto``: 2048 tokens per micro-batch with bf16, 1024 in fp32. Measured on CPU (SmolLM2-135M,
  block 512): 4 blocks ran 1.3x the tokens/s of 2 under bf16 autocast; in fp32 they ran the same, so fp32 keeps
  the smaller batch (twice the optimizer steps for the same tokens, half the activation memory).
- ``max_steps: auto``: before training, a throwaway Trainer runs ``WARMUP_STEPS`` + ``TIMED_STEPS`` optimizer
  steps on the first blocks of the train split with everything the run uses (compiled layers, masking check,
  optimizer, autocast). The adapter weights and RNG states are then restored, so nothing of it reaches the
  model: a run fitted to N steps trains exactly as a run configured with ``max_steps: N``. The steps fill
  ``FILL`` of the budget left after the measurement (which counts against ``max_minutes``), so the cosine
  schedule ends at its floor when the budget ends.

Whatever ``auto`` resolved to is recorded in ``RUN/train/budget.json`` before the first step and read back on
resume, so a resumed run keeps the same schedule and batch even on another machine or with another budget.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from firmlm.config import TrainConfig
from firmlm.errors import StageError
from firmlm.runs import atomic_write_json, read_json
from firmlm.train.packing import PackedBlocks, pack, tokenize_documents

log = logging.getLogger(__name__)
BUDGET_FILE = "budget.json"
WARMUP_STEPS = 1  # excluded from the timing: compilation, first allocations
TIMED_STEPS = 2
FILL = 0.95  # share of the remaining budget planned for training steps (step times vary; saves take time)
TOKENS_PER_MICRO_BATCH = {True: 2048, False: 1024}  # by bf16


def auto_micro_batch(block_size: int, bf16: bool) -> int:
    return max(1, TOKENS_PER_MICRO_BATCH[bf16] // block_size)


def fit_steps(seconds_per_step: float, budget_seconds: float, spent_seconds: float = 0.0, fill: float = FILL) -> int:
    """Optimizer steps that fill ``fill`` of the budget left after ``spent_seconds`` (at least 1)."""
    left = max(0.0, budget_seconds - spent_seconds)
    return max(1, math.floor(fill * left / max(seconds_per_step, 1e-9)))


def read_record(train_dir: Path) -> dict[str, Any] | None:
    path = train_dir / BUDGET_FILE
    return read_json(path) if path.is_file() else None


def resolve(cfg: TrainConfig, bf16: bool, record: dict[str, Any] | None, resuming: bool) -> tuple[TrainConfig, dict[str, Any]]:
    """The config with ``micro_batch_size: auto`` resolved (from the record on resume, else by the rule) and
    ``max_steps: auto`` taken from the record on resume (else left for ``measure_and_fit``)."""
    update: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    if resuming and (cfg.micro_batch_size == "auto" or cfg.max_steps == "auto"):
        missing = [k for k in ("micro_batch_size", "max_steps") if getattr(cfg, k) == "auto" and k not in (record or {})]
        if missing:
            raise StageError(f"{BUDGET_FILE} of this run is missing or lacks {missing}: the fitted values cannot be reused "
                             f"for the resume; start over with --force, or set train.{missing[0]} explicitly")
    if cfg.micro_batch_size == "auto":
        update["micro_batch_size"] = int(record["micro_batch_size"]) if resuming else auto_micro_batch(cfg.block_size, bf16)
        resolved["micro_batch_size"] = update["micro_batch_size"]
    if cfg.max_steps == "auto" and resuming:
        update["max_steps"] = int(record["max_steps"])
        resolved["max_steps"] = update["max_steps"]
    return cfg.model_copy(update=update), resolved


def probe_blocks(rows: Any, tokenizer, block_size: int, n_blocks: int) -> PackedBlocks:
    """The first ``n_blocks`` blocks of the train split in corpus order (cycled when the split is smaller)."""
    docs, tokens = [], 0
    for row in rows:
        docs += tokenize_documents([row["text"]], tokenizer)
        tokens += len(docs[-1])
        if tokens >= (n_blocks + 1) * block_size:
            break
    blocks = pack(docs, block_size)
    if len(blocks) == 0:
        raise StageError(f"train split has fewer tokens than one block of train.block_size={block_size}")
    index = np.arange(n_blocks) % len(blocks)
    return PackedBlocks(blocks.input_ids[index], blocks.position_ids[index])


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def time_steps(model: torch.nn.Module, run: Callable[[list], None], warmup: int = WARMUP_STEPS,
               timed: int = TIMED_STEPS) -> dict[str, Any]:
    """Run ``warmup + timed`` optimizer steps through ``run(callbacks)`` (a throwaway Trainer's train()), then
    put the trainable weights and every RNG back as they were. Returns seconds per step and the wall time."""
    started = time.perf_counter()
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    rngs = rng_state()
    timer = StepTimer()
    try:
        run([timer])
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in saved:
                    p.copy_(saved[n])
                    p.grad = None
        set_rng_state(rngs)
    steps = timer.seconds[warmup:] or timer.seconds
    if not steps:
        raise StageError("train.max_steps: auto: the measurement ran no optimizer step")
    return {"seconds_per_step": statistics.median(steps), "step_seconds": [round(s, 3) for s in timer.seconds],
            "warmup_steps": warmup, "measure_seconds": time.perf_counter() - started}
