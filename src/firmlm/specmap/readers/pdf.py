"""PDF datasheets and reference manuals (pdfplumber): text per page, tables as rows, headings from layout.

Tables become rows of cells joined with `` | `` and their area is left out of the page text, so nothing is
read twice. A heading is a numbered title ("3.2.1 USART control register") or a short line in a font larger
than the body's; numbered headings nest by their number's depth, others by font size (largest = level 1).
Margin lines repeated on more than half of the pages (running headers and footers) are dropped.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmlm.errors import DocumentError
from firmlm.specmap.readers.base import DocumentReader, read_bytes
from firmlm.specmap.readers.outline import Heading, build_sections
from firmlm.specmap.sections import Section

_NUMBERED = re.compile(r"^(\d{1,2}(?:\.\d{1,2}){0,5})\.?\s+([A-Z][A-Za-z0-9]+\b.*)$")
_DOT_LEADERS = re.compile(r"\.{4,}|(?:\. ){3,}")
LARGER = 1.15  # a heading's font is at least this much larger than the body's
MAX_HEADING_CHARS = 120
MARGIN = 0.08  # share of the page height at the top and bottom searched for running headers and footers


@dataclass(frozen=True)
class PdfLine:
    """A line of a page (or a whole table, rows separated by newlines) with its font size."""

    page: int
    top: float
    text: str
    size: float = 0.0
    bold: bool = False
    table: bool = False
    edge: bool = False  # in the top or bottom margin, where running headers and footers are


def page_lines(page: Any, number: int) -> list[PdfLine]:
    """Text lines outside tables and one entry per table, top to bottom."""
    tables = page.find_tables()
    boxes = [table.bbox for table in tables]

    def outside(obj: dict[str, Any]) -> bool:
        if obj.get("object_type") != "char":
            return True
        x, y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

    lines, margin = [], page.height * MARGIN
    for line in (page.filter(outside) if boxes else page).extract_text_lines(return_chars=True):
        chars = [c for c in line["chars"] if c["text"].strip()]
        if chars and line["text"].strip():
            lines.append(PdfLine(number, line["top"], " ".join(line["text"].split()),
                                 round(statistics.median(c["size"] for c in chars), 1),
                                 all("bold" in str(c.get("fontname", "")).lower() for c in chars),
                                 edge=line["top"] < margin or line["bottom"] > page.height - margin))
    for table in tables:
        rows = [" | ".join(" ".join((cell or "").split()) for cell in row) for row in table.extract()]
        rows = [row for row in rows if row.replace("|", "").strip()]
        if rows:
            lines.append(PdfLine(number, table.bbox[1], "\n".join(rows), table=True))
    return sorted(lines, key=lambda line: line.top)


def drop_running_lines(pages: list[list[PdfLine]]) -> list[list[PdfLine]]:
    """Without margin lines (digits ignored) found on more than half of the pages, when there are 3 or more."""
    if len(pages) < 3:
        return pages
    key = lambda line: re.sub(r"\d+", "#", line.text)  # noqa: E731
    counts = Counter(k for page in pages for k in {key(line) for line in page if line.edge})
    running = {k for k, n in counts.items() if n > len(pages) / 2}
    return [[line for line in page if not line.edge or key(line) not in running] for page in pages]


def find_headings(lines: list[PdfLine]) -> list[Heading]:
    """Numbered and large-font headings among ``lines`` with their levels."""
    weights = Counter[float]()
    for line in lines:
        if not line.table:
            weights[line.size] += len(line.text)
    body = max(sorted(weights), key=lambda size: weights[size]) if weights else 0.0

    def candidate(line: PdfLine) -> bool:
        return (not line.table and len(line.text) <= MAX_HEADING_CHARS and line.size >= body - 0.1
                and not line.text.endswith((".", ",", ";")) and not _DOT_LEADERS.search(line.text))

    larger = sorted({line.size for line in lines if candidate(line) and line.size >= body * LARGER}, reverse=True)
    headings = []
    for index, line in enumerate(lines):
        if not candidate(line):
            continue
        numbered = _NUMBERED.match(line.text)
        emphasised = line.size >= body * LARGER or line.bold
        if numbered and (numbered.group(1).count(".") or emphasised):
            headings.append(Heading(index, 1, numbered.group(1).count(".") + 1, line.text))
        elif line.size in larger and len(line.text.split()) <= 15 and re.search(r"[A-Za-z]{2}", line.text):
            headings.append(Heading(index, 1, larger.index(line.size) + 1, line.text))
    return headings


def _open_error(path: Path, exc: Exception) -> DocumentError:
    from pdfminer.pdfdocument import PDFEncryptionError

    cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    if isinstance(cause, PDFEncryptionError):
        return DocumentError(f"{path}: the PDF is encrypted ({type(cause).__name__}); expected an unencrypted PDF")
    return DocumentError(f"{path}: cannot parse the PDF ({type(cause).__name__}: {cause}); "
                         "expected a readable, unencrypted PDF")


class PdfReader(DocumentReader):
    """PDF datasheets; spans are pages."""

    kind = "pdf"
    suffixes = (".pdf",)
    expects = "a PDF with a text layer"

    def read(self, path: Path) -> list[Section]:
        if b"%PDF-" not in read_bytes(path)[:1024]:
            raise DocumentError(f"{path}: not a PDF (no %PDF- header in the first 1024 bytes)")
        try:
            import pdfplumber
        except ImportError:  # pragma: no cover - pdfplumber is a dependency of SpecMap
            raise DocumentError(f"{path}: reading PDFs needs pdfplumber (pip install pdfplumber)") from None
        try:
            with pdfplumber.open(path) as pdf:
                pages = [page_lines(page, number) for number, page in enumerate(pdf.pages, 1)]
        except Exception as exc:  # pdfminer raises many kinds on corrupt or hostile files
            raise _open_error(path, exc) from None
        lines = [line for page in drop_running_lines(pages) for line in page]
        if not lines:
            raise DocumentError(f"{path}: the PDF has no extractable text (a scanned image? OCR is not supported); "
                                f"expected {self.expects}")
        return build_sections(str(path), [line.text for line in lines], find_headings(lines),
                              [line.page for line in lines], span_unit="page")
