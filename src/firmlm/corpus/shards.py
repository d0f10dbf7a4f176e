"""Parquet shards of corpus documents (the corpus → train/eval contract)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from firmlm.errors import StageError

SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("category", pa.string()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("chunk", pa.int32()),
        ("kind", pa.string()),
        ("license", pa.string()),
        ("vendor", pa.string()),
        ("doc_id", pa.string()),
        ("n_chars", pa.int64()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


def write_shards(docs: Iterable[dict[str, Any]], folder: Path, rows_per_shard: int) -> list[str]:
    """Write documents in order to ``part-NNNNN.parquet`` files (each through a temporary name)."""
    names: list[str] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        name = f"part-{len(names):05d}.parquet"
        table = pa.Table.from_pylist(batch, schema=SCHEMA)
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, folder / name)
        names.append(name)
        batch.clear()

    for doc in docs:
        batch.append(doc)
        if len(batch) >= rows_per_shard:
            flush()
    if batch or not names:
        flush()
    return names


def shard_paths(folder: Path) -> list[Path]:
    paths = sorted(folder.glob("part-*.parquet"))
    if not paths:
        raise StageError(f"{folder}: no corpus shards (part-*.parquet); run `firmlm corpus` first")
    return paths


def read_documents(folder: Path, split: str | None = None, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Documents in corpus order, optionally of one split."""
    cols = columns or list(COLUMNS)
    if split is not None and "split" not in cols:
        cols = [*cols, "split"]
    for path in shard_paths(folder):
        try:
            table = pq.read_table(path, columns=cols)
        except (pa.ArrowInvalid, OSError) as exc:
            raise StageError(f"{path}: unreadable parquet shard ({exc})") from None
        for row in table.to_pylist():
            if split is None or row["split"] == split:
                yield row


def read_eval_files(folder: Path, splits: list[str]) -> Iterator[dict[str, Any]]:
    """The evaluation-split files as they are in the repository (``eval_files.parquet``), of the given splits."""
    path = folder / "eval_files.parquet"
    if not path.is_file():
        raise StageError(f"{path}: missing (a corpus built by an older firmlm); rebuild it: firmlm corpus -c CONFIG --force")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StageError(f"{path}: unreadable parquet ({exc})") from None
    for row in table.to_pylist():
        if row["split"] in splits:
            yield row
