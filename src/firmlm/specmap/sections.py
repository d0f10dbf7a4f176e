"""Sections of hardware documents and their chunking for retrieval.

A section's ``span`` counts lines (Markdown, reStructuredText, SVD, bindings) or pages (PDF), 1-based and
inclusive. When ``rendered`` is false the text is the document's own lines: its last line or page is
``span[1]`` and each earlier one is counted back by a newline (lines) or a form feed (pages), so the parts of
a split section get exact spans. Rendered text (SVD, bindings, merged sections) keeps the whole span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f]*\n\s*")
_LEADING_BLANK_LINES = re.compile(r"\A\s*\n")


@dataclass(frozen=True)
class Section:
    """One titled part of a document with its place in the document's hierarchy."""

    document: str  # the document's path as given
    title: str
    path: tuple[str, ...]  # titles from the top of the hierarchy down to this section
    text: str
    span: tuple[int, int]  # first and last line (or page), inclusive
    span_unit: Literal["line", "page"] = "line"
    metadata: dict[str, Any] = field(default_factory=dict)  # compatible strings, base address ...
    rendered: bool = False  # text built from structured data rather than the document's own lines

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["path"], data["span"] = list(self.path), list(self.span)
        return data


def trim_blank_lines(text: str) -> str:
    """``text`` without leading blank lines and trailing whitespace (indentation of the first line kept)."""
    return _LEADING_BLANK_LINES.sub("", text).rstrip()


def _split_line(line: str, max_chars: int) -> list[str]:
    """A line longer than ``max_chars`` cut after the last space that fits, else hard."""
    pieces = []
    while len(line) > max_chars:
        cut = line.rfind(" ", 0, max_chars) + 1 or max_chars
        pieces.append(line[:cut])
        line = line[cut:]
    return pieces + [line] if line else pieces


def _atoms(text: str, max_chars: int) -> list[str]:
    """Consecutive pieces of ``text`` that fit ``max_chars``: paragraphs, else lines, else parts of lines."""
    cuts = [0] + [m.end() for m in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]
    atoms: list[str] = []
    for start, end in zip(cuts, cuts[1:]):
        paragraph = text[start:end]
        if len(paragraph) <= max_chars:
            atoms.append(paragraph)
            continue
        for line in paragraph.splitlines(keepends=True):
            atoms.extend(_split_line(line, max_chars))
    return [a for a in atoms if a]


def _pack(atoms: list[str], cap: int) -> list[str]:
    groups: list[str] = []
    current = ""
    for atom in atoms:
        if current and len(current) + len(atom) > cap:
            groups.append(current)
            current = ""
        current += atom
    return groups + [current] if current else groups


def _balanced(atoms: list[str], max_chars: int) -> list[str]:
    """As few groups as packing at ``max_chars`` needs, with the smallest largest group (binary search)."""
    count = len(_pack(atoms, max_chars))
    low, high = max(max(map(len, atoms)), -(-sum(map(len, atoms)) // count)), max_chars
    while low < high:
        middle = (low + high) // 2
        if len(_pack(atoms, middle)) <= count:
            high = middle
        else:
            low = middle + 1
    return _pack(atoms, low)


def split_section(section: Section, max_chars: int) -> list[Section]:
    """``section`` cut at paragraph (then line) boundaries into balanced parts titled "<title> (part i/n)"."""
    if len(section.text) <= max_chars:
        return [section]
    groups = _balanced(_atoms(section.text, max_chars), max_chars)
    separator = "\n" if section.span_unit == "line" else "\f"
    first = section.span[1] - section.text.count(separator)
    parts, offset, n = [], 0, len(groups)
    for i, group in enumerate(groups, 1):
        text = trim_blank_lines(group)
        start = offset + len(group) - len(_LEADING_BLANK_LINES.sub("", group))
        if section.rendered:
            span = section.span
        else:
            head = section.span[0] if i == 1 else first + section.text.count(separator, 0, start)
            span = (head, first + section.text.count(separator, 0, start + len(text)))
        offset += len(group)
        if text:
            parts.append(replace(section, title=f"{section.title} (part {i}/{n})", text=text, span=span,
                                 metadata={**section.metadata, "part": i, "parts": n}))
    return parts


def _merged_size(group: list[Section]) -> int:
    return sum(len(s.title) + 1 + len(s.text) for s in group) + 2 * (len(group) - 1)


def _mergeable(group: list[Section], section: Section, max_chars: int, min_chars: int) -> bool:
    last = group[-1]
    return (last.document == section.document and last.span_unit == section.span_unit
            and last.path[:-1] == section.path[:-1]
            and (_merged_size(group) < min_chars or len(section.text) < min_chars)
            and _merged_size(group + [section]) <= max_chars)


def merge_sections(group: list[Section]) -> Section:
    """Consecutive siblings as one section: each text under its title; their metadata kept under "merged"."""
    if len(group) == 1:
        return group[0]
    first, last = group[0], group[-1]
    title = " + ".join(s.title for s in group)
    merged = [{"title": s.title, "path": list(s.path), "span": list(s.span), "metadata": s.metadata}
              for s in group]
    return Section(document=first.document, title=title, path=first.path[:-1] + (title,),
                   text="\n\n".join(f"{s.title}\n{s.text}" for s in group), span=(first.span[0], last.span[1]),
                   span_unit=first.span_unit, metadata={"merged": merged}, rendered=True)


def chunk_sections(sections: Iterable[Section], max_chars: int = 4000, min_chars: int = 300) -> list[Section]:
    """Split sections longer than ``max_chars``; merge runs of small consecutive siblings up to ``max_chars``.

    Siblings share a document and a parent path; a section joins the run before it when either the run or
    the section is under ``min_chars`` and the merged text fits. Deterministic, order-preserving.
    """
    if max_chars < 1 or not 0 <= min_chars <= max_chars:
        raise ValueError(f"need 0 <= min_chars <= max_chars and max_chars >= 1, got {min_chars=}, {max_chars=}")
    out: list[Section] = []
    group: list[Section] = []
    for part in (p for s in sections for p in split_section(s, max_chars)):
        if group and _mergeable(group, part, max_chars, min_chars):
            group.append(part)
            continue
        if group:
            out.append(merge_sections(group))
        group = [part]
    if group:
        out.append(merge_sections(group))
    return out
