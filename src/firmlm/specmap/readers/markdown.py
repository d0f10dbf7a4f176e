"""Markdown: ATX (``#`` … ``######``) and setext (``===``/``---`` underlined) headings; fences are skipped."""

from __future__ import annotations

import re
from pathlib import Path

from firmlm.specmap.readers.base import DocumentReader, read_text
from firmlm.specmap.readers.outline import Heading, build_sections
from firmlm.specmap.sections import Section

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_END = re.compile(r"^(---|\.\.\.)[ \t]*$")
_BLOCK_START = re.compile(r"^ {0,3}(?:[-+*>]|\d+[.)]|\||    |\t)")


def _front_matter_end(lines: list[str]) -> int:
    """Index after a leading YAML front-matter block (``---`` … ``---``), else 0."""
    if not lines or lines[0].rstrip() != "---":
        return 0
    for i in range(1, len(lines)):
        if _FRONT_MATTER_END.match(lines[i]):
            return i + 1
    return 0


def markdown_headings(lines: list[str]) -> list[Heading]:
    """Headings outside code fences and front matter, in order."""
    headings: list[Heading] = []
    fence: str | None = None
    previous_is_text = False  # the line before may be a setext heading's text
    for i in range(_front_matter_end(lines), len(lines)):
        line = lines[i]
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip()[len(opening.group(1)):].strip():
                fence = None
            previous_is_text = False
            continue
        if opening:
            fence, previous_is_text = opening.group(1), False
            continue
        atx = _ATX.match(line)
        if atx:
            if atx.group(2) and atx.group(2).strip():
                headings.append(Heading(i, 1, len(atx.group(1)), atx.group(2).strip()))
            previous_is_text = False
            continue
        setext = _SETEXT.match(line)
        if setext and previous_is_text:
            headings.append(Heading(i - 1, 2, 1 if setext.group(1)[0] == "=" else 2, lines[i - 1].strip()))
            previous_is_text = False
            continue
        starts_paragraph = i == 0 or not lines[i - 1].strip() or (headings and headings[-1].index +
                                                                   headings[-1].length == i)
        previous_is_text = bool(line.strip()) and starts_paragraph and not _BLOCK_START.match(line)
    return headings


class MarkdownReader(DocumentReader):
    """Markdown reference manuals and application notes; spans are lines."""

    kind = "markdown"
    suffixes = (".md", ".markdown")
    expects = "a Markdown document"

    def read(self, path: Path) -> list[Section]:
        lines = read_text(path).split("\n")
        front = _front_matter_end(lines)
        lines[:front] = [""] * front  # front matter is metadata, not text (line numbers kept)
        return build_sections(str(path), lines, markdown_headings(lines))
