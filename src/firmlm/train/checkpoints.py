"""Atomic, resumable checkpoints: written under a staging name and renamed into place; keep the last K.

A checkpoint folder (``step-N``) holds what the transformers Trainer saves (adapter, optimizer, scheduler,
RNG states, trainer state) plus firmlm's monitor state and a marker written last. A folder without the
marker (a process killed while writing) is never picked for resume.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from firmlm.distributed import barrier, is_main_process
from firmlm.errors import StageError
from firmlm.runs import CHECKPOINT_MARKER as MARKER
from firmlm.runs import atomic_write_json, is_complete, list_complete  # noqa: F401  (re-exported)
from firmlm.train.monitor import StopRequest, TrainingMonitor
from firmlm.train.upload import CheckpointUploader, free_disk_gb

log = logging.getLogger(__name__)
MONITOR_STATE = "firmlm-monitor.json"


def fsync_tree(folder: Path) -> None:
    """Flush every file of a folder to disk before it is renamed into place."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def publish(staged: Path, dest_root: Path, step: int, meta: dict[str, Any]) -> Path:
    """Write the marker into a finished staging folder, then rename it to ``dest_root/step-N``."""
    atomic_write_json(staged / MARKER, {"step": step, **meta})
    fsync_tree(staged)
    dest_root.mkdir(parents=True, exist_ok=True)
    final = dest_root / f"step-{step}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    return final


def rotate(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints (and stale staging leftovers)."""
    removed = []
    for _, folder in list_complete(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def latest(train_dir: Path) -> Path | None:
    """The newest complete checkpoint among regular and emergency ones (ties: emergency wins)."""
    candidates = [(s, 0, p) for s, p in list_complete(train_dir / "checkpoints")]
    candidates += [(s, 1, p) for s, p in list_complete(train_dir / "emergency")]
    return max(candidates)[2] if candidates else None


def list_resumable(train_dir: Path) -> list[Path]:
    """Complete checkpoints (regular and emergency) under a train folder, oldest first."""
    found = [(s, 0, p) for s, p in list_complete(train_dir / "checkpoints")]
    found += [(s, 1, p) for s, p in list_complete(train_dir / "emergency")]
    return [p for _, _, p in sorted(found)]


def latest_matching(train_dir: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint written under this train configuration's fingerprint."""
    for folder in reversed(list_resumable(train_dir)):
        try:
            if read_meta(folder).get("fingerprint") == fingerprint:
                return folder
        except StageError:
            continue
    return None


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        raise StageError(f"{folder}: not a complete firmlm checkpoint (no readable {MARKER})") from None


def resolve_resume(train_dir: Path, resume: str | None, fingerprint: str) -> Path | None:
    """``auto``: the latest complete checkpoint of this run (None when there is none); a path: that one.

    A checkpoint written under another train configuration is refused.
    """
    if not resume:
        return None
    if resume == "auto":
        folder = latest(train_dir)
        if folder is None:
            return None
    else:
        folder = Path(resume)
        if not is_complete(folder):
            raise StageError(f"--resume {resume}: not a complete checkpoint (missing {MARKER} or trainer_state.json)")
    meta = read_meta(folder)
    if meta.get("fingerprint") != fingerprint:
        raise StageError(
            f"--resume {folder}: written by a different train config (fingerprint {meta.get('fingerprint')} "
            f"!= {fingerprint}); resume with the config that produced it or start fresh without --resume"
        )
    return folder


class CheckpointPublisher(TrainerCallback):
    """Publishes each checkpoint the Trainer saved (``output_dir/checkpoint-N``) atomically as
    ``checkpoints/step-N`` or, during an emergency stop, ``emergency/step-N``, with the monitor's state.

    Every rank has written its part (RNG state, optimizer shards) when ``on_save`` runs; a barrier makes sure
    of it before the main process adds the monitor state and the marker and renames the folder into place.
    """

    def __init__(self, train_dir: Path, monitor: TrainingMonitor, stop: StopRequest, keep: int,
                 meta: dict[str, Any], uploader: CheckpointUploader | None = None):
        self.train_dir = train_dir
        self.monitor = monitor
        self.stop = stop
        self.keep = keep
        self.meta = meta
        self.uploader = uploader
        self.saved: list[Path] = []

    def on_save(self, args, state, control, **kwargs):
        barrier()
        step = state.global_step
        emergency = self.stop.reason is not None
        dest_root = self.train_dir / ("emergency" if emergency else "checkpoints")
        folder = dest_root / f"step-{step}"
        if is_main_process():
            staged = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
            atomic_write_json(staged / MONITOR_STATE, self.monitor.state_dict())
            meta = {**self.meta, "emergency": emergency, "reason": self.stop.reason, "world_size": args.world_size}
            folder = publish(staged, dest_root, step, meta)
            if not emergency:
                rotate(dest_root, self.keep)
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
