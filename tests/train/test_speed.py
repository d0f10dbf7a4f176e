"""The speed-ups of the training loop change how it computes, not what: same losses and gradients (up to
rounding), document masking kept, tied embeddings untouched."""

import json

import numpy as np
import pytest
import torch

from firmlm import models
from firmlm.config import LoraConfig
from firmlm.errors import StageError
from firmlm.stages import run_stages
from firmlm.train.head_loss import FusedHeadLoss, chunked_lm_loss
from firmlm.train.lora import apply_lora
from firmlm.train.packing import PackedDataset, pack
from firmlm.train.speed import MASKED_SDPA, store_frozen_weights_bf16, use_masked_sdpa


def _batch(tok, texts: list[str], block: int | None = None) -> dict[str, torch.Tensor]:
    docs = [np.asarray(tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], np.int32) for t in texts]
    blocks = pack(docs, block or sum(len(d) for d in docs))
    item = PackedDataset(blocks)[0]
    return {k: v[None] for k, v in item.items()}


def _adapted(arch: str = "llama", targets: str = "attn_mlp"):
    model, tok = models.load(f"tiny:{arch}")
    model.config.use_cache = False
    torch.manual_seed(0)
    model = apply_lora(model, LoraConfig(rank=4, alpha=8, dropout=0.0, targets=targets))
    for name, p in model.named_parameters():  # non-zero B: every adapter gets a gradient
        if "lora_B" in name or "lora_embedding_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model, tok


def _loss_and_grads(model, fn):
    model.zero_grad(set_to_none=True)
    loss = fn()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


TEXTS = ["int main(void) { return 0; }", "#define GPIOA_BASE 0x40020000UL", "void SysTick_Handler(void) { ticks++; }"]


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("num_items", [None, 37])
def test_fused_head_loss_equals_the_models_loss(autocast, num_items):
    model, tok = _adapted()
    inputs = _batch(tok, TEXTS)
    fused = FusedHeadLoss.for_model(model, compiled=False)
    assert fused is not None
    kwargs = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        ref, ref_grads = _loss_and_grads(model, lambda: model(**inputs, **kwargs).loss)
        got, got_grads = _loss_and_grads(model, lambda: fused(inputs, kwargs.get("num_items_in_batch")))
    tol = {"rtol": 1e-3, "atol": 1e-5} if autocast else {"rtol": 1e-5, "atol": 1e-7}
    torch.testing.assert_close(got, ref, **tol)
    assert ref_grads.keys() == got_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(got_grads[name], ref_grads[name], rtol=2e-2 if autocast else 1e-4,
                                   atol=1e-4 if autocast else 1e-6, msg=name)


def test_chunks_do_not_change_the_loss():
    torch.manual_seed(0)
    hidden = torch.randn(2, 10, 8, requires_grad=True)
    weight = torch.randn(50, 8)
    labels = torch.randint(0, 50, (2, 10))
    labels[0, 3] = -100
    whole = chunked_lm_loss(hidden, weight, labels, chunk=20)
    (g_whole,) = torch.autograd.grad(whole, hidden)
    parts = chunked_lm_loss(hidden, weight, labels, chunk=3)
    (g_parts,) = torch.autograd.grad(parts, hidden)
    torch.testing.assert_close(parts, whole)
    torch.testing.assert_close(g_parts, g_whole)


def test_fused_head_loss_is_off_where_the_head_is_adapted():
    model, _ = _adapted("qwen2", targets="full")  # tied embeddings with adapters on lm_head
    assert FusedHeadLoss.for_model(model) is None


@pytest.mark.parametrize("arch, targets", [("llama", "attn_mlp"), ("qwen2", "full")])
def test_frozen_weights_in_bf16_give_the_same_autocast_step(arch, targets):
    model, tok = _adapted(arch, targets)
    inputs = _batch(tok, TEXTS)
    embed = model.get_input_embeddings()
    embed_weight = getattr(embed, "base_layer", embed).weight

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(**inputs).loss

    ref, ref_grads = _loss_and_grads(model, step)
    converted = store_frozen_weights_bf16(model)
    assert converted > 0
    assert embed_weight.dtype == torch.float32  # tied lm_head shares it: left alone
    got, got_grads = _loss_and_grads(model, step)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    for name in ref_grads:
        torch.testing.assert_close(got_grads[name], ref_grads[name], rtol=0, atol=0, msg=name)


def test_masked_sdpa_always_passes_a_mask_and_keeps_documents_apart():
    model, tok = models.load("tiny:llama")
    model.eval()
    one_doc = _batch(tok, [TEXTS[0] * 3], block=24)
    packed = _batch(tok, TEXTS[:2])
    with torch.no_grad():
        ref_one = model(**one_doc, use_cache=False).logits
        ref_packed = model(**packed, use_cache=False).logits
    assert use_masked_sdpa(model) and model.config._attn_implementation == MASKED_SDPA
    from firmlm.train.masking import capture_attention_inputs, verify_document_masking

    with torch.no_grad(), capture_attention_inputs(model) as seen:
        got_one = model(**one_doc, use_cache=False).logits
    assert torch.is_tensor(seen["attention_mask"]) and seen["attention_mask"].is_contiguous()  # no boundary: causal
    with torch.no_grad(), capture_attention_inputs(model) as seen:
        got_packed = model(**packed, use_cache=False).logits
    assert verify_document_masking(seen, packed, MASKED_SDPA)
    torch.testing.assert_close(got_one, ref_one, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_packed, ref_packed, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_compiled_training_matches_and_keeps_document_masking(tiny_config, request, tmp_path):
    """train.compile: compiled layers and the fused loss train like the plain loop (losses equal up to bf16
    rounding), the masking check still sees the mask, and a lost mask is still refused."""
    common = ["train.max_steps=4", "train.block_size=512", "train.threads=1", "train.lora.dropout=0.0"]
    plain = tiny_config(*common, f"run_dir={tmp_path / 'plain'}")
    run_stages(plain, ["corpus", "train"])
    compiled = tiny_config(*common, "train.compile=true", f"run_dir={tmp_path / 'compiled'}")
    run_stages(compiled, ["corpus", "train"])
    summary = json.loads((tmp_path / "compiled" / "train" / "summary.json").read_text())
    assert summary["compiled_layers"] == 2 and summary["fused_head_loss"]

    def losses(run: str) -> list[float]:
        rows = (tmp_path / run / "train" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(r)["loss"] for r in rows]

    assert losses("compiled") == pytest.approx(losses("plain"), rel=2e-2)

    request.getfixturevalue("lose_document_masking")
    with pytest.raises(StageError, match="attention_mask"):
        run_stages(tiny_config(*common, "train.compile=true", f"run_dir={tmp_path / 'lost'}"), ["corpus", "train"])


def test_compile_finds_the_decoder_layers():
    from firmlm.train.speed import decoder_layers

    model, _ = _adapted("olmo3")
    assert len(decoder_layers(model)) == model.config.num_hidden_layers


def test_compile_without_a_cxx_compiler_runs_uncompiled(monkeypatch):
    from firmlm.train import speed

    model, _ = _adapted()
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    monkeypatch.setattr(speed.torch.cuda, "is_available", lambda: False)
    assert speed.compile_decoder_layers(model) == 0
    assert all(getattr(layer.forward, "__func__", None) is type(layer).forward for layer in speed.decoder_layers(model))
