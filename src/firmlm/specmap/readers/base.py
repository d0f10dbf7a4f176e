"""The reader plugin interface and helpers shared by readers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from firmlm.errors import DocumentError
from firmlm.specmap.sections import Section


class DocumentReader:
    """One kind of hardware document: the suffixes it claims and how to read it into sections."""

    kind: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    expects: ClassVar[str] = ""  # what a file of this kind must be, for error messages

    def sniff(self, path: Path) -> bool:
        """Whether ``path`` looks like this kind (asked only when several readers claim its suffix)."""
        return True

    def read(self, path: Path) -> list[Section]:
        """Sections of ``path`` in document order; DocumentError when it cannot be read as this kind."""
        raise NotImplementedError


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or DocumentError naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read the document ({exc.strerror or exc})") from exc


def read_text(path: Path) -> str:
    """The file as UTF-8 text (undecodable bytes replaced), line endings normalised to ``\\n``."""
    text = read_bytes(path).decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def head_text(path: Path, size: int = 4096) -> str:
    """The first ``size`` bytes as text ("" when unreadable), for sniffing."""
    try:
        with path.open("rb") as handle:
            return handle.read(size).decode("utf-8", errors="replace")
    except OSError:
        return ""
