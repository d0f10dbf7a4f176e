"""A repository's structure for SpecMap: folders, files and ctags symbols, each with a short text to rank.

Files are C/C++ sources and headers, assembly (``.s``, ``.S``, ``.asm``), device trees, linker scripts, Kconfig
and Makefiles; hidden folders and build outputs are skipped. A folder's description joins the words of its path
and file names, its README, its Kconfig prompts and help, its Makefile comments and the header comments of up to
three files. Every list is in a deterministic order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from firmlm.specmap.comments import clip, first_comment, kconfig_text, line_comments, read_head, readme_text
from firmlm.specmap.identifiers import split_identifier
from firmlm.specmap.scorers import Candidate
from firmlm.specmap.symbols import Symbol, extract_symbols, list_files

SUFFIX_LANGUAGES = {".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
                    ".hxx": "cpp", ".s": "asm", ".asm": "asm", ".dts": "dts", ".dtsi": "dts", ".ld": "ld",
                    ".lds": "ld", ".mk": "make"}
MAKEFILES = frozenset({"Makefile", "makefile", "GNUmakefile", "Kbuild"})
README = re.compile(r"^readme(\.(md|markdown|txt|rst))?$", re.I)
DESCRIPTION_CHARS = 600
COMMENT_FILES = 3


def file_language(path: str) -> str | None:
    """c, cpp, asm, dts, ld, kconfig or make for files SpecMap indexes; None for the rest."""
    name = os.path.basename(path)
    if name.startswith("Kconfig"):
        return "kconfig"
    if name in MAKEFILES:
        return "make"
    return SUFFIX_LANGUAGES.get(os.path.splitext(name)[1].lower())


def folder_of(path: str) -> str:
    """The folder of a relative file path; ``.`` for the repository root."""
    return os.path.dirname(path) or "."


def words(text: str) -> str:
    """Identifier words of a path or name, space-separated: ``drivers/serial/stm32_usart.c`` → ...stm32 usart c."""
    return " ".join(split_identifier(text))


@dataclass
class FileEntry:
    """An indexed file: path relative to the root, language, size in bytes, header comment, defined symbols."""

    path: str
    language: str
    size: int
    comment: str = ""
    symbols: list[str] = field(default_factory=list)


@dataclass
class FolderEntry:
    """A folder holding indexed files (their relative paths) and a short description."""

    path: str
    files: list[str]
    description: str = ""


@dataclass
class RepositoryIndex:
    """Folders, files and symbols of one repository; ``reason`` says why one of them is empty."""

    root: Path
    folders: list[FolderEntry]
    files: list[FileEntry]
    symbols: list[Symbol]
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str | None = None

    @classmethod
    def build(cls, root: Path, cache_dir: Path | None = None) -> RepositoryIndex:
        """Index ``root``; ctags symbols are cached under ``cache_dir`` by repository content."""
        root = Path(root)
        listed = list_files(root)
        indexed = [(rel, lang) for rel in listed if (lang := file_language(rel))]
        if not indexed:
            reason = f"{root}: no C, C++, assembly, device-tree, linker-script, Kconfig or Makefile files"
            return cls(root, [], [], [], reason=reason)
        scan = extract_symbols(root, cache_dir, files=[rel for rel, _ in indexed])
        defined: dict[str, dict[str, None]] = {}  # path → names in line order, without repeats
        for sym in scan.symbols:
            defined.setdefault(sym.path, {})[sym.name] = None
        files = [_file_entry(root, rel, lang, list(defined.get(rel, ()))) for rel, lang in indexed]
        readmes = {folder_of(rel): rel for rel in reversed(listed) if README.match(os.path.basename(rel))}
        grouped: dict[str, list[FileEntry]] = {}
        for entry in files:
            grouped.setdefault(folder_of(entry.path), []).append(entry)
        folders = [FolderEntry(path, [f.path for f in group], _describe(root, path, group, readmes.get(path)))
                   for path, group in sorted(grouped.items(), key=lambda kv: (kv[0] != ".", kv[0]))]
        return cls(root, folders, files, scan.symbols, dict(scan.skipped), scan.reason)

    def folder_candidates(self) -> list[Candidate]:
        """One candidate per folder: its path words and description."""
        return [Candidate(f.path, f"{words(f.path)} {f.description}") for f in self.folders]

    def file_candidates(self, folders: Iterable[str] | None = None) -> list[Candidate]:
        """One candidate per file (only in ``folders`` when given): path words, comment and symbol names."""
        wanted = None if folders is None else set(folders)
        return [Candidate(f.path, f"{words(f.path)} {f.comment} {' '.join(f.symbols)}") for f in self.files
                if wanted is None or folder_of(f.path) in wanted]

    def symbol_candidates(self, paths: Iterable[str] | None = None) -> list[Candidate]:
        """One candidate per symbol (only in ``paths`` when given), id ``path:line:name`` (first one kept)."""
        wanted = None if paths is None else set(paths)
        out: dict[str, Candidate] = {}
        for s in self.symbols:
            cid = f"{s.path}:{s.line}:{s.name}"
            if (wanted is None or s.path in wanted) and cid not in out:
                text = f"{s.name} {s.kind} {s.scope or ''} {s.signature or ''} {words(s.path)}"
                out[cid] = Candidate(cid, text)
        return list(out.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the run directory."""
        data = asdict(self)
        data["root"] = str(self.root)
        return data


def _file_entry(root: Path, rel: str, language: str, symbols: list[str]) -> FileEntry:
    path = root / rel
    head = read_head(path)
    comment = kconfig_text(head, 300) if language == "kconfig" else first_comment(head, language)
    return FileEntry(rel, language, path.stat().st_size, comment, symbols)


def _describe(root: Path, folder: str, files: list[FileEntry], readme: str | None) -> str:
    """Path and file-name words, README, Kconfig text, Makefile comments, header comments of up to 3 files."""
    sources = [f for f in files if f.language not in ("kconfig", "make")]
    names = dict.fromkeys(w for f in sources for w in split_identifier(os.path.splitext(os.path.basename(f.path))[0]))
    parts = [words(root.name if folder == "." else folder), clip(" ".join(names), 150)]
    if readme:
        parts.append(readme_text(read_head(root / readme), 200))
    parts += [clip(f.comment, 200) for f in files if f.language == "kconfig"]
    parts += [line_comments(read_head(root / f.path), 100) for f in files if f.language == "make"]
    parts += [clip(f.comment, 150) for f in [f for f in sources if f.comment][:COMMENT_FILES]]
    return clip(" ".join(p if p.endswith((".", "!", "?", ":")) else f"{p}." for p in parts if p), DESCRIPTION_CHARS)
