"""Code symbols (functions, macros, structs, labels ...) from Universal Ctags, cached per repository content.

The cache key hashes the contents of every file handed to ctags (with its relative path), so an edit that keeps
a file's size and mtime still invalidates it. Build outputs and hidden folders are never scanned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Iterable

from firmlm.errors import SourceError, StageError
from firmlm.runs import atomic_write_text

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CTAGS_HINT = "install universal-ctags (apt-get install universal-ctags)"
CTAGS_NAMES = ("ctags-universal", "universal-ctags", "ctags")
CTAGS_LANGUAGES = {".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".hpp": "C++", ".hh": "C++",
                   ".hxx": "C++", ".s": "Asm", ".asm": "Asm", ".dts": "DTS", ".dtsi": "DTS"}
CTAGS_OPTIONS = ("--options=NONE", "--output-format=json", "--fields=+nKzSel", "--kinds-C=+p", "--kinds-C++=+p",
                 "--map-C=+.h", "--map-C++=-.h", "--languages=C,C++,Asm,DTS", "--sort=no")
SKIP_DIRS = frozenset({"build", "_build", "out", "obj", "dist", "Debug", "Release", "CMakeFiles", "node_modules",
                       "__pycache__"})
_INCLUDE_GUARD = re.compile(r"^_*[A-Z0-9_]*_(?:H|HPP|HH|INCLUDED)_*$")
MAX_BYTES = 16 << 20  # larger sources are generated blobs; they are skipped with a reason


class CtagsError(StageError):
    """Universal Ctags is missing or failed."""


@dataclass(frozen=True)
class Symbol:
    """One definition ctags found; ``path`` is relative to the repository root (posix), lines are 1-based."""

    name: str
    kind: str  # ctags long kind: function, prototype, macro, struct, union, enum, enumerator, typedef, ...
    path: str
    line: int
    end: int | None = None
    scope: str | None = None
    scope_kind: str | None = None
    language: str = ""
    signature: str | None = None


@dataclass
class SymbolScan:
    """The symbols of one repository; ``reason`` says why there are none, ``skipped`` maps path → why."""

    symbols: list[Symbol]
    files: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    cached: bool = False


def list_files(root: Path) -> list[str]:
    """Sorted relative posix paths of regular files under root, without hidden folders, build outputs or links."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: repository folder not found")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in files:
            full = Path(folder, name)
            if name[0] != "." and "\n" not in name and not full.is_symlink() and full.is_file():
                found.append(full.relative_to(root).as_posix())
    if not found:
        raise SourceError(f"{root}: repository folder is empty (hidden folders and build outputs are not scanned)")
    return sorted(found)


def ctags_language(path: str) -> str | None:
    """The ctags language a file is parsed as (``.S`` and ``.s`` are assembly), or None."""
    return CTAGS_LANGUAGES.get(os.path.splitext(path)[1].lower())


