"""reStructuredText: section titles by underline (and overline) adornment, levels by first appearance."""

from __future__ import annotations

from pathlib import Path

from firmlm.specmap.readers.base import DocumentReader, read_text
from firmlm.specmap.readers.outline import Heading, build_sections
from firmlm.specmap.sections import Section

ADORNMENT_CHARS = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _adornment(line: str) -> str | None:
    """The adornment character when ``line`` is a run of one punctuation character (2 or more)."""
    text = line.rstrip()
    if len(text) >= 2 and text[0] in ADORNMENT_CHARS and text == text[0] * len(text):
        return text[0]
    return None


def _is_title_text(line: str) -> bool:
    return bool(line.strip()) and _adornment(line) is None


def rst_headings(lines: list[str]) -> list[Heading]:
    """Section titles in order; the n-th distinct adornment style seen is level n."""
    styles: list[tuple[str, bool]] = []
    headings: list[Heading] = []
    i, after_title = 0, True  # the document start counts as a boundary
    while i < len(lines):
        boundary = after_title or not lines[i - 1].strip()
        over = _adornment(lines[i])
        style: tuple[str, bool] | None = None
        if boundary and over and i + 2 < len(lines) and _is_title_text(lines[i + 1]) \
                and _adornment(lines[i + 2]) == over:
            style, start, length, title = (over, True), i, 3, lines[i + 1].strip()
        elif boundary and _is_title_text(lines[i]) and not lines[i][0].isspace() and i + 1 < len(lines):
            under = _adornment(lines[i + 1])
            title = lines[i].strip()
            if under and (len(lines[i + 1].rstrip()) >= len(title) or len(lines[i + 1].rstrip()) >= 4):
                style, start, length = (under, False), i, 2
        if style is None:
            after_title = False
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        headings.append(Heading(start, length, styles.index(style) + 1, title))
        i, after_title = start + length, True
    return headings


class RstReader(DocumentReader):
    """reStructuredText documentation (e.g. Linux or Zephyr hardware docs); spans are lines."""

    kind = "rst"
    suffixes = (".rst", ".rest")
    expects = "a reStructuredText document"

    def read(self, path: Path) -> list[Section]:
        lines = read_text(path).split("\n")
        return build_sections(str(path), lines, rst_headings(lines))
