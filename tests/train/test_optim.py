import pytest
import torch

from firmlm import models
from firmlm.config import LoraConfig, TrainConfig
from firmlm.train.lora import apply_lora, is_embedding_param
from firmlm.train.optim import build_optimizer, cosine_factor, fold_tied_gradients


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_full_preset_puts_embedding_adapters_in_their_own_group(arch):
    model, _ = models.load(f"tiny:{arch}")
    cfg = TrainConfig(lr=1e-3, embed_lr_ratio=0.5, weight_decay=0.1, lora=LoraConfig(rank=4, alpha=8, targets="full"))
    peft_model = apply_lora(model, cfg.lora)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("embed_tokens" in n for n in names) and any("lm_head" in n for n in names)
    opt = build_optimizer(peft_model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["embed"]["lr"] == pytest.approx(0.5 * groups["main"]["lr"])
    assert groups["embed"]["weight_decay"] == 0.0 and groups["main"]["weight_decay"] == 0.1
    embed_ids = {id(p) for p in groups["embed"]["params"]}
    tied_ids = {id(t.param) for t in opt.ties}
    for n, p in peft_model.named_parameters():
        if p.requires_grad and id(p) not in tied_ids:
            assert (id(p) in embed_ids) == is_embedding_param(n)
    assert len(opt.ties) == (2 if arch == "qwen2" else 0)  # qwen2 ties lm_head's adapter to embed_tokens'


def _tied_setup(lr=1e-2):
    model, _ = models.load("tiny:qwen2")
    cfg = TrainConfig(lr=lr, embed_lr_ratio=0.5, lora=LoraConfig(rank=4, alpha=8, targets="full", dropout=0.0))
    peft_model = apply_lora(model, cfg.lora)
    torch.manual_seed(0)
    for n, p in peft_model.named_parameters():  # lora_B starts at zero: make every adapter carry gradient
        if p.requires_grad:
            p.data.normal_(0, 0.02)
    return peft_model, cfg


def test_tied_adapters_are_held_once_and_stepped_at_the_embedding_lr():
    """Each shared storage is updated once per step: Adam's first step moves each element by ~lr, so a
    storage updated twice (two parameter objects, two sets of moments) moves by up to 2x the embedding LR."""
    peft_model, cfg = _tied_setup()
    opt = build_optimizer(peft_model, cfg)
    held = [p for g in opt.param_groups for p in g["params"]]
    storages = {(p.data_ptr(), p.numel()) for p in held}
    assert len(storages) == len(held)
    embed_b = dict(peft_model.named_parameters())["base_model.model.model.embed_tokens.lora_embedding_B.default"]
    before = embed_b.detach().clone()
    ids = torch.randint(0, 250, (2, 16))
    peft_model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    moved = (embed_b.detach() - before).abs().max().item()
    lr_embed = cfg.lr * cfg.embed_lr_ratio
    assert moved == pytest.approx(lr_embed, rel=0.02)


def test_tied_view_gradient_is_folded_into_its_owner():
    peft_model, cfg = _tied_setup()
    opt = build_optimizer(peft_model, cfg)
    ids = torch.randint(0, 250, (2, 16))
    peft_model(input_ids=ids, labels=ids).loss.backward()
    expected = {id(t.owner): t.owner.grad + t.param.grad.T for t in opt.ties}
    fold_tied_gradients(opt.ties)
    for t in opt.ties:
        assert t.param.grad is None
        torch.testing.assert_close(t.owner.grad, expected[id(t.owner)])


def test_nonfinite_gradient_skips_the_step_and_clears_gradients():
    peft_model, cfg = _tied_setup()
    opt = build_optimizer(peft_model, cfg)
    params = [p for g in opt.param_groups for p in g["params"]]
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    params[-1].grad[0] = float("inf")
    opt.step()
    assert opt.skipped_steps == 1 and all(p.grad is None for p in params)
    assert all(torch.equal(a, p.detach()) for a, p in zip(before, params))


def test_attn_only_has_no_embedding_group():
    model, _ = models.load("tiny:llama")
    cfg = TrainConfig(lora=LoraConfig(rank=4, alpha=8, targets="attn_only"))
    opt = build_optimizer(apply_lora(model, cfg.lora), cfg)
    assert [g["name"] for g in opt.param_groups] == ["main"]


def test_cosine_warmup_and_floor():
    total, warm, floor = 100, 10, 0.1
    f = [cosine_factor(s, total, warm, floor) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(floor, abs=0.01)
    assert cosine_factor(500, total, warm, floor) == pytest.approx(floor)
