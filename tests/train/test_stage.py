import json
from pathlib import Path

import pytest

from firmlm.errors import StageError
from firmlm.stages import run_stages
from firmlm.train.optim import cosine_factor
from firmlm.train.stage import cpu_has_native_bf16
from firmlm.train.trainer import FirmlmTrainer


def test_both_lr_groups_follow_the_schedule_every_step(tiny_config):
    """metrics.jsonl holds the LR each step trained with: warm-up then cosine, embedding group at 0.5x."""
    cfg = tiny_config("train.max_steps=10", "train.lr=1e-3", "train.warmup_ratio=0.2", "train.min_lr_ratio=0.1",
                      "train.lora.targets=full", "train.embed_lr_ratio=0.5")
    run_stages(cfg, ["corpus", "train"])
    rows = [json.loads(ln) for ln in (Path(cfg.run_dir) / "train" / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        assert 0 <= r["token_accuracy"] <= 1 and 0 < r["entropy"] < 12  # sampled figures, nats (vocab < e^12)
        expected = 1e-3 * cosine_factor(r["step"] - 1, 10, 2, 0.1)
        assert r["lr"] == pytest.approx(expected, rel=1e-6)
        assert r["lr_embed"] == pytest.approx(0.5 * expected, rel=1e-6)


def test_optimizer_comes_from_the_trainers_create_optimizer(tiny_config, monkeypatch):
    """Passing `optimizers=` is refused by transformers under FSDP and bypassed under DeepSpeed: the stage must
    let the Trainer build the optimizer through its create_optimizer hook."""
    built = []
    original_init, original_create = FirmlmTrainer.__init__, FirmlmTrainer.create_optimizer

    def init(self, *args, **kwargs):
        assert kwargs.get("optimizers") in (None, (None, None))
        original_init(self, *args, **kwargs)

    def create(self, model=None):
        built.append(original_create(self, model))
        return built[-1]

    monkeypatch.setattr(FirmlmTrainer, "__init__", init)
    monkeypatch.setattr(FirmlmTrainer, "create_optimizer", create)
    run_stages(tiny_config("train.max_steps=2", "train.lora.targets=full"), ["corpus", "train"])
    assert built and [g["name"] for g in built[-1].param_groups] == ["main", "embed"]


def test_lost_document_masking_fails_at_the_first_step(tiny_config, lose_document_masking):
    """A collator that adds an attention_mask turns packed training into cross-document attention."""
    with pytest.raises(StageError, match="attention_mask"):
        run_stages(tiny_config("train.max_steps=2"), ["corpus", "train"])


def test_masking_check_reads_the_mask_the_attention_layer_gets(tiny_config, monkeypatch):
    """The KV cache path builds a plain causal mask even without an attention_mask in the batch."""
    from firmlm.train import masking

    original = masking.verify_document_masking

    def verify(seen, inputs, attn):
        import torch

        b, n = inputs["position_ids"].shape
        causal = torch.ones(n, n, dtype=torch.bool).tril().expand(b, 1, n, n)
        return original({**seen, "attention_mask": causal}, inputs, attn)

    monkeypatch.setattr("firmlm.train.trainer.verify_document_masking", verify)
    with pytest.raises(StageError, match="not block-diagonal"):  # blocks of 512 bytes hold document boundaries
        run_stages(tiny_config("train.max_steps=8", "train.block_size=512"), ["corpus", "train"])


def test_token_budget_reaches_the_end_of_the_split_and_is_recorded(tiny_config):
    cfg = tiny_config("train.max_steps=6", "train.block_size=64")
    run_stages(cfg, ["corpus", "train"])
    record = json.loads((Path(cfg.run_dir) / "train" / "data.json").read_text())
    n = record["of_documents"]
    assert 1 < record["documents"] < n
    assert record["first_index"] <= n * 0.4 and record["last_index"] >= n * 0.6
    assert record["tokens"] >= record["needed_tokens"] == 6 * 2 * 64 + 64


def test_train_writes_per_step_metrics_and_adapter(tiny_config):
    cfg = tiny_config("train.max_steps=4", "eval.enabled=false")
    run_stages(cfg, ["corpus", "train"])
    train = Path(cfg.run_dir) / "train"
    rows = [json.loads(line) for line in (train / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r["loss"] > 0 and r["grad_norm"] >= 0 and r["tokens_per_s"] > 0
    assert rows[-1]["tokens"] == 4 * 2 * 64
    assert (train / "final" / "adapter_config.json").is_file()
    summary = json.loads((train / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["trainable_params"] > 0


def test_time_budget_stops_early(tiny_config):
    cfg = tiny_config("train.max_steps=50", "train.max_minutes=0.0001")
    run_stages(cfg, ["corpus", "train"])
    summary = json.loads((Path(cfg.run_dir) / "train" / "summary.json").read_text())
    assert summary["stopped_for_time"] and summary["steps"] < 50


def test_cpu_bf16_detection(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor: 0\nflags\t\t: fpu avx avx2 fma\n")
    assert not cpu_has_native_bf16(f)
    f.write_text("processor: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(f)
    assert not cpu_has_native_bf16(tmp_path / "missing")
