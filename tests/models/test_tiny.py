"""Tiny test models: deterministic, trainable, byte-exact tokenization."""

import pytest
import torch

from firmlm import models


@pytest.mark.parametrize("arch", models.TINY_ARCHS)
def test_tiny_models_are_deterministic_and_train(arch, tmp_path, monkeypatch):
    model, tok = models.load(f"tiny:{arch}")
    ids = tok("int main(void) { return 0; }", return_tensors="pt").input_ids
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert tok.decode(ids[0]) == "int main(void) { return 0; }"
    monkeypatch.setenv("FIRMLM_CACHE", str(tmp_path))  # a fresh build gives identical weights
    again, _ = models.load(f"tiny:{arch}")
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_byte_level_tokenizer_round_trips_any_bytes_one_token_each():
    tok = models.byte_level_tokenizer()
    text = "\tµs = 0x1F; /* Ünïcode → ok */\r\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8")) and max(ids) < 256
    assert tok.decode(ids) == text
    assert len(tok) == 259 and tok.eos_token_id == 256 and tok.pad_token_id == 257


def test_only_the_qwen2_tiny_config_ties_its_embeddings():
    tied = {arch: models.tiny_config(arch, 259, 256, 257, 258).tie_word_embeddings for arch in models.TINY_ARCHS}
    assert tied == {"llama": False, "olmo3": False, "qwen2": True}
