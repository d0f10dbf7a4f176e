"""Background upload of published checkpoints to any fsspec URL (file://, s3://, gs://, ...).

Each upload copies the folder, then verifies every file's size on the remote side, and writes the
checkpoint marker last, so a remote folder with a marker is complete. Optionally the local copy is deleted
after a verified upload (the newest local checkpoint is always kept for resume).
"""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from firmlm.runs import CHECKPOINT_MARKER as MARKER

log = logging.getLogger(__name__)


class CheckpointUploader:
    """Uploads checkpoints one at a time in a background thread, in the order they were published."""

    def __init__(self, url: str, delete_local: bool = False):
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.delete_local = delete_local
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firmlm-upload")
        self.futures: list[Future] = []
        self.uploaded: list[str] = []
        self.failed: dict[str, str] = {}
        self._lock = threading.Lock()
        self._newest: Path | None = None
        self._verified: list[Path] = []

    def submit(self, folder: Path) -> Future:
        self._newest = folder
        future = self.pool.submit(self._upload, folder)
        self.futures.append(future)
        return future

    def _upload(self, folder: Path) -> str:
        remote = f"{self.root}/{folder.parent.name}/{folder.name}"
        try:
            files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER)
            for path in files:
                target = f"{remote}/{path.relative_to(folder).as_posix()}"
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), target)
            for path in files:
                target = f"{remote}/{path.relative_to(folder).as_posix()}"
                if self.fs.size(target) != path.stat().st_size:
                    raise OSError(f"size mismatch after upload: {target}")
            self.fs.put_file(str(folder / MARKER), f"{remote}/{MARKER}")
        except Exception as exc:  # an upload failure must never stop training
            with self._lock:
                self.failed[str(folder)] = str(exc)
            log.warning("upload of %s to %s failed: %s", folder, remote, exc)
            return ""
        with self._lock:
            self.uploaded.append(remote)
            self._verified.append(folder)
        log.info("uploaded %s → %s", folder.name, remote)
        self._delete_verified()
        return remote

    def _delete_verified(self) -> None:
        """Remove local copies whose upload verified, except the newest checkpoint (kept for resume)."""
        if not self.delete_local:
            return
        with self._lock:
            for folder in [f for f in self._verified if f != self._newest]:
                shutil.rmtree(folder, ignore_errors=True)
                self._verified.remove(folder)

    def close(self) -> None:
        """Wait for pending uploads."""
        self.pool.shutdown(wait=True)
        self._delete_verified()


def free_disk_gb(path: Path) -> float:
    return round(shutil.disk_usage(path).free / 2**30, 2)
