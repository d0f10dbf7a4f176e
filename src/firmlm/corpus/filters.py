"""Quality filters (Spark paper, Stage 3, plus the usual code-corpus filters).

Two kinds, each a small function with its parameters:
- cleaners rewrite the text and report how many places they changed (separator lines, character runs,
  ASCII art and box drawing, empty comment blocks and Doxygen decoration, CR and tabs);
- rejecters return a drop reason or None (auto-generated, minified or data-only, very long lines, low
  alphanumeric fraction, mostly garbage, neither code nor prose).

Cleaners never touch string literals' meaning in code: they only rewrite comment decoration, lines made of
punctuation alone, and runs of one punctuation character.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from firmlm.config import FilterConfig

BOX_DRAWING = re.compile(r"[\u2500-\u257f\u2580-\u259f]")
# a whole line of decoration: optional comment opener/closer around punctuation only
SEPARATOR = re.compile(r"^(\s*)(/\*+|//+|#+|;+|\*+)?\s*([-=*#~_+.<>/\\|]{4,})\s*(\*+/)?\s*$")
RUN = re.compile(r"([^\w\s])\1{9,}")  # one punctuation character 10+ times
EMPTY_BLOCK_COMMENT = re.compile(r"/\*[\s*!]*\*/")
EMPTY_DOXYGEN_LINE = re.compile(r"^\s*\*\s*$")
AUTOGEN = re.compile(
    r"(auto-?generated|automatically generated|generated (by|with|from) |do not edit|this file is generated)", re.I
)
LITERAL = re.compile(r"(0[xX][0-9a-fA-F]+|\d+|'.'|\"[^\"]*\")[uUlL]*")
TRAILING_COMMENT = re.compile(r"\s*(//.*|/\*.*\*/)\s*$")
CODE_INDICATOR = re.compile(
    r"[;{}]\s*$|#\s*(define|include|if|ifdef|ifndef)\b|^\s*\w+\s*\([^)]*\)\s*$|^\s*[a-z]{2,6}\s+[\w%#\[\]]+(\s*,\s*[\w%#\[\]\-+()]+)*\s*(@.*|//.*|;.*)?$"
    r"|^\s*(config|menuconfig|bool|tristate|depends on|select|default)\b",
    re.M,
)
WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass
class Cleaned:
    text: str
    changes: dict[str, int]


def normalize_whitespace(text: str) -> tuple[str, int]:
    """CR removed (CRLF and lone CR become LF); tabs become 4 spaces."""
    n = text.count("\r") + text.count("\t")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    "), n


def separator_lines(text: str) -> tuple[str, int]:
    """Decoration lines (``/*********/``, ``// ------``, ``=====``) shrink to their comment syntax alone, so
    a comment that opens or closes on such a line stays well formed; pure separators disappear."""
    out, n = [], 0
    for line in text.split("\n"):
        m = SEPARATOR.match(line)
        if not m or any(c.isalnum() for c in line):
            out.append(line)
            continue
        n += 1
        indent, opener, body, closer = m.group(1), m.group(2) or "", m.group(3), m.group(4) or ""
        opens = opener.startswith("/*") or body.startswith("/*")
        closes = bool(closer) or body.endswith("*/")
        if opens and not closes:
            out.append(f"{indent}/*")
        elif closes and not opens:
            out.append(f"{indent}*/")
        # opened and closed on the line, or plain punctuation: drop the line
    return "\n".join(out), n


def character_runs(text: str) -> tuple[str, int]:
    """A punctuation character repeated 10+ times becomes 3 (letters, digits and spaces are left alone)."""
    return RUN.subn(lambda m: m.group(1) * 3, text)


def ascii_art(text: str) -> tuple[str, int]:
    """Lines with Unicode box drawing, and lines of 12+ non-space characters without any letter or digit."""
    out, n = [], 0
    for line in text.split("\n"):
        stripped = line.strip()
        if BOX_DRAWING.search(line) or (len(stripped.replace(" ", "")) >= 12 and not any(c.isalnum() for c in stripped)
                                        and not stripped.startswith(("/*", "*/"))):
            n += 1
            continue
        out.append(line)
    return "\n".join(out), n


def empty_comments(text: str) -> tuple[str, int]:
    """Empty comment blocks (``/* */``, ``/**\\n *\\n */``) removed; runs of empty Doxygen ``*`` lines become one."""
    text, n = EMPTY_BLOCK_COMMENT.subn("", text)
    out, previous_empty = [], False
    for line in text.split("\n"):
        empty = bool(EMPTY_DOXYGEN_LINE.match(line))
        if empty and previous_empty:
            n += 1
            continue
        out.append(line)
        previous_empty = empty
    return "\n".join(out), n


CLEANERS: dict[str, Callable[[str], tuple[str, int]]] = {
    "normalize_whitespace": normalize_whitespace,
    "separator_lines": separator_lines,
    "character_runs": character_runs,
    "ascii_art": ascii_art,
    "empty_comments": empty_comments,
}


def clean(text: str) -> Cleaned:
    """Every cleaner in order; the counts say how many places each changed."""
    changes = {}
    for name, fn in CLEANERS.items():
        text, n = fn(text)
        if n:
            changes[name] = n
    return Cleaned(text, changes)


def clean_around(text: str, keep_line: str) -> Cleaned:
    """:func:`clean` on the text between lines equal to ``keep_line`` (SpecMap's section rules), which stay."""
    changes: Counter[str] = Counter()
    parts = []
    for part in re.split(rf"(?m)^{re.escape(keep_line)}$", text):
        lead = "\n" if part.startswith("\n") else ""
        trail = "\n" if part.endswith("\n") and len(part) > len(lead) else ""
        inner = part[len(lead):len(part) - len(trail)]
        if inner:
            result = clean(inner)
            changes.update(result.changes)
            inner = result.text
        parts.append(lead + inner + trail)
    return Cleaned(keep_line.join(parts), dict(changes))


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def is_data_line(line: str) -> bool:
    """A line of comma-separated literals only (numbers, characters, strings), as in embedded data tables."""
    body = TRAILING_COMMENT.sub("", line).strip().rstrip(",")
    return bool(body) and all(LITERAL.fullmatch(tok.strip()) for tok in body.split(","))


def reject_file(text: str, cfg: FilterConfig) -> str | None:
    """A reason to drop a whole file before chunking, or None."""
    if cfg.drop_autogenerated and AUTOGEN.search(text[:2000]):
        return "auto-generated"
    lines = _lines(text)
    if not lines:
        return "empty-after-cleaning"
    if max(len(line) for line in lines) > cfg.max_line_chars:
        return "very-long-lines"
    if sum(len(line) for line in lines) / len(lines) > cfg.max_mean_line_chars:
        return "minified"
    if len(lines) >= 20 and sum(is_data_line(line) for line in lines) / len(lines) > cfg.max_data_fraction:
        return "data-only"
    return None


def garbage_fraction(text: str) -> float:
    """Share of non-empty lines that carry nothing: decoration, punctuation-only, or mangled characters."""
    lines = _lines(text)
    if not lines:
        return 1.0
    bad = 0
    for line in lines:
        s = line.strip()
        if "\ufffd" in s or sum(not c.isprintable() for c in s) > 0 or not any(c.isalnum() for c in s) and len(s) > 3:
            bad += 1
    return bad / len(lines)


def reject_chunk(text: str, kind: str, cfg: FilterConfig) -> str | None:
    """A reason to drop one chunk after chunking, or None."""
    body = text.split("\n", 1)[1] if text.startswith("// File:") else text
    if not body.strip():
        return "empty-after-cleaning"
    alnum = sum(c.isalnum() for c in body) / max(1, sum(not c.isspace() for c in body))
    if alnum < cfg.min_alnum_fraction:
        return "low-alphanumeric"
    if garbage_fraction(body) > cfg.max_garbage_fraction:
        return "mostly-garbage"
    if kind != "doc" and CODE_INDICATOR.search(body):
        return None
    if len(WORD.findall(body)) >= cfg.min_prose_words:
        return None
    return "no-code-or-prose"
