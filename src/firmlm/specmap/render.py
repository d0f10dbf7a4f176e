"""Training documents from a mapping: the section's text, then the code it maps to.

Each mapped section becomes one document::

    ==================================================================================  (82 '=')
    Section: RM0090 > USART > USART_CR1
    <section text>
    ==================================================================================
    // File: <repository>/<path>
    <the mapped symbols' lines in that file, in file order; a file without mapped symbols: its head>

Code is capped per document (``max_code_chars``); ``not_applicable`` sections and sections mapped to no file
give no document.
"""

from __future__ import annotations

from pathlib import Path

from firmlm.specmap.mapping import SectionMapping
from firmlm.specmap.sections import Section

RULE = "=" * 82
SYMBOL_LINES = 40  # lines taken from a symbol whose end line ctags did not give
HEAD_LINES = 60


def _ranges(mapping: SectionMapping, path: str) -> list[tuple[int, int]]:
    spans = sorted((s.line, s.end if s.end and s.end >= s.line else s.line + SYMBOL_LINES)
                   for s in mapping.symbols if s.path == path)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged or [(1, HEAD_LINES)]


def file_excerpt(root: Path, path: str, ranges: list[tuple[int, int]]) -> str:
    """The lines of ``ranges`` (1-based, inclusive) of ``root/path``, '...' between separate ranges."""
    try:
        lines = (root / path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    parts = ["\n".join(lines[start - 1:end]) for start, end in ranges]
    return "\n...\n".join(p for p in parts if p.strip())


def render_section(section: Section, mapping: SectionMapping, root: Path, repository: str,
                   max_code_chars: int = 8000) -> str | None:
    """The training text of one mapped section, or None when there is nothing to pair."""
    if mapping.status == "not_applicable" or not mapping.files:
        return None
    blocks, used = [], 0
    for path, _ in mapping.files:
        code = file_excerpt(root, path, _ranges(mapping, path))
        if not code:
            continue
        code = code[: max(0, max_code_chars - used)]
        if not code:
            break
        blocks.append(f"// File: {repository}/{path}\n{code}")
        used += len(code)
    if not blocks:
        return None
    header = f"{RULE}\nSection: {' > '.join(section.path) or section.title}\n{section.text.strip()}\n{RULE}"
    return header + "\n" + "\n\n".join(blocks) + "\n"
