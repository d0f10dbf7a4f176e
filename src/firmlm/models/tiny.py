"""Tiny random models for tests: a byte-level tokenizer, small configs, deterministic weights, no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_ARCHS = ("llama", "olmo3", "qwen2")  # qwen2 ties its embeddings, the others do not


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


def tiny_config(arch: str, vocab_size: int, eos: int, pad: int, bos: int) -> Any:
    """A 2-layer, 64-wide config of ``arch``; OLMo-3 gets explicit ``layer_types`` so full attention runs."""
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


def build_tiny(arch: str, out: Path) -> None:
    """Save a tiny ``arch`` model (seeded weights, caller's RNG untouched) and its tokenizer into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = byte_level_tokenizer()
    config = tiny_config(
        arch, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id
    )
    with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the caller's RNG
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
