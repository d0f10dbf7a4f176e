"""Run-directory layout, atomic writes and stage fingerprints.

A stage writes into ``RUN/.<stage>.tmp`` and, when it finishes, that folder replaces ``RUN/<stage>``
in one rename. ``RUN/<stage>/summary.json`` carries the stage's fingerprint; a stage whose fingerprint
is unchanged is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmlm import __version__
from firmlm.errors import StageError

SUMMARY = "summary.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temporary name in the same folder and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: missing; run the stage that writes it first") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}: not valid JSON ({exc})") from None


def fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-serializable parts plus the firmlm version."""
    blob = json.dumps([__version__, *parts], sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageOutput:
    """A stage's temporary output folder and the summary it will publish."""

    name: str
    path: Path
    fingerprint: str
    summary: dict[str, Any] = field(default_factory=dict)


class RunDir:
    """The run directory shared by all stages of one config."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def stage_path(self, name: str) -> Path:
        return self.root / name

    def summary(self, name: str) -> dict[str, Any] | None:
        path = self.stage_path(name) / SUMMARY
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None

    def is_done(self, name: str, fp: str) -> bool:
        summary = self.summary(name)
        return summary is not None and summary.get("fingerprint") == fp

    def require(self, name: str) -> dict[str, Any]:
        """Summary of a finished upstream stage, or a clear error."""
        summary = self.summary(name)
        if summary is None:
            raise StageError(f"{self.stage_path(name)}: stage '{name}' has not finished; run it first")
        return summary

    @contextmanager
    def stage_in_place(self, name: str, fp: str, fresh: bool) -> Iterator[StageOutput]:
        """For stages that keep resumable state (train): work in RUN/<name> itself.

        Files inside are written atomically by the stage; summary.json is removed at the start and written
        last, so the stage counts as done only when it finished. ``fresh`` empties the folder first.
        """
        from firmlm.distributed import barrier, is_main_process

        path = self.stage_path(name)
        if is_main_process():
            if fresh and path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True, exist_ok=True)
            (path / SUMMARY).unlink(missing_ok=True)
        barrier()
        out = StageOutput(name=name, path=path, fingerprint=fp)
        started = time.time()
        yield out
        out.summary.update(
            {"stage": name, "fingerprint": fp, "seconds": round(time.time() - started, 2), "version": __version__}
        )
        barrier()
        if is_main_process():
            atomic_write_json(path / SUMMARY, out.summary)

    @contextmanager
    def stage(self, name: str, fp: str) -> Iterator[StageOutput]:
        """Yield a temporary folder; on success publish it as RUN/<name> with summary.json last."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        out = StageOutput(name=name, path=tmp, fingerprint=fp)
        started = time.time()
        try:
            yield out
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        out.summary.update(
            {"stage": name, "fingerprint": fp, "seconds": round(time.time() - started, 2), "version": __version__}
        )
        atomic_write_json(tmp / SUMMARY, out.summary)
        final = self.stage_path(name)
        old = self.root / f".{name}.old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)


CHECKPOINT_MARKER = "firmlm-checkpoint.json"
STEP_DIR = re.compile(r"^step-(\d+)$")


def is_complete(folder: Path) -> bool:
    """A training checkpoint whose marker (written last) and trainer state are both present."""
    return (folder / CHECKPOINT_MARKER).is_file() and (folder / "trainer_state.json").is_file()


def list_complete(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of complete checkpoints under root, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = STEP_DIR.match(child.name)
        if m and child.is_dir() and is_complete(child):
            found.append((int(m.group(1)), child))
    return sorted(found)
