"""Order-preserving cache of packed training blocks in memory-mapped Arrow.

Keyed by a fingerprint of the selected documents (their ids and sizes), the tokenizer (its serialized
vocabulary) and the block size, so a rerun, a resume, or every rank of a multi-process run reads the same
blocks without tokenizing again. Tokenization is batched through the fast tokenizer's parallel encoder,
which returns encodings in input order; the cache records each document's token count and the total is
checked on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pyarrow as pa

from firmlm.models.loading import tokenizer_fingerprint  # noqa: F401  (re-exported for the train stage)
from firmlm.train.packing import PackedBlocks

log = logging.getLogger(__name__)
FORMAT = "firmlm-blocks-v1"


def cache_key(doc_ids: list[str], n_chars: list[int], tokenizer_fp: str, block_size: int, needed_tokens: int) -> str:
    h = hashlib.sha256()
    h.update(f"{FORMAT}|{tokenizer_fp}|{block_size}|{needed_tokens}|".encode())
    for d, n in zip(doc_ids, n_chars, strict=True):
        h.update(f"{d}:{n};".encode())
    return h.hexdigest()[:20]


def save_blocks(path: Path, blocks: PackedBlocks, doc_tokens: list[int]) -> None:
    """Write blocks as an Arrow IPC file (through a temporary name)."""
    n, width = blocks.input_ids.shape
    table = pa.table(
        {
            "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(blocks.input_ids.reshape(-1), pa.int32()), width),
            "position_ids": pa.FixedSizeListArray.from_arrays(pa.array(blocks.position_ids.reshape(-1), pa.int32()), width),
        }
    ).replace_schema_metadata({"format": FORMAT, "doc_tokens": json.dumps(doc_tokens), "blocks": str(n)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)


def load_blocks_mmap(path: Path, block_size: int) -> tuple[PackedBlocks, list[int]] | None:
    """Memory-map cached blocks; None when the file is missing or does not verify."""
    if not path.is_file():
        return None
    try:
        source = pa.memory_map(str(path), "r")
        table = pa.ipc.open_file(source).read_all()
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        doc_tokens = json.loads(meta["doc_tokens"])
        n = int(meta["blocks"])
        ids = table.column("input_ids").combine_chunks().flatten().to_numpy(zero_copy_only=True).reshape(n, block_size)
        pos = table.column("position_ids").combine_chunks().flatten().to_numpy(zero_copy_only=True).reshape(n, block_size)
    except (pa.ArrowInvalid, KeyError, ValueError, OSError) as exc:
        log.warning("token cache %s unreadable (%s); tokenizing again", path, exc)
        return None
    if meta.get("format") != FORMAT or n * block_size > sum(doc_tokens):
        log.warning("token cache %s does not verify; tokenizing again", path)
        return None
    return PackedBlocks(ids, pos), doc_tokens
