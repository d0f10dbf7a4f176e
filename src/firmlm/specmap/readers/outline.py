"""Sections from a list of lines and the headings found among them (Markdown, reStructuredText, PDF)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from firmlm.specmap.sections import Section

PAGE_BREAK = "\n\f\n"


@dataclass(frozen=True)
class Heading:
    """A heading occupying ``length`` lines from ``index`` (0-based), at ``level`` (1 = top)."""

    index: int
    length: int
    level: int
    title: str


def _join(lines: list[str], units: list[int], page: bool) -> str:
    if not page:
        return "\n".join(lines)
    out = [lines[0]]
    for i in range(1, len(lines)):
        out.append(PAGE_BREAK * (units[i] - units[i - 1]) if units[i] > units[i - 1] else "\n")
        out.append(lines[i])
    return "".join(out)


def build_sections(document: str, lines: list[str], headings: list[Heading], units: list[int] | None = None,
                   span_unit: Literal["line", "page"] = "line") -> list[Section]:
    """One section per heading with a non-blank body, titled by the heading and placed under its ancestors.

    ``units[i]`` is the line or page of ``lines[i]`` (default: line ``i + 1``). Text before the first
    heading becomes a section titled by the document's file stem. Sections with an empty body are left out.
    """
    units = units if units is not None else list(range(1, len(lines) + 1))
    stack: list[Heading] = []
    sections: list[Section] = []
    stem = Path(document).stem
    bounds = [Heading(0, 0, 0, stem)] + sorted(headings, key=lambda h: h.index)
    for number, heading in enumerate(bounds):
        end = bounds[number + 1].index if number + 1 < len(bounds) else len(lines)
        if heading.level:
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
        start = heading.index + heading.length
        while start < end and not lines[start].strip():
            start += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        body = range(start, end)
        if not body:
            continue
        path = tuple(h.title for h in stack) if heading.level else (stem,)
        text = _join([lines[i].rstrip() for i in body], [units[i] for i in body], span_unit == "page")
        sections.append(Section(document=document, title=heading.title, path=path, text=text,
                                span=(units[heading.index if heading.level else body[0]], units[body[-1]]),
                                span_unit=span_unit))
    return sections
