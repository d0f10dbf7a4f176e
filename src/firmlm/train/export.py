"""Merge a trained adapter (embedding adapters included) into its base model and save a plain
transformers folder that transformers and vLLM load without peft."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from firmlm import models
from firmlm.errors import StageError


def load_merged(model_ref: str, adapter_dir: Path):
    """(merged model, tokenizer): the base with the adapter folded into its weights."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise StageError(f"{adapter_dir}: no adapter_config.json; run `firmlm train` first")
    base, tokenizer = models.load(model_ref)
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    tied = bool(getattr(base.config, "tie_word_embeddings", False))
    if not tied:
        return peft_model.merge_and_unload(), tokenizer
    # Tied embeddings: input and output embeddings get different deltas, so after merging they must be
    # separate matrices (merging both into the one shared tensor would add both deltas to each).
    shared = base.get_input_embeddings()
    shared = getattr(shared, "base_layer", shared).weight.detach().clone()
    deltas = {}
    for name, module in peft_model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("embed_tokens", "lm_head") and hasattr(module, "get_delta_weight"):
            deltas[leaf] = sum(module.get_delta_weight(a) for a in module.active_adapters)
    merged = peft_model.merge_and_unload()
    if deltas:
        _set_untied(merged, shared + deltas.get("embed_tokens", 0), shared + deltas.get("lm_head", 0))
    return merged, tokenizer


def _set_untied(model, input_weight, output_weight) -> None:
    import torch

    model.get_input_embeddings().weight = torch.nn.Parameter(input_weight.contiguous())
    model.get_output_embeddings().weight = torch.nn.Parameter(output_weight.contiguous())
    model.config.tie_word_embeddings = False
    text_config = getattr(model.config, "get_text_config", lambda: None)()
    if text_config is not None:
        text_config.tie_word_embeddings = False


def export_merged(model_ref: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Write the merged model to ``out_dir`` (through a temporary folder, renamed into place)."""
    model, tokenizer = load_merged(model_ref, adapter_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
