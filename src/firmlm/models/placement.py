"""One device and dtype policy for loading models (evaluation, serving, export).

- CUDA visible: weights on ``cuda`` in bf16 when the GPU computes bf16 natively (Ampere or newer), else fp32
  (fp16 is never chosen: it overflows in the activations of some models, Qwen2 and Gemma among them, and
  perplexities would then depend on the card). ``device_map="auto"`` (accelerate spreads the layers over
  the GPUs, then CPU) only when the weights would take more than ``FIT_FRACTION`` of the current GPU's free
  memory, or when their size is unknown (a hub id not downloaded yet).
- CPU only: fp32 weights; ``autocast_bf16`` (perplexity passes under bf16 autocast) only where the CPU has
  native bf16 (AVX512-BF16/AMX): elsewhere bf16 is emulated and measured 50-80x slower than fp32. Greedy
  decoding ignores it (memory-bound: autocast re-casts the weights at every token and was slower).
- ``precision`` ('auto' | 'bf16' | 'fp32', as ``train.precision``): ``fp32`` forces fp32 everywhere; ``bf16``
  asks for bf16 even on a CPU without native support (autocast), and on a GPU without native bf16 falls
  back to fp32 with a warning.

Training does not use this: the Trainer places the model itself.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from firmlm.errors import ConfigError

log = logging.getLogger(__name__)

Precision = Literal["auto", "bf16", "fp32"]
CPUINFO = Path("/proc/cpuinfo")
FIT_FRACTION = 0.8  # weights may take this share of one GPU's free memory; the rest: activations, logits, cache
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Placement:
    """Where and in which dtype a model is loaded, and whether its forward passes run under bf16 autocast."""

    device: str  # "cuda" (the current device / LOCAL_RANK) or "cpu"
    dtype: str  # torch dtype name of the weights: "float32" | "bfloat16"
    device_map: str | None = None  # "auto": spread over GPUs (then CPU) by accelerate; None: all on `device`
    autocast_bf16: bool = False  # CPU with native bf16: fp32 weights, bf16 matmuls

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def from_pretrained_kwargs(self) -> dict:
        """``dtype`` and ``device_map`` for ``from_pretrained`` (CPU: no device_map, as before)."""
        device_map = self.device_map or (self.device if self.device != "cpu" else None)
        return {"dtype": self.torch_dtype, **({"device_map": device_map} if device_map else {})}


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated
    and measured here 50-80x slower than fp32 in the backward pass."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def choose_placement(precision: Precision = "auto", model_dir: Path | None = None, *,
                     cpuinfo: Path = CPUINFO) -> Placement:
    """The placement for a model whose files are in ``model_dir`` (None or absent: size unknown)."""
    import torch

    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision {precision!r}: expected 'auto', 'bf16' or 'fp32' (as train.precision)")
    if not torch.cuda.is_available():
        autocast = precision == "bf16" or (precision == "auto" and cpu_has_native_bf16(cpuinfo))
        return Placement("cpu", "float32", None, autocast)
    bf16 = precision != "fp32" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "bf16" and not bf16:
        log.warning("precision bf16: this GPU has no native bf16; loading in fp32")
    dtype = "bfloat16" if bf16 else "float32"
    need = weights_nbytes(model_dir, dtype) if model_dir is not None else None
    free, _total = torch.cuda.mem_get_info()
    spread = need is None or need > FIT_FRACTION * free
    if spread:
        log.info("model weights %s; GPU free %.1f GiB: device_map=auto",
                 "of unknown size" if need is None else f"{need / 2**30:.1f} GiB", free / 2**30)
    return Placement("cuda", dtype, "auto" if spread else None, False)


def weights_nbytes(model_dir: Path, dtype: str) -> int | None:
    """Bytes the model's weights take in ``dtype``: exact from safetensors headers, else estimated from
    config.json; None when the folder holds neither."""
    count = parameter_count(model_dir)
    return None if count is None else count * DTYPE_BYTES[dtype]


def parameter_count(model_dir: Path) -> int | None:
    """Parameters in the folder's ``*.safetensors`` (headers only), else estimated from ``config.json``."""
    files = sorted(model_dir.glob("*.safetensors")) if model_dir.is_dir() else []
    try:
        if files:
            return sum(_safetensors_parameters(f) for f in files)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        log.warning("%s: unreadable safetensors header (%s); estimating the size from config.json", model_dir, exc)
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config_parameter_count(config)


def _safetensors_parameters(path: Path) -> int:
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > path.stat().st_size - 8:
            raise ValueError(f"header length {size} exceeds the file")
        header = json.loads(f.read(size))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def config_parameter_count(config: dict) -> int | None:
    """Estimate of a decoder-only transformer's parameters from its config (text part; MoE experts counted)."""
    c = config.get("text_config") or config
    try:
        hidden, layers, vocab = int(c["hidden_size"]), int(c["num_hidden_layers"]), int(c["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    heads = int(c.get("num_attention_heads") or 1)
    head_dim = int(c.get("head_dim") or hidden // heads)
    kv_heads = int(c.get("num_key_value_heads") or heads)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    experts = int(c.get("num_local_experts") or c.get("num_experts") or 1)
    intermediate = int(c.get("moe_intermediate_size") if experts > 1 and c.get("moe_intermediate_size")
                       else c.get("intermediate_size") or 4 * hidden)
    mlp = 3 * hidden * intermediate * experts
    embeddings = vocab * hidden * (1 if c.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2)
    return layers * (attention + mlp) + embeddings
