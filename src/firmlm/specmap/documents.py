"""Hardware documents in, sections out: the reader registry and ``read_document``.

A reader is chosen by the file's suffix; when several readers claim a suffix, the first whose ``sniff``
accepts the file's content reads it. A plugin registers with ``register_reader``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from firmlm.errors import DocumentError
from firmlm.specmap.readers.base import DocumentReader
from firmlm.specmap.readers.dtbinding import DtBindingReader
from firmlm.specmap.readers.markdown import MarkdownReader
from firmlm.specmap.readers.pdf import PdfReader
from firmlm.specmap.readers.rst import RstReader
from firmlm.specmap.readers.svd import SvdReader
from firmlm.specmap.sections import Section

__all__ = ["DocumentReader", "READERS", "read_document", "reader_for", "register_reader", "supported_suffixes"]

READERS: list[type[DocumentReader]] = [MarkdownReader, RstReader, SvdReader, DtBindingReader, PdfReader]


def register_reader(reader: type[DocumentReader], *, first: bool = False) -> type[DocumentReader]:
    """Add a reader class (usable as a decorator); ``first`` puts it ahead of the readers of its suffixes."""
    if not reader.suffixes or not all(s.startswith(".") and s == s.lower() for s in reader.suffixes):
        raise ValueError(f"reader {reader.__name__}: suffixes must be lower-case and start with '.'")
    if reader in READERS:
        READERS.remove(reader)
    if first:
        READERS.insert(0, reader)
    else:
        READERS.append(reader)
    return reader


def supported_suffixes() -> list[str]:
    """Every suffix some reader claims, sorted."""
    return sorted({suffix for reader in READERS for suffix in reader.suffixes})


def reader_for(path: Path) -> DocumentReader:
    """The reader for ``path``: by suffix, then by content when several readers claim the suffix."""
    suffix = path.suffix.lower()
    candidates = [reader() for reader in READERS if suffix in reader.suffixes]
    if not candidates:
        raise DocumentError(f"{path}: unsupported document type {suffix or '(no suffix)'!r}; "
                            f"expected one of {', '.join(supported_suffixes())}")
    if len(candidates) == 1:
        return candidates[0]
    for reader in candidates:
        if reader.sniff(path):
            return reader
    raise DocumentError(f"{path}: not a known {suffix} document; expected "
                        + " or ".join(reader.expects for reader in candidates))


def read_document(path: str | Path) -> list[Section]:
    """The sections of one hardware document, in document order.

    Raises DocumentError (naming the file and what was expected) when the file is missing, of an unknown
    type, or not what its type requires.
    """
    given, path = str(path), Path(path)
    if not path.is_file():
        raise DocumentError(f"{given}: no such file; expected a hardware document "
                            f"({', '.join(supported_suffixes())})")
    sections = reader_for(path).read(path)
    return [s if s.document == given else replace(s, document=given) for s in sections]
