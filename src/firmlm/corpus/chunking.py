"""Section-aware chunking (Spark paper, Stage 2): chunks of at most ``max_chars``, cut at the largest
boundary that fits, in this order:

1. file boundaries (``// File:`` marker lines) and mapping-document sections (a line of 82 ``=``);
2. for C: top-level declarations from a real parser (tree-sitter-c), a leading comment staying with the
   declaration it documents; an oversized ``#if``/``#ifdef`` block, ``extern "C"`` block or function is
   opened and cut between the declarations or statements inside it;
3. otherwise (assembly, device trees, linker scripts, Kconfig, prose, or C the parser cannot follow, as in
   macro-heavy code): line boundaries, preferring the end of a block (a line starting with ``}``), then a
   blank line.

Cuts always fall at line starts that begin a declaration or statement, so a string or a comment block is
never split when a boundary outside it exists. Joining the chunks gives back the text exactly.
"""

from __future__ import annotations

import re
from functools import lru_cache

FILE_MARKER = re.compile(r"^// File: ", re.M)
SECTION_DELIMITER = "=" * 82
OPENABLE = {"translation_unit", "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "linkage_specification",
            "declaration_list", "function_definition", "compound_statement"}
MAX_ERROR_SHARE = 0.2  # above this share of lines under ERROR nodes, the parse is not trusted


def _boundary_score(line: str) -> int:
    if line.startswith("}"):
        return 2  # end of a top-level function, struct or block
    if not line.strip():
        return 1
    return 0


def _split_long_lines(lines: list[str], max_chars: int) -> list[str]:
    out = []
    for line in lines:
        while len(line) > max_chars:
            out.append(line[:max_chars])
            line = line[max_chars:]
        if line:
            out.append(line)
    return out


def _best_cut(lines: list[str], max_chars: int) -> int:
    """How many leading lines to emit: after the best boundary past a quarter of the budget, else all."""
    best, best_key = len(lines), (0, 0)
    pos = 0
    for i, line in enumerate(lines):
        pos += len(line)
        if pos >= max_chars // 4:
            key = (_boundary_score(line), i + 1)
            if key[0] > 0 and key > best_key:
                best, best_key = i + 1, key
    return best


def chunk_lines(text: str, max_chars: int) -> list[str]:
    """The line-heuristic chunker (fallback): line boundaries, preferring block ends, then blank lines."""
    if len(text) <= max_chars:
        return [text] if text else []
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in _split_long_lines(text.splitlines(keepends=True), max_chars):
        while current and size + len(line) > max_chars:
            cut = _best_cut(current, max_chars)
            chunks.append("".join(current[:cut]))
            current = current[cut:]
            size = sum(len(x) for x in current)
        current.append(line)
        size += len(line)
    if current:
        chunks.append("".join(current))
    return chunks


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter_c
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_c.language()))


def _c_units(node, max_bytes: int) -> list[int]:
    """Start rows of the units a node is cut into (comments join the unit they precede)."""
    if node.end_byte - node.start_byte <= max_bytes or node.type not in OPENABLE:
        return [node.start_point[0]]
    children = node.children
    if node.type == "function_definition":  # open the body, keep the signature with the first statements
        body = next((c for c in children if c.type == "compound_statement"), None)
        return [node.start_point[0], *(_c_units(body, max_bytes)[1:] if body else [])]
    rows: list[int] = []
    pending_comment: int | None = None
    for child in children:
        if child.type == "comment":
            pending_comment = child.start_point[0] if pending_comment is None else pending_comment
            continue
        sub = _c_units(child, max_bytes)
        if pending_comment is not None:
            sub[0] = min(sub[0], pending_comment)
            pending_comment = None
        rows += sub
    if pending_comment is not None:
        rows.append(pending_comment)
    return rows or [node.start_point[0]]


def c_boundaries(text: str, max_chars: int) -> list[int] | None:
    """Line indexes where C units start, or None when the parse is not trustworthy."""
    data = text.encode("utf-8")
    tree = _parser().parse(data)
    root = tree.root_node
    if root.has_error:
        lines = max(1, text.count("\n") + 1)
        bad = sum(c.end_point[0] - c.start_point[0] + 1 for c in root.children if c.type == "ERROR" or c.is_missing)
        if bad / lines > MAX_ERROR_SHARE:
            return None
    # max_chars serves as a byte budget: a unit that fits in bytes fits in characters
    return sorted(set(_c_units(root, max_chars)))


def _pack(lines: list[str], boundaries: list[int], max_chars: int) -> list[str]:
    """Greedy: as many whole units per chunk as fit; a unit larger than the budget goes to the fallback."""
    starts = sorted({0, *[b for b in boundaries if 0 < b < len(lines)]})
    units = ["".join(lines[a:b]) for a, b in zip(starts, [*starts[1:], len(lines)])]
    chunks: list[str] = []
    current = ""
    for unit in units:
        if len(unit) > max_chars:
            if current:
                chunks.append(current)
                current = ""
            pieces = chunk_lines(unit, max_chars)
            chunks += pieces[:-1]
            current = pieces[-1] if pieces else ""
            continue
        if current and len(current) + len(unit) > max_chars:
            chunks.append(current)
            current = ""
        current += unit
    if current:
        chunks.append(current)
    return chunks


def _split_at(text: str, pattern: re.Pattern[str]) -> list[str]:
    starts = [m.start() for m in pattern.finditer(text) if m.start() > 0]
    return [text[a:b] for a, b in zip([0, *starts], [*starts, len(text)])]


def chunk_section(text: str, max_chars: int, kind: str) -> list[str]:
    """Chunks of one file or section."""
    if len(text) <= max_chars:
        return [text]
    if kind in ("c", "h"):
        boundaries = c_boundaries(text, max_chars)
        if boundaries is not None:
            return _pack(text.splitlines(keepends=True), boundaries, max_chars)
    return chunk_lines(text, max_chars)


def chunk_text(text: str, max_chars: int, min_chars: int = 50, kind: str = "c") -> list[str]:
    """Chunks of at most ``max_chars``; a final piece shorter than ``min_chars`` joins the previous chunk
    when it fits."""
    if len(text) <= max_chars:
        return [text]
    sections = _split_at(text, FILE_MARKER)
    delimiter = re.compile(rf"^{SECTION_DELIMITER}$", re.M)
    sections = [part for s in sections for part in _split_at(s, delimiter)]
    chunks: list[str] = []
    current = ""
    for section in sections:  # small sections (files, mapping sections) share a chunk when they fit
        if len(current) + len(section) <= max_chars:
            current += section
            continue
        if current:
            chunks.append(current)
        pieces = chunk_section(section, max_chars, kind)
        chunks += pieces[:-1]
        current = pieces[-1] if pieces else ""
    if current:
        chunks.append(current)
    if len(chunks) > 1 and len(chunks[-1]) < min_chars and len(chunks[-2]) + len(chunks[-1]) <= max_chars:
        chunks[-2] += chunks.pop()
    return chunks
