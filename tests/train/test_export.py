import pytest
import torch
from transformers import AutoModelForCausalLM

from firmlm import models
from firmlm.config import LoraConfig
from firmlm.train.export import export_merged
from firmlm.train.lora import apply_lora


@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # qwen2 tiny has tied embeddings
def test_merged_model_matches_adapter_logits_with_embedding_adapters(arch, tmp_path):
    base, tok = models.load(f"tiny:{arch}")
    peft_model = apply_lora(base, LoraConfig(rank=4, alpha=8, targets="full", dropout=0.0))
    with torch.no_grad():  # make the adapters non-trivial (B starts at zero)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name:
                p.normal_(0, 0.05)
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    ids = tok("static inline void gpio_set(int pin) { GPIOA->BSRR = 1u << pin; }", return_tensors="pt").input_ids
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    out = export_merged(f"tiny:{arch}", adapter_dir, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        got = plain(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    fresh, _ = models.load(f"tiny:{arch}")
    with torch.no_grad():
        assert not torch.allclose(fresh(input_ids=ids).logits, expected, atol=1e-3)
    assert not any("lora" in k for k in plain.state_dict())
