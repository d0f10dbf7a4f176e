"""Unpack a user archive (.tar, .tar.gz/.bz2/.xz/.zst, .tgz, .zip) safely into the cache.

Only regular files with relative names that stay inside the tree are written: absolute paths, ``..``
components, links, devices and other special members are skipped, each with a reason. A single top folder
shared by every member (``project-1.0/``) is removed from the paths. The unpacked tree is keyed by the
archive's SHA-256, so the same archive is unpacked once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from firmlm.corpus.debian import sha256_file, wanted
from firmlm.errors import SourceError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".zip")


@dataclass
class UnpackedArchive:
    path: Path
    sha256: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (member name, reason)


def safe_member(name: str) -> tuple[PurePosixPath | None, str | None]:
    """(relative path, None) for a safe name, or (None, reason)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (p.parts and p.parts[0].endswith(":")):
        return None, "archive-absolute-path"
    if ".." in p.parts:
        return None, "archive-parent-path"
    parts = [x for x in p.parts if x not in ("", ".")]
    return (PurePosixPath(*parts), None) if parts else (None, "archive-empty-name")


def _members(archive: Path):
    """(name, kind, opener) for every member; kind is file, dir, link or special."""
    if archive.name.endswith(".zip"):
        zf = zipfile.ZipFile(archive)
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            kind = "dir" if info.is_dir() else "link" if mode == 0o120000 else "file"
            yield info.filename, kind, (lambda i=info: zf.open(i))
        return
    mode = "r:zst" if archive.name.endswith(".tar.zst") else "r:*"
    try:
        tf = tarfile.open(archive, mode)
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise SourceError(f"{archive}: not a readable archive ({exc})") from None
    for m in tf.getmembers():
        kind = "file" if m.isfile() else "dir" if m.isdir() else "link" if (m.issym() or m.islnk()) else "special"
        yield m.name, kind, (lambda m=m: tf.extractfile(m))


def unpack_archive(archive: Path, cache: Path, suffixes: tuple[str, ...], include: list[str], exclude: list[str]) -> UnpackedArchive:
    """Unpack the wanted files of ``archive`` under ``cache/archives/<sha256>``; reuse a finished unpack."""
    if not archive.is_file():
        raise SourceError(f"{archive}: archive not found")
    if not archive.name.endswith(ARCHIVE_SUFFIXES):
        raise SourceError(f"{archive}: unsupported archive type (expected one of {', '.join(ARCHIVE_SUFFIXES)})")
    digest = sha256_file(archive)
    key = hashlib.sha256(repr((digest, sorted(suffixes), include, exclude)).encode()).hexdigest()[:16]
    dest = cache / "archives" / key
    marker = dest / ".firmlm-archive"
    try:
        members = list(_members(archive))
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"{archive}: not a readable archive ({exc})") from None
    skipped: list[tuple[str, str]] = []
    safe: list[tuple[PurePosixPath, object]] = []
    for name, kind, opener in members:
        rel, reason = safe_member(name)
        if kind == "dir":
            continue
        if reason is None and kind != "file":
            reason = f"archive-{kind}"
        if reason:
            skipped.append((name, reason))
            continue
        safe.append((rel, opener))
    tops = {r.parts[0] for r, _ in safe if len(r.parts) > 1}
    strip = len(tops) == 1 and all(len(r.parts) > 1 for r, _ in safe)
    if marker.is_file():
        return UnpackedArchive(dest, digest, skipped)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for rel, opener in safe:
        rel = PurePosixPath(*rel.parts[1:]) if strip else rel
        if not wanted(rel.as_posix(), suffixes, include, exclude):
            continue
        out = tmp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with opener() as src, open(out, "wb") as fh:
                shutil.copyfileobj(src, fh)
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
            skipped.append((rel.as_posix(), "archive-unreadable-member"))
            out.unlink(missing_ok=True)
    (tmp / ".firmlm-archive").write_text(digest)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return UnpackedArchive(dest, digest, skipped)
