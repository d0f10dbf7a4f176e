"""Evaluation samples: fixed-length token windows of repository files, drawn per (split, category).

Files, not corpus chunks, are drawn (the bootstrap resamples files), from ``RUN/corpus/eval_files.parquet``:
the indomain/heldout files as they are in the repository (secrets scrubbed, not cleaned: tab-to-space
cleaning would make held-out code look like the training text). Each window starts at a line boundary at a
seeded random offset of the file's body, after its leading licence/copyright comments, and holds about
``window_tokens`` tokens of the reference tokenizer. The ``// File: repo/path`` header (the form the model
saw in training) is context, never scored. Per group, windows are taken until ``tokens_per_category``;
a file gives several non-overlapping windows only when the group has too few files.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from firmlm.corpus.shards import read_eval_files

LICENSE_WORDS = re.compile(r"licen[cs]e|copyright|spdx|permission is hereby|redistribution|\(c\)|all rights reserved", re.I)
PREPROCESSOR = re.compile(r"#\s*(include|define|undef|if|ifdef|ifndef|elif|else|endif|pragma|error|warning|line)\b")
MIN_WINDOW_TOKENS = 32


@dataclass(frozen=True)
class Sample:
    doc_id: str  # repo/path@char-offset: one window
    split: str
    category: str
    repo: str
    path: str
    text: str  # the scored window
    context: str = ""  # conditioning only (the file header)

    @property
    def file(self) -> str:
        return f"{self.repo}/{self.path}"


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def _fraction(seed: int, key: str) -> float:
    return int.from_bytes(_rank(seed, key)[:8], "big") / 2**64


def body_start(text: str) -> int:
    """Offset after the leading comments that carry a licence or copyright notice (and the blank lines after)."""
    pos = 0
    while True:
        start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
        if text.startswith("/*", start):
            end = text.find("*/", start + 2)
            end = len(text) if end == -1 else end + 2
        elif text.startswith("//", start) or (text.startswith("#", start) and not PREPROCESSOR.match(text, start)):
            end = start
            marker = "//" if text.startswith("//", start) else "#"
            while text.startswith(marker, end):
                nl = text.find("\n", end)
                end = len(text) if nl == -1 else nl + 1
                end += len(text[end:]) - len(text[end:].lstrip(" \t"))
        else:
            return start if pos else 0
        if not LICENSE_WORDS.search(text[start:end]):
            return start if pos else 0
        pos = end


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def file_windows(text: str, tokenizer, window_tokens: int, count: int, seed: int, key: str) -> list[tuple[int, int]]:
    """Up to ``count`` non-overlapping (start, end) character spans of about ``window_tokens`` tokens of the
    file's body: segment ``j`` of ``count`` equal segments holds window ``j`` at a seeded offset."""
    start = body_start(text)
    body = text[start:]
    enc = tokenizer(body, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    n = len(offsets)
    if n < MIN_WINDOW_TOKENS:
        return []
    if n <= window_tokens:
        return [(start, len(text))]
    count = max(1, min(count, n // window_tokens))
    segment = n // count
    spans = []
    for j in range(count):
        room = segment - window_tokens if j < count - 1 else n - j * segment - window_tokens
        first = j * segment + int(_fraction(seed, f"{key}#{j}") * max(0, room + 1))
        last = min(n, first + window_tokens) - 1
        begin = _line_start(body, offsets[first][0])
        if spans and start + begin < spans[-1][1]:
            begin = offsets[first][0]  # never overlap the previous window
        spans.append((start + begin, start + offsets[last][1]))
    return spans


def select_samples(corpus_dir: Path, splits: list[str], tokens_per_category: int, window_tokens: int, seed: int,
                   tokenizer, max_windows_per_file: int = 4) -> list[Sample]:
    """Windows per (split, category) until ``tokens_per_category`` tokens; the same for every model.

    Within a group, first windows of distinct files come first (generation takes the first samples).
    """
    pools: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in read_eval_files(corpus_dir, splits):
        pools[(row["split"], row["category"])].append(row)
    samples: list[Sample] = []
    for (split, category), rows in sorted(pools.items()):
        rows.sort(key=lambda r: _rank(seed, f"{r['repo']}/{r['path']}"))
        needed_windows = math.ceil(tokens_per_category / window_tokens)
        per_file = max(1, min(max_windows_per_file, math.ceil(needed_windows / len(rows))))
        group: list[tuple[int, int, Sample]] = []
        tokens = 0
        for order, r in enumerate(rows):
            if tokens >= tokens_per_category:
                break
            key = f"{r['repo']}/{r['path']}"
            header = f"// File: {key}\n"
            for j, (a, b) in enumerate(file_windows(r["text"], tokenizer, window_tokens, per_file, seed, key)):
                if tokens >= tokens_per_category:
                    break
                text = r["text"][a:b]
                tokens += len(tokenizer(text, add_special_tokens=False)["input_ids"])
                group.append((j, order, Sample(f"{key}@{a}", split, category, r["repo"], r["path"], text, header)))
        samples.extend(s for _, _, s in sorted(group, key=lambda g: (g[0], g[1])))
    return samples
