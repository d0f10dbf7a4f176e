"""Atomic, resumable checkpoints: written under a staging name and renamed into place; keep the last K.

A checkpoint folder (``step-N``) holds what the transformers Trainer saves (adapter, optimizer, scheduler,
RNG states, trainer state) plus firmlm's monitor state and a marker written last. A folder without the
marker (a process killed while writing) is never picked for resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from firmlm.errors import StageError
from firmlm.runs import CHECKPOINT_MARKER as MARKER
from firmlm.runs import atomic_write_json, is_complete, list_complete  # noqa: F401  (re-exported)


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