def content_hash(root: Path, paths: Iterable[str]) -> str:
    """Hash of the cache format, the ctags options and every (relative path, file content) pair."""
    total = hashlib.sha256(json.dumps([CACHE_VERSION, CTAGS_OPTIONS]).encode())
    for rel in sorted(paths):
        digest = hashlib.sha256()
        with open(Path(root, rel), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        total.update(rel.encode("utf-8", "surrogateescape") + b"\0" + digest.digest())
    return total.hexdigest()[:32]


def find_ctags() -> str:
    """Path of the Universal Ctags executable, or a CtagsError saying how to install it."""
    for name in CTAGS_NAMES:
        exe = shutil.which(name)
        if exe:
            return exe
    raise CtagsError(f"ctags not found on PATH (looked for {', '.join(CTAGS_NAMES)}): {CTAGS_HINT}")


def parse_ctags_json(lines: Iterable[str]) -> list[Symbol]:
    """Symbols from ctags JSON lines, sorted by (path, line, name, kind).

    Anonymous structs take their typedef's name; other anonymous tags and include guards are dropped.
    """
    tags = []
    for line in lines:
        try:
            tag = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(tag, dict) and tag.get("_type") == "tag" and "line" in tag:
            tags.append(tag)
    alias = {}
    for tag in tags:
        kind, _, target = str(tag.get("typeref", "")).partition(":")
        if tag.get("kind") == "typedef" and target.startswith("__anon") and kind in ("struct", "union", "enum"):
            alias[(tag["path"], target)] = tag["name"]
    symbols = []
    for tag in tags:
        path, name, scope = tag["path"], tag["name"], tag.get("scope")
        name = alias.get((path, name), name)
        if scope is not None:
            scope = alias.get((path, scope), scope)
            scope = None if scope.startswith("__anon") else scope
        if name.startswith("__anon") or (tag.get("kind") == "macro" and _INCLUDE_GUARD.match(name)):
            continue
        symbols.append(Symbol(name=name, kind=tag.get("kind", ""), path=path.removeprefix("./"), line=tag["line"],
                              end=tag.get("end"), scope=scope, scope_kind=tag.get("scopeKind") if scope else None,
                              language=tag.get("language", ""), signature=tag.get("signature")))
    symbols.sort(key=lambda s: (s.path, s.line, s.name, s.kind))
    return symbols


def run_ctags(root: Path, paths: list[str]) -> list[Symbol]:
    """Run ctags over the given files (relative to root) and parse its JSON output."""
    exe = find_ctags()
    with tempfile.TemporaryDirectory(prefix="firmlm-ctags-") as tmp:
        listing, output = Path(tmp, "files.txt"), Path(tmp, "tags.json")
        listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8", errors="surrogateescape")
        proc = subprocess.run([exe, *CTAGS_OPTIONS, "-f", str(output), "-L", str(listing)], cwd=root,
                              capture_output=True, text=True, errors="replace", check=False)
        if proc.returncode != 0 or not output.is_file():
            tail = proc.stderr.strip().splitlines()[-3:]
            raise CtagsError(f"{exe} failed on {root} (exit {proc.returncode}: {' '.join(tail)}); firmlm needs "
                             f"Universal Ctags with JSON output: {CTAGS_HINT}")
        with open(output, encoding="utf-8", errors="replace") as fh:
            return parse_ctags_json(fh)


def _read_cache(path: Path) -> list[Symbol] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") == CACHE_VERSION:
            return [Symbol(*row) for row in data["symbols"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        log.warning("%s: unreadable symbol cache; rebuilding it", path)
    return None


def extract_symbols(root: Path, cache_dir: Path | None = None, files: list[str] | None = None,
                    max_bytes: int = MAX_BYTES) -> SymbolScan:
    """Symbols of every C, C++, assembly and device-tree file under root, from the cache when it is current.

    ``files`` is ``list_files(root)`` when the caller already has it. An empty or missing root is a SourceError;
    a repository with no such files gives no symbols and a ``reason``.
    """
    root = Path(root)
    files = list_files(root) if files is None else files
    skipped: dict[str, str] = {}
    parsable = []
    for rel in files:
        if ctags_language(rel) is None:
            continue
        size = Path(root, rel).stat().st_size
        if size > max_bytes:
            skipped[rel] = f"{size} bytes, over the {max_bytes}-byte limit"
        else:
            parsable.append(rel)
    if not parsable:
        return SymbolScan([], 0, skipped, reason=f"{root}: no C, C++, assembly or device-tree files for ctags")
    cache = Path(cache_dir) / f"{content_hash(root, parsable)}.json" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        symbols = _read_cache(cache)
        if symbols is not None:
            return SymbolScan(symbols, len(parsable), skipped, cached=True)
    symbols = run_ctags(root, parsable)
    if cache is not None:
        rows = [astuple(s) for s in symbols]
        atomic_write_text(cache, json.dumps({"version": CACHE_VERSION, "root": str(root), "symbols": rows}))
    return SymbolScan(symbols, len(parsable), skipped)
