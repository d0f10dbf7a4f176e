"""Tokenize documents in corpus order and pack them into fixed-size blocks with document masking.

Each document is followed by EOS. ``position_ids`` restart at 0 where a document starts, which makes
transformers build a block-diagonal causal mask (no attention across documents) when no
``attention_mask`` is passed. The label of a document's first token is ignored (-100): it cannot be
predicted from the previous document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

IGNORE = -100


def tokenize_documents(texts: Iterable[str], tokenizer, batch: int = 64) -> list[np.ndarray]:
    """Token ids of each document in order, EOS appended (batched through the fast tokenizer)."""
    docs: list[np.ndarray] = []
    eos = tokenizer.eos_token_id
    buffer: list[str] = []

    def flush() -> None:
        for ids in tokenizer(buffer, add_special_tokens=False)["input_ids"]:
            docs.append(np.asarray([*ids, eos], dtype=np.int32))
        buffer.clear()

    for text in texts:
        buffer.append(text)
        if len(buffer) >= batch:
            flush()
    if buffer:
        flush()
    return docs


@dataclass
class PackedBlocks:
    """Blocks of ``block_size`` tokens with per-document position ids."""

    input_ids: np.ndarray  # [n_blocks, block_size] int32
    position_ids: np.ndarray  # [n_blocks, block_size] int32

    def __len__(self) -> int:
        return len(self.input_ids)


def pack(docs: list[np.ndarray], block_size: int) -> PackedBlocks:
    """Concatenate documents and cut into full blocks (the tail shorter than a block is dropped).

    A document cut by a block boundary continues in the next block with positions restarting at 0.
    """
    if not docs:
        return PackedBlocks(np.zeros((0, block_size), np.int32), np.zeros((0, block_size), np.int32))
    ids = np.concatenate(docs)
    pos = np.concatenate([np.arange(len(d), dtype=np.int32) for d in docs])
    n = len(ids) // block_size
    ids = ids[: n * block_size].reshape(n, block_size)
    pos = pos[: n * block_size].reshape(n, block_size).copy()
    for row in pos:
        if row[0] != 0:
            zeros = np.flatnonzero(row == 0)
            end = zeros[0] if len(zeros) else block_size
            row[:end] -= row[0]
    return PackedBlocks(ids, pos)


def labels_for(input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
    """Labels equal to inputs, ignoring each document's first token (position 0) after the first block token."""
    labels = input_ids.astype(np.int64).copy()
    starts = position_ids == 0
    starts[..., 0] = False
    labels[starts] = IGNORE
    return labels


class PackedDataset(Dataset):
    """Torch dataset over packed blocks, in order."""

    def __init__(self, blocks: PackedBlocks):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = np.asarray(self.blocks.input_ids[i])
        pos = np.asarray(self.blocks.position_ids[i])
        return {
            "input_ids": torch.from_numpy(ids.astype(np.int64)),
            "position_ids": torch.from_numpy(pos.astype(np.int64)),
            "labels": torch.from_numpy(labels_for(ids, pos)),
        }

