import pytest

from firmlm import models
from firmlm.config import LoraConfig, TrainConfig
from firmlm.train.lora import apply_lora, is_embedding_param
from firmlm.train.optim import build_optimizer, cosine_factor


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_full_preset_puts_embedding_adapters_in_their_own_group(arch):
    model, _ = models.load(f"tiny:{arch}")
    cfg = TrainConfig(lr=1e-3, embed_lr_ratio=0.5, weight_decay=0.1, lora=LoraConfig(rank=4, alpha=8, targets="full"))
    peft_model = apply_lora(model, cfg.lora)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("embed_tokens" in n for n in names) and any("lm_head" in n or arch == "qwen2" for n in names)
    opt, sched = build_optimizer(peft_model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["embed"]["lr"] == pytest.approx(0.5 * groups["main"]["lr"])
    assert groups["embed"]["weight_decay"] == 0.0 and groups["main"]["weight_decay"] == 0.1
    embed_ids = {id(p) for p in groups["embed"]["params"]}
    for n, p in peft_model.named_parameters():
        if p.requires_grad:
            assert (id(p) in embed_ids) == is_embedding_param(n)


def test_attn_only_has_no_embedding_group():
    model, _ = models.load("tiny:llama")
    cfg = TrainConfig(lora=LoraConfig(rank=4, alpha=8, targets="attn_only"))
    opt, _ = build_optimizer(apply_lora(model, cfg.lora), cfg)
    assert [g["name"] for g in opt.param_groups] == ["main"]


def test_cosine_warmup_and_floor():
    total, warm, floor = 100, 10, 0.1
    f = [cosine_factor(s, total, warm, floor) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(floor, abs=0.01)
    assert cosine_factor(500, total, warm, floor) == pytest.approx(floor)
