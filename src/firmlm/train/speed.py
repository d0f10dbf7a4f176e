"""What makes the training loop fast without changing what it computes (measured with
benchmarks/train_throughput.py against a plain transformers Trainer + peft on the same config):

- ``choose_threads``: on CPU, all cores, or fewer where a short probe runs faster with fewer. Cores shared with
  other work make every parallel region wait for the thread that was descheduled: two threads measured 5x
  slower than one per training step on a busy 2-core machine, and ~1.8x faster on an idle one.
- ``store_frozen_weights_bf16``: under CPU bf16 autocast every frozen base weight was cast to bf16 at every
  forward; storing the adapted layers' frozen weights in bf16 gives the same matmuls (autocast rounds the same
  way) without the casts, and halves their memory.
- ``compile_decoder_layers``: ``torch.compile`` of each decoder layer's forward (regional compilation: the
  layers share their code, so one compilation serves all of them); fuses the norms, rotary embedding,
  activation, residual adds and the casts around the matmuls. Hooks on the layers themselves stay outside the
  compiled code (the document-masking check registers one). With sdpa, ``use_masked_sdpa`` first makes every
  batch carry a mask tensor: transformers passes none for a batch without a document boundary (plain causal),
  and each switch between the two compiled another variant mid-run (33 s on 2 cores).
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import time
from typing import Any

import torch

log = logging.getLogger(__name__)
PROBE_SECONDS = 0.08  # per candidate and round
PROBE_ROUNDS = 3
CXX_COMPILERS = ("g++", "c++", "clang++")  # what torch inductor's CPU backend builds its kernels with
PREFER_MORE = 1.1  # fewer threads are chosen only when they run this much faster


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_candidates(cores: int) -> list[int]:
    return sorted({1, max(1, cores // 2), cores})


def _probe_rate(threads: int, dtype: torch.dtype, seconds: float) -> float:
    """Work units per second of a small mix of what a training step does: a matmul of a LoRA-adapted layer's
    shape and elementwise passes over its output."""
    torch.set_num_threads(threads)
    a = torch.randn(512, 576, dtype=dtype)
    w = torch.randn(1536, 576, dtype=dtype)
    y = torch.empty(512, 1536, dtype=dtype)
    done, start = 0, time.perf_counter()
    while True:
        torch.matmul(a, w.T, out=y)
        torch.nn.functional.silu(y).mul_(y).add_(1.0)
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def probe_threads(cores: int, bf16: bool, seconds: float = PROBE_SECONDS, rounds: int = PROBE_ROUNDS) -> tuple[int, dict[int, float]]:
    """The thread count with the best median probe rate (more threads unless fewer are clearly faster)."""
    candidates = thread_candidates(cores)
    if len(candidates) == 1:
        return candidates[0], {}
    dtype = torch.bfloat16 if bf16 else torch.float32
    rates: dict[int, list[float]] = {t: [] for t in candidates}
    for _ in range(rounds):
        for t in candidates:
            rates[t].append(_probe_rate(t, dtype, seconds))
    median = {t: statistics.median(r) for t, r in rates.items()}
    best = max(candidates)
    for t in sorted(candidates, reverse=True):
        if median[t] > PREFER_MORE * median[best]:
            best = t
    return best, {t: round(v, 1) for t, v in median.items()}


def choose_threads(setting: int | str, bf16: bool, processes: int = 1) -> tuple[int, dict[str, Any]]:
    """Threads for this process: the configured number, or with ``auto`` the probe's pick among 1, half and
    all of this process's share of the cores (GPU runs and several processes skip the probe)."""
    share = max(1, available_cores() // max(1, processes))
    if setting != "auto":
        threads, how = int(setting), "configured"
        probe: dict[int, float] = {}
    elif torch.cuda.is_available() or processes > 1:
        threads, how, probe = share, "all cores", {}
    else:
        threads, probe = probe_threads(share, bf16)
        how = "probe"
    torch.set_num_threads(threads)
    if probe:
        log.info("CPU threads: %d of %d (probe, work/s by threads: %s)", threads, share, probe)
    return threads, {"threads": threads, "of_cores": share, "chosen_by": how,
                     "probe_rates": {str(k): v for k, v in probe.items()}}


def _embedding_storages(model: torch.nn.Module) -> set[int]:
    return {m.weight.data_ptr() for m in model.modules() if isinstance(m, torch.nn.Embedding)}


def store_frozen_weights_bf16(model: torch.nn.Module) -> int:
    """Store the frozen base weights of LoRA-adapted Linear layers in bf16 (for CPU bf16 autocast only, where
    they are cast to bf16 at every use anyway). Weights shared with an embedding (a tied lm_head) stay fp32:
    the embedding output must not change. Returns the number of weights converted."""
    from peft.tuners.lora import LoraLayer

    embeddings = _embedding_storages(model)
    converted = 0
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if not isinstance(module, LoraLayer) or type(base) is not torch.nn.Linear:
            continue
        weight = base.weight
        if weight.requires_grad or weight.dtype != torch.float32 or weight.data_ptr() in embeddings:
            continue
        weight.data = weight.data.to(torch.bfloat16)
        converted += 1
    return converted


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def compile_decoder_layers(model: torch.nn.Module) -> int:
    """Compile each decoder layer's ``forward`` (not the module call: the layer's own hooks stay eager).
    Shapes are static (packed blocks); the first forward compiles, ~1 minute on 2 CPU cores, then cached."""
    layers = decoder_layers(model)
    if not layers:
        log.warning("train.compile: no decoder layers (GradientCheckpointingLayer) found; running uncompiled")
        return 0
    if not torch.cuda.is_available() and not any(shutil.which(c) for c in CXX_COMPILERS):
        log.warning("train.compile: no C++ compiler (%s) for torch.compile's CPU code; running uncompiled "
                    "(apt-get install g++)", ", ".join(CXX_COMPILERS))
        return 0
    for layer in layers:
        layer.forward = torch.compile(layer.forward, dynamic=False)
    return len(layers)


MASKED_SDPA = "firmlm_sdpa"


def _sdpa_mask_always(*args: Any, **kwargs: Any) -> Any:
    from transformers.masking_utils import sdpa_mask

    kwargs["allow_is_causal_skip"] = False
    mask = sdpa_mask(*args, **kwargs)
    return mask.contiguous() if mask is not None else None  # one layout: a plain causal mask comes expanded


def use_masked_sdpa(model: torch.nn.Module) -> bool:
    """Switch a model using sdpa to the same kernel with its mask always materialized (document-masked or
    plain causal, a tensor either way). Measured on CPU: the flash kernel takes the same time with a mask."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface

    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(MASKED_SDPA, sdpa_attention_forward)
    AttentionMaskInterface.register(MASKED_SDPA, _sdpa_mask_always)
    model.set_attn_implementation(MASKED_SDPA)
    return config._attn_implementation == MASKED_SDPA
