"""FLOPs of LoRA training per token, and accelerator peak throughput, for model FLOPs utilisation (MFU).

With a frozen base, a training step costs the forward pass (2 FLOPs per weight per token), the backward
pass through the frozen weights for input gradients only (2 per weight), and the adapters' forward and full
backward (6 per adapter weight). The embedding lookup is a gather, not a matmul, and is left out. Causal
attention adds 2·layers·seq·hidden per token forward (QKᵀ and AV over half the keys on average) and twice
that backward. Recomputation under activation checkpointing is not counted (model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

from typing import Any

import torch

# Dense bf16 peak FLOP/s per device (vendor datasheets, without sparsity).
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "H800": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 125e12,
    "B200": 2250e12,
}


def lora_flops_per_token(model: Any, seq_len: int) -> float:
    """Training FLOPs per token of a peft-wrapped causal LM (frozen base + trainable adapters)."""
    frozen = adapters = 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            adapters += p.numel()
        elif "embed_tokens" not in name:
            frozen += p.numel()
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", 0)
    hidden = getattr(text, "hidden_size", 0)
    attention_fwd = 2 * layers * seq_len * hidden
    return 4.0 * frozen + 6.0 * adapters + 3.0 * attention_fwd


def peak_flops_per_device() -> float | None:
    """Dense bf16 peak of the current CUDA device when known; None on CPUs and unknown devices."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_FLOPS[key]
    return None
