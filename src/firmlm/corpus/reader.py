"""Read source files from a tree: kept suffixes, safe paths, and a recorded reason for every skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from firmlm.corpus.debian import wanted

KINDS = {".c": "c", ".h": "h", ".S": "asm", ".s": "asm", ".asm": "asm", ".dts": "dts", ".dtsi": "dts", ".ld": "linker_script",
         ".lds": "linker_script", ".md": "doc", ".rst": "doc", ".txt": "doc", ".adoc": "doc"}
SKIP_DIRS = {".git", ".hg", ".svn"}
BINARY_PROBE = 8192


@dataclass
class FileRecord:
    """A file that was read, or skipped with a reason."""

    path: str  # relative to the tree root, POSIX separators
    text: str | None = None
    skip: str | None = None


def kind_of(path: str) -> str:
    """c, h, asm, dts, linker_script, kconfig, doc or other."""
    name = path.rsplit("/", 1)[-1]
    if name == "Kconfig" or name.startswith("Kconfig."):
        return "kconfig"
    return KINDS.get(os.path.splitext(path)[1], "other")


def list_candidates(
    root: Path, suffixes: tuple[str, ...], include: list[str], exclude: list[str]
) -> tuple[list[str], list[FileRecord]]:
    """Sorted relative paths that pass the filters, plus skip records for symlinks and unreadable folders.

    Symlinks are never followed (loops and links out of the tree cannot be reached).
    """
    keep: list[str] = []
    skipped: list[FileRecord] = []

    def on_error(err: OSError) -> None:
        rel = os.path.relpath(err.filename, root) if err.filename else "?"
        skipped.append(FileRecord(rel, skip="unreadable-folder"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                dirnames.remove(d)
                skipped.append(FileRecord(os.path.relpath(full, root), skip="symlink"))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            if not wanted(rel, suffixes, include, exclude):
                continue
            if os.path.islink(full):
                skipped.append(FileRecord(rel, skip="symlink"))
                continue
            keep.append(rel)
    keep.sort()
    return keep, skipped


def spread(paths: list[str], limit: int | None) -> list[str]:
    """At most ``limit`` paths, evenly spaced over the sorted list (deterministic)."""
    if limit is None or len(paths) <= limit:
        return paths
    n = len(paths)
    return [paths[(i * n) // limit] for i in range(limit)]


def read_file(root: Path, rel: str, max_bytes: int) -> FileRecord:
    """Read one file as UTF-8 text, or return the reason it was skipped."""
    full = root / rel
    try:
        st = full.lstat()
    except OSError:
        return FileRecord(rel, skip="unreadable")
    if not full.is_file() or full.is_symlink():
        return FileRecord(rel, skip="not-a-regular-file")
    if st.st_size == 0:
        return FileRecord(rel, skip="empty")
    if st.st_size > max_bytes:
        return FileRecord(rel, skip="too-large")
    try:
        data = full.read_bytes()
    except OSError:
        return FileRecord(rel, skip="unreadable")
    if b"\x00" in data[:BINARY_PROBE]:
        return FileRecord(rel, skip="binary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return FileRecord(rel, skip="invalid-utf8")
    if not text.strip():
        return FileRecord(rel, skip="empty")
    return FileRecord(rel, text=text)


def read_tree(
    root: Path,
    suffixes: tuple[str, ...],
    include: list[str],
    exclude: list[str],
    max_files: int | None,
    max_bytes: int,
) -> Iterator[FileRecord]:
    """Every candidate file of a tree (capped by max_files), read or skipped with a reason."""
    paths, skipped = list_candidates(root, suffixes, include, exclude)
    yield from skipped
    for rel in spread(paths, max_files):
        yield read_file(root, rel, max_bytes)
