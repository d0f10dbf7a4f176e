"""Check, on the first training batches, that attention stays inside each packed document.

Packed blocks carry ``position_ids`` that restart at 0 per document and no ``attention_mask``; transformers
then builds a block-diagonal causal mask (or, for flash attention, varlen boundaries from the positions).
Anything that adds an ``attention_mask`` (a padding collator), turns on the KV cache, or an attention
implementation outside transformers' mask registry silently falls back to plain causal attention across
documents. The check captures the mask the first decoder layer receives (and passes on to its attention
layer; hooked on the layer, which stays outside ``torch.compile``'s code with ``train.compile``) and compares it
with the block-diagonal mask the positions imply.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from firmlm.errors import StageError

FLASH_HINT = "flash"


def first_attention_module(model: torch.nn.Module) -> torch.nn.Module | None:
    return next((m for n, m in model.named_modules() if n.endswith("self_attn")), None)


def first_decoder_layer(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module holding the first attention layer (the decoder layer that passes it the mask)."""
    modules = dict(model.named_modules())
    name = next((n for n in modules if n.endswith("self_attn")), None)
    if name is None:
        return None
    return modules.get(name.rsplit(".", 1)[0]) if "." in name else modules[name]


@contextmanager
def capture_attention_inputs(model: torch.nn.Module) -> Iterator[dict[str, Any]]:
    """Record the keyword arguments of the first call of the model's first decoder layer (what it passes to its
    attention layer: the mask and the position ids)."""
    seen: dict[str, Any] = {}
    module = first_decoder_layer(model)
    if module is None:
        yield seen
        return

    def hook(_module, _args, kwargs):
        if not seen:
            seen.update(kwargs)
            seen["_called"] = True

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def expected_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """[batch, q, k] bool: causal and within the same document (documents start where the position is 0)."""
    doc = torch.cumsum((position_ids == 0).long(), dim=-1)
    same = doc.unsqueeze(-1) == doc.unsqueeze(-2)
    n = position_ids.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=position_ids.device).tril()
    return same & causal


def allowed(mask: torch.Tensor) -> torch.Tensor:
    """A 4-D attention mask (bool: True attends; float: 0 attends, large negative blocks) as [batch, q, k] bool."""
    m = mask[:, 0] if mask.dim() == 4 else mask
    if m.dtype == torch.bool:
        return m
    return m > torch.finfo(m.dtype).min / 2


def verify_document_masking(seen: dict[str, Any], inputs: dict[str, torch.Tensor], attn_implementation: str | None) -> bool:
    """Raise StageError when the batch's attention can cross documents. Returns whether the batch proved it:
    a batch without a document boundary inside a block cannot tell plain causal from document masking."""
    if not seen.get("_called"):
        raise StageError("train: no attention layer named '*self_attn' was called; cannot verify document masking")
    problems = "a padding collator adding attention_mask, use_cache=True, or an unsupported attention kernel"
    if "attention_mask" in inputs:
        raise StageError(f"train: the batch carries an attention_mask, which replaces document masking of packed "
                         f"blocks with plain causal attention across documents (cause: {problems})")
    position_ids = inputs["position_ids"]
    if not bool((position_ids[:, 1:] == 0).any()):
        return False
    mask = seen.get("attention_mask")
    if FLASH_HINT in (attn_implementation or ""):
        if mask is None and seen.get("position_ids") is not None:
            return True  # flash attention derives document boundaries from position_ids
        raise StageError(f"train: {attn_implementation} received no position_ids (or a mask): packed documents "
                         f"would attend across boundaries (cause: {problems})")
    if mask is None or not torch.is_tensor(mask) or mask.dim() not in (3, 4):
        raise StageError(f"train: attention ran without a block-diagonal mask (implementation "
                         f"{attn_implementation or 'default'}): packed documents attend across boundaries "
                         f"(cause: {problems})")
    got = allowed(mask.detach())
    want = expected_mask(position_ids.to(got.device))
    if got.shape[-2:] != want.shape[-2:] or not torch.equal(got.expand_as(want), want):
        raise StageError(f"train: the attention mask of the first batch is not block-diagonal over the packed "
                         f"documents (implementation {attn_implementation or 'default'}; cause: {problems})")
    return True
