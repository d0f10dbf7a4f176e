"""AdamW with a separate LR group for embedding adapters, a guard against non-finite steps, and a cosine
schedule with warm-up and floor.

Tied adapters: with tied embeddings and embedding targets, peft ties lm_head's adapter to embed_tokens' by
sharing storage (lm_head.lora_A is a transposed view of embed_tokens.lora_embedding_B, and so on). Each view
is its own Parameter with its own gradient, so an optimizer holding both would update the shared tensor
twice with two sets of moments (about twice the embedding LR). The optimizer holds one parameter per
storage; before each step the gradient of every other view is folded into it through the view's strides,
so the update uses the true gradient of the shared tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from firmlm.config import TrainConfig
from firmlm.distributed import any_rank_tensor
from firmlm.train.lora import is_embedding_param


@dataclass(frozen=True)
class TiedView:
    """A trainable parameter that shares storage with ``owner`` (the one the optimizer holds)."""

    name: str
    param: torch.nn.Parameter
    owner: torch.nn.Parameter


def _storage_key(p: torch.Tensor) -> tuple[str, int, int] | None:
    """Where a parameter's values live: views of one storage (a tied adapter and its transpose) share it.
    Empty local shards (FSDP ranks that do not hold a parameter) have no key."""
    local = p.to_local() if hasattr(p, "to_local") else p
    if local.numel() == 0:
        return None
    return (str(local.device), local.data_ptr(), local.numel())


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> tuple[list[dict[str, Any]], list[TiedView]]:
    """Main group at ``lr`` with weight decay; embed_tokens/lm_head adapters at ``lr * embed_lr_ratio``, no
    decay. Each storage appears once; the other views of a shared storage are returned as TiedViews."""
    main, embed, ties = [], [], []
    owners: dict[tuple[str, int, int], torch.nn.Parameter] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = _storage_key(p)
        if key is not None and key in owners:
            ties.append(TiedView(name, p, owners[key]))
            continue
        if key is not None:
            owners[key] = p
        (embed if is_embedding_param(name) else main).append(p)
    groups = [{"params": main, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "main"}]
    if embed:
        groups.append({"params": embed, "lr": cfg.lr * cfg.embed_lr_ratio, "weight_decay": 0.0, "name": "embed"})
    return groups, ties


def fold_tied_gradients(ties: list[TiedView]) -> None:
    """Add each tied view's gradient into its owner's gradient (mapped through the view's strides), then
    clear the view's gradient."""
    for tie in ties:
        grad = tie.param.grad
        if grad is None:
            continue
        owner = tie.owner
        if owner.grad is None:
            owner.grad = torch.zeros_like(owner)
        if owner.grad.stride() != owner.stride():
            raise RuntimeError(f"{tie.name}: the owner's gradient layout differs from its parameter's")
        offset = tie.param.storage_offset() - owner.storage_offset() + owner.grad.storage_offset()
        owner.grad.as_strided(tie.param.shape, tie.param.stride(), offset).add_(grad.to(owner.grad.dtype))
        tie.param.grad = None


class GuardedAdamW(torch.optim.AdamW):
    """AdamW that skips the update (and clears the gradients) when any gradient is NaN/Inf on any rank.

    The finiteness check costs one device-to-host sync per step (not one per parameter), and is OR-ed over
    ranks so that sharded optimizers (FSDP, ZeRO), where each rank sees a slice of the gradients, skip
    together. Tied views are folded into their owners first.
    """

    def __init__(self, params, ties: list[TiedView] | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.ties = list(ties or [])
        self.skipped_steps = 0

    def has_nonfinite_grad(self) -> bool:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            local = torch.zeros((), dtype=torch.bool)
        else:
            local = torch.stack([~torch.isfinite(g).all() for g in grads]).any()
        return bool(any_rank_tensor(local))

    @torch.no_grad()
    def step(self, closure=None):
        fold_tied_gradients(self.ties)
        if self.has_nonfinite_grad():
            self.skipped_steps += 1
            self.zero_grad(set_to_none=True)
            return None
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        for tie in self.ties:
            tie.param.grad = None


def cosine_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """Multiplier of the peak LR at ``step``: linear warm-up, then cosine down to ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> GuardedAdamW:
    groups, ties = param_groups(model, cfg)
    return GuardedAdamW(groups, ties=ties, betas=(0.9, 0.999), eps=1e-8)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = int(round(cfg.warmup_ratio * cfg.max_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_factor(s, cfg.max_steps, warmup, cfg.min_lr_ratio)
    )
