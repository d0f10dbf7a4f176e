import json
from pathlib import Path

from firmlm.stages import run_stages
from firmlm.train.stage import cpu_has_native_bf16


def test_train_writes_per_step_metrics_and_adapter(tiny_config):
    cfg = tiny_config("train.max_steps=4", "eval.enabled=false")
    run_stages(cfg, ["corpus", "train"])
    train = Path(cfg.run_dir) / "train"
    rows = [json.loads(line) for line in (train / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r["loss"] > 0 and r["grad_norm"] >= 0 and r["tokens_per_s"] > 0
    assert rows[-1]["tokens"] == 4 * 2 * 64
    assert rows[0]["lr"] < rows[1]["lr"] or rows[0]["lr"] > rows[-1]["lr"]
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
