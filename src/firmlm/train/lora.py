"""LoRA / rsLoRA adapters with target presets; tied embeddings kept tied."""

from __future__ import annotations

from typing import Any

from firmlm.config import LoraConfig

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
EMBED = ["embed_tokens", "lm_head"]
PRESETS = {"attn_only": ATTN, "attn_mlp": ATTN + MLP, "full": ATTN + MLP + EMBED}


def target_modules(preset: str) -> list[str]:
    return list(PRESETS[preset])


def is_embedding_param(name: str) -> bool:
    """Adapter parameters that belong to embed_tokens or lm_head (trained at a lower LR)."""
    return any(f".{m}." in name or name.startswith(f"{m}.") for m in EMBED)


def apply_lora(model: Any, cfg: LoraConfig) -> Any:
    """Wrap a causal LM with a LoRA adapter as configured; returns the peft model."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = target_modules(cfg.targets)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    extra: dict[str, Any] = {}
    if tied and any(t in targets for t in EMBED):
        extra["ensure_weight_tying"] = True
    peft_cfg = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        use_rslora=cfg.rslora,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
        **extra,
    )
    return get_peft_model(model, peft_cfg)


def lean_adapter_saves(peft_model: Any) -> Any:
    """Make every save of this model (checkpoints, final) store only adapter weights: the frozen base
    embedding matrices are never copied, even when embed_tokens/lm_head carry adapters."""
    save = type(peft_model).save_pretrained

    def save_pretrained(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("save_embedding_layers", False)
        return save(peft_model, *args, **kwargs)

    peft_model.save_pretrained = save_pretrained
    return peft_model


def adapter_stats(model: Any) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total}
