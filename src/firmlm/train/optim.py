"""AdamW with a separate LR group for embedding adapters, and a cosine schedule with warm-up and floor."""

from __future__ import annotations

import math
from typing import Any

import torch

from firmlm.config import TrainConfig
from firmlm.train.lora import is_embedding_param


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Main group at ``lr`` with weight decay; embed_tokens/lm_head adapters at ``lr * embed_lr_ratio``, no decay."""
    main, embed = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (embed if is_embedding_param(name) else main).append(p)
    groups = [{"params": main, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "main"}]
    if embed:
        groups.append({"params": embed, "lr": cfg.lr * cfg.embed_lr_ratio, "weight_decay": 0.0, "name": "embed"})
    return groups


def cosine_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """Multiplier of the peak LR at ``step``: linear warm-up, then cosine down to ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    groups = param_groups(model, cfg)
    from firmlm.train.trainer import GuardedAdamW

    opt = GuardedAdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    warmup = int(round(cfg.warmup_ratio * cfg.max_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cosine_factor(s, cfg.max_steps, warmup, cfg.min_lr_ratio)
    )
    return opt, sched
