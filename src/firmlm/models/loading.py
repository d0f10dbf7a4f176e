"""A model reference → (model, tokenizer), placed by the device/dtype policy when one is given."""

from __future__ import annotations

import logging
from typing import Any

from firmlm.errors import ModelError
from firmlm.models.placement import Placement, Precision, choose_placement
from firmlm.models.references import local_folder, prepare

log = logging.getLogger(__name__)


def placement_for(ref: str, precision: Precision = "auto") -> Placement:
    """The policy's placement for this reference on this machine (sized from its files when they are here)."""
    return choose_placement(precision, local_folder(ref))


def load(ref: str, dtype: Any = None, attn_implementation: str | None = None,
         placement: Placement | None = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for a reference; the tokenizer always has a pad token.

    ``placement`` (see ``placement_for``): the weights' dtype and device, or a device_map across GPUs.
    Without it the model stays on the CPU in ``dtype`` (default fp32): training places the model itself
    through the Trainer. ``dtype`` and ``placement`` are exclusive (ModelError).
    ``attn_implementation``: None (transformers' default, sdpa where available), ``sdpa``, ``eager`` or
    ``flash_attention_2`` (GPU, needs the flash-attn package).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if placement is not None and dtype is not None:
        raise ModelError(f"model '{ref}': load() takes dtype (training) or placement, not both")
    path = prepare(ref)
    where = placement.from_pretrained_kwargs() if placement else {"dtype": dtype or torch.float32}
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, **where, **extra)
    except OSError as exc:
        raise ModelError(f"model '{ref}': cannot load from {path} ({str(exc).splitlines()[0]})") from None
    except (ImportError, ValueError) as exc:
        if not attn_implementation:
            raise
        raise ModelError(f"model '{ref}': attention implementation '{attn_implementation}' unavailable "
                         f"({str(exc).splitlines()[0]})") from None
    if placement is not None:
        log.info("model '%s': %s on %s%s", ref, placement.dtype, placement.device_map or placement.device,
                 " with bf16 autocast" if placement.autocast_bf16 else "")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ModelError(f"model '{ref}': tokenizer has no EOS token (needed between packed documents)")
    return model, tokenizer


def load_tokenizer(ref: str) -> Any:
    """The reference's tokenizer alone (with a pad token), e.g. to cut evaluation windows."""
    from transformers import AutoTokenizer

    path = prepare(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ModelError(f"model '{ref}': cannot load its tokenizer from {path} ({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of the tokenizer's serialized form (vocabulary, merges, normalizer) and its EOS id."""
    import hashlib
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{blob}|eos={tokenizer.eos_token_id}".encode()).hexdigest()[:16]
