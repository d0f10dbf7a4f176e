"""Split long files into chunks of at most ``max_chars`` at line boundaries, preferring the end of a C
function or block (a line starting with ``}``), then a blank line, so chunks rarely cut a function in two.

Joining the chunks gives back the text exactly.
"""

from __future__ import annotations


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


def chunk_text(text: str, max_chars: int, min_chars: int = 50) -> list[str]:
    """Chunks of at most ``max_chars``; a final piece shorter than ``min_chars`` joins the previous chunk
    when it fits."""
    if len(text) <= max_chars:
        return [text]
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
        tail = "".join(current)
        if len(tail) < min_chars and chunks and len(chunks[-1]) + len(tail) <= max_chars:
            chunks[-1] += tail
        else:
            chunks.append(tail)
    return chunks
