"""Helpers for multi-process runs (torchrun / accelerate launch): who writes, agreeing on stops, and
waiting for the main process without holding a collective open.

Collectives run on the process group's device: NCCL takes only CUDA tensors, gloo CPU ones.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from firmlm.errors import StageError

GPU_BACKENDS = {"nccl", "xccl", "hccl"}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def ensure_process_group() -> None:
    """Start the process group early (before the stage touches files) when launched with several processes."""
    if world_size() > 1 and not is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def collective_device() -> torch.device:
    """The device whose tensors the default process group's backend reduces (CUDA for NCCL, else CPU)."""
    backend = str(torch.distributed.get_backend()).lower()
    if backend in GPU_BACKENDS:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if world_size() > 1 and is_initialized():
        torch.distributed.barrier()


def _all_reduce(value: float, op, dtype: torch.dtype) -> float:
    t = torch.tensor([value], dtype=dtype, device=collective_device())
    torch.distributed.all_reduce(t, op=op)
    return float(t.item())


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any rank (so all ranks stop at the same step)."""
    if world_size() == 1 or not is_initialized():
        return flag
    return _all_reduce(1.0 if flag else 0.0, torch.distributed.ReduceOp.MAX, torch.float32) > 0


def mean_over_ranks(value: float) -> float:
    if world_size() == 1 or not is_initialized():
        return value
    return _all_reduce(value, torch.distributed.ReduceOp.SUM, torch.float64) / world_size()


def any_rank_tensor(flag: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor, OR-ed over ranks on the collective device (no host sync on one process)."""
    if world_size() == 1 or not is_initialized():
        return flag
    t = flag.to(device=collective_device(), dtype=torch.float32).reshape(1)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return (t > 0).reshape(())


def wait_for_marker(marker: Path, what: str, poll_s: float = 2.0, timeout_s: float | None = None) -> dict:
    """Block a non-main rank until the main process writes ``marker`` (JSON), polling the file system.

    Used instead of a barrier while the main process runs a long single-process stage (corpus, eval,
    report): a collective would time out (NCCL's watchdog) long before such a stage ends. A marker with
    ``"ok": false`` means the main process failed; this rank then fails too, naming the marker.
    """
    started = time.monotonic()
    while not marker.is_file():
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise StageError(f"{marker}: the main process did not finish {what} within {timeout_s:.0f} s")
        time.sleep(poll_s)
    try:
        state = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        state = {"ok": False, "error": "unreadable marker"}
    if not state.get("ok"):
        raise StageError(f"{marker}: the main process failed in {what} ({state.get('error', 'no reason given')})")
    return state
