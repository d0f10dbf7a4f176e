"""Merging an adapter into the base: exact logits, and tied embeddings untied when both carry adapters."""

import pytest
import torch

from firmlm import models
from firmlm.config import LoraConfig
from firmlm.errors import StageError
from firmlm.train.lora import apply_lora

CODE = "static inline void gpio_set(int pin) { GPIOA->BSRR = 1u << pin; }"


def _trained_adapter(arch: str, folder, tied_adapters: bool = True):
    base, tok = models.load(f"tiny:{arch}")
    if tied_adapters:  # firmlm's way: lm_head's adapter shares embed_tokens' storage
        peft_model = apply_lora(base, LoraConfig(rank=4, alpha=8, targets="full", dropout=0.0))
    else:  # an adapter trained elsewhere, without peft's ensure_weight_tying: two different deltas
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        peft_model = get_peft_model(base, PeftLoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                         target_modules=["q_proj", "embed_tokens", "lm_head"]))
    with torch.no_grad():  # non-trivial adapters (B starts at zero)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name:
                p.normal_(0, 0.05)
    peft_model.save_pretrained(folder)
    ids = tok(CODE, return_tensors="pt").input_ids
    peft_model.eval()
    with torch.no_grad():
        return ids, peft_model(input_ids=ids).logits


@pytest.mark.parametrize("placement", [None, models.Placement("cpu", "float32")])
def test_tied_qwen2_with_tied_adapters_stays_tied_with_the_adapter_logits(placement, tmp_path):
    ids, expected = _trained_adapter("qwen2", tmp_path / "adapter")
    merged, _ = models.load_merged("tiny:qwen2", tmp_path / "adapter", placement)
    embed, head = merged.get_input_embeddings().weight, merged.get_output_embeddings().weight
    assert embed.data_ptr() == head.data_ptr()  # one delta, applied once
    base, _ = models.load("tiny:qwen2")
    assert not torch.allclose(embed, base.get_input_embeddings().weight, atol=1e-3)  # the delta is in
    assert embed.dtype == torch.float32 and embed.device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_tied_qwen2_with_different_deltas_is_untied_with_the_adapter_logits(tmp_path):
    ids, expected = _trained_adapter("qwen2", tmp_path / "adapter", tied_adapters=False)
    merged, _ = models.load_merged("tiny:qwen2", tmp_path / "adapter")
    embed, head = merged.get_input_embeddings().weight, merged.get_output_embeddings().weight
    assert embed.data_ptr() != head.data_ptr() and merged.config.tie_word_embeddings is False
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_untied_llama_merges_to_the_adapter_logits(tmp_path):
    ids, expected = _trained_adapter("llama", tmp_path / "adapter")
    merged, _ = models.load_merged("tiny:llama", tmp_path / "adapter", models.placement_for("tiny:llama", "fp32"))
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_a_folder_without_an_adapter_is_named(tmp_path):
    with pytest.raises(StageError, match=str(tmp_path)):
        models.load_merged("tiny:llama", tmp_path)
