"""The LM head and the causal-LM loss fused, in chunks of tokens: the same figures as transformers' loss
(logits in the compute dtype, upcast to fp32, cross-entropy over the shifted labels, sum / num_items) without
materializing fp32 logits, their log-softmax and its gradient for the whole micro-batch.

The logits of each chunk are kept in the compute dtype (bf16 under autocast: half of what the unfused path
keeps in fp32) for the backward pass; the softmax statistics and gradients come from small compiled kernels
that read them once. Measured on CPU (2048 tokens, 49k vocabulary): 0.9 s instead of 1.8 s per step.
Used by FirmlmTrainer.compute_loss with ``train.compile`` on one process, for the model types listed below
whose head is a frozen Linear without logit scaling or soft-capping.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from firmlm.train import predictions

log = logging.getLogger(__name__)
IGNORE = -100
CHUNK_BYTES = 256 << 20  # fp32 logits of one chunk
SUPPORTED = {"llama", "qwen2", "qwen3", "mistral", "olmo2", "olmo3"}


def _stats(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lf = logits.float()
    return torch.logsumexp(lf, -1), lf.gather(1, labels[:, None]).squeeze(1)


def _grad(logits: torch.Tensor, lse: torch.Tensor, labels: torch.Tensor, row_scale: torch.Tensor) -> torch.Tensor:
    p = torch.exp(logits.float() - lse[:, None])
    onehot = torch.zeros_like(p).scatter_(1, labels[:, None], 1.0)
    return ((p - onehot) * row_scale[:, None]).to(logits.dtype)


_KERNELS: dict[bool, tuple[Any, Any]] = {False: (_stats, _grad)}


def _kernels(compiled: bool) -> tuple[Any, Any]:
    if compiled not in _KERNELS:
        _KERNELS[compiled] = (torch.compile(_stats, dynamic=False), torch.compile(_grad, dynamic=False))
    return _KERNELS[compiled]


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, denom, chunk, compiled):  # noqa: ANN001, ANN205
        dtype = _compute_dtype(hidden)
        stats, _ = _kernels(compiled)
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            valid = labels != IGNORE
            safe = labels.clamp(min=0)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            logits, lses = [], []
            for start in range(0, h.shape[0], chunk):
                part = h[start:start + chunk] @ w.T
                lse, target = stats(part, safe[start:start + chunk])
                total += ((lse - target) * valid[start:start + chunk]).sum()
                logits.append(part)
                lses.append(lse)
        ctx.save_for_backward(w, safe, valid)
        ctx.logits, ctx.lses, ctx.chunk, ctx.compiled = logits, lses, chunk, compiled
        ctx.denom, ctx.hidden_dtype = denom, hidden.dtype
        return total / denom

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        w, safe, valid = ctx.saved_tensors
        _, grad_kernel = _kernels(ctx.compiled)
        scale = (grad_out / ctx.denom).float()
        parts = []
        with torch.autocast(w.device.type, enabled=False):
            for i, start in enumerate(range(0, safe.shape[0], ctx.chunk)):
                rows = valid[start:start + ctx.chunk].float() * scale
                g = grad_kernel(ctx.logits[i], ctx.lses[i], safe[start:start + ctx.chunk], rows)
                ctx.logits[i] = None
                parts.append((g @ w).to(ctx.hidden_dtype))
        ctx.logits = ctx.lses = None
        return torch.cat(parts), None, None, None, None, None


def chunked_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                    num_items_in_batch: torch.Tensor | int | None = None, compiled: bool = False,
                    chunk: int | None = None) -> torch.Tensor:
    """Causal-LM loss of ``hidden`` [batch, seq, dim] through a frozen head ``weight`` [vocab, dim]: labels are
    shifted left by one (the last position of each row predicts nothing); the sum over predicted tokens is divided
    by ``num_items_in_batch`` when given, else averaged (as transformers' ForCausalLMLoss)."""
    shifted = F.pad(labels, (0, 1), value=IGNORE)[..., 1:].reshape(-1).to(hidden.device)
    flat = hidden.reshape(-1, hidden.shape[-1])
    if num_items_in_batch is None:
        denom = (shifted != IGNORE).sum().clamp(min=1).float()
    else:
        denom = torch.as_tensor(num_items_in_batch, dtype=torch.float32, device=hidden.device)
    most = chunk or max(1, CHUNK_BYTES // (4 * weight.shape[0]))
    pieces = -(-flat.shape[0] // most)
    rows = -(-flat.shape[0] // pieces)  # equal chunks: one compiled shape
    return _ChunkedHeadLoss.apply(flat, weight, shifted, denom, rows, compiled)


class FusedHeadLoss:
    """Computes a training micro-batch's loss through the backbone and the chunked head (``None`` from
    ``for_model`` where the model's own forward must be used)."""

    def __init__(self, causal_lm: torch.nn.Module, compiled: bool):
        self.causal_lm = causal_lm
        self.backbone = causal_lm.get_decoder()
        self.head = causal_lm.lm_head
        self.compiled = compiled

    @classmethod
    def for_model(cls, model: torch.nn.Module, compiled: bool = True) -> FusedHeadLoss | None:
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(causal_lm, "config", None)
        head = getattr(causal_lm, "lm_head", None)
        reason = None
        if getattr(config, "model_type", None) not in SUPPORTED:
            reason = f"model type {getattr(config, 'model_type', None)!r} (fused for {sorted(SUPPORTED)})"
        elif type(head) is not torch.nn.Linear or head.bias is not None or head.weight.requires_grad:
            reason = "the LM head carries an adapter or a bias"
        elif getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
            reason = "the model scales or caps its logits"
        elif not hasattr(causal_lm, "get_decoder"):
            reason = "no decoder to call without the head"
        if reason is not None:
            log.info("fused LM-head loss off: %s", reason)
            return None
        return cls(causal_lm, compiled)

    def __call__(self, inputs: dict[str, torch.Tensor], num_items_in_batch: torch.Tensor | int | None,
                 with_predictions: bool = False):
        """The loss; with ``with_predictions``, (loss, :func:`~firmlm.train.predictions.prediction_stats`), the
        sample's logits computed once more from its hidden states without gradients."""
        labels = inputs["labels"]
        features = {k: v for k, v in inputs.items() if k != "labels"}
        hidden = self.backbone(**features, use_cache=False).last_hidden_state
        loss = chunked_lm_loss(hidden, self.head.weight, labels, num_items_in_batch, compiled=self.compiled)
        if not with_predictions:
            return loss
        with torch.no_grad():
            rows, targets = predictions.shifted(hidden, labels)
            keep = (targets != IGNORE).nonzero().squeeze(1)[:predictions.SAMPLE_ROWS]
            dtype = _compute_dtype(hidden)
            logits = rows[keep].to(dtype) @ self.head.weight.to(dtype).T
            return loss, predictions.prediction_stats(logits, targets[keep])
