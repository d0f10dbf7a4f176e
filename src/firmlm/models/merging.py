"""The base model with a trained adapter folded into its weights; tied embeddings stay tied when both layers
carry the same delta (peft's ``ensure_weight_tying``, what firmlm trains) and are untied when they differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from firmlm.errors import StageError
from firmlm.models.loading import load
from firmlm.models.placement import Placement


def load_with_adapter(model_ref: str, adapter_dir: Path | None, placement: Placement | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the base model, or the base with ``adapter_dir`` merged into it."""
    if adapter_dir is None:
        from firmlm.models.loading import load

        return load(model_ref, placement=placement)
    return load_merged(model_ref, adapter_dir, placement)


def load_merged(model_ref: str, adapter_dir: Path, placement: Placement | None = None) -> tuple[Any, Any]:
    """(merged model, tokenizer). The merge runs where ``placement`` puts the base (its device/device_map
    and dtype); None: on the CPU in fp32."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise StageError(f"{adapter_dir}: no adapter_config.json; run `firmlm train` first")
    base, tokenizer = load(model_ref, placement=placement)
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    if not getattr(base.config, "tie_word_embeddings", False):
        return peft_model.merge_and_unload(), tokenizer
    # Tied embeddings: merging both layers' deltas into the one shared tensor would add both to each. With
    # one shared delta (tied adapters) the weight becomes shared + delta, still tied; different deltas need
    # separate matrices.
    shared = base.get_input_embeddings()
    shared = getattr(shared, "base_layer", shared).weight.detach().clone()
    deltas = {}
    for name, module in peft_model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("embed_tokens", "lm_head") and hasattr(module, "get_delta_weight"):
            deltas[leaf] = sum(module.get_delta_weight(a) for a in module.active_adapters)
    merged = peft_model.merge_and_unload()
    inputs, outputs = (_plus(shared, deltas.get(leaf)) for leaf in ("embed_tokens", "lm_head"))
    if not deltas:
        return merged, tokenizer
    if inputs.shape == outputs.shape and torch.equal(inputs.to(outputs.device), outputs):
        retie(merged, inputs)
    else:
        untie(merged, inputs, outputs)
    return merged, tokenizer


def retie(model: Any, weight: Any) -> None:
    """One embedding matrix for input and output, holding ``weight``."""
    embed = model.get_input_embeddings()
    with torch.no_grad():
        embed.weight.copy_(weight.to(embed.weight.device, embed.weight.dtype))
    model.get_output_embeddings().weight = embed.weight


def _plus(shared: Any, delta: Any) -> Any:
    """``shared + delta`` on the delta's device (embeddings and lm_head may sit on different GPUs)."""
    return shared if delta is None else shared.to(delta.device) + delta


def untie(model: Any, input_weight: Any, output_weight: Any) -> None:
    """Give the model separate input and output embedding matrices and mark the config untied."""
    import torch

    pairs = ((model.get_input_embeddings(), input_weight), (model.get_output_embeddings(), output_weight))
    for module, weight in pairs:
        device = module.weight.device  # stay where the model is placed (offloaded "meta" weights: unchanged)
        module.weight = torch.nn.Parameter((weight if device.type == "meta" else weight.to(device)).contiguous())
    model.config.tie_word_embeddings = False
    text_config = getattr(model.config, "get_text_config", lambda: None)()
    if text_config is not None:
        text_config.tie_word_embeddings = False
