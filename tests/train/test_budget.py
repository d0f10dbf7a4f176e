"""Fitting a run to the machine and its time budget: max_steps / micro_batch_size `auto`, precision from the CPU
flags, threads. Behaviour only: no assertion depends on how fast this machine is."""

import functools
import json
import os
import signal
from pathlib import Path

import pytest

from firmlm.config import TrainConfig
from firmlm.errors import StageError, TrainingInterrupted
from firmlm.models.placement import cpu_has_native_bf16
from firmlm.stages import run_stages
from firmlm.train import budget, speed
from firmlm.train import stage as train_stage
from firmlm.train.checkpoints import latest
from firmlm.train.monitor import TrainingMonitor
from firmlm.train.optim import cosine_factor

AVX2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma f16c\n"
NATIVE_BF16 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n"
AUTO = ["train.max_steps=auto", "train.max_minutes=5", "train.threads=1"]


def _rows(run_dir) -> list[dict]:
    return [json.loads(ln) for ln in (Path(run_dir) / "train" / "metrics.jsonl").read_text().splitlines()]


def _summary(run_dir) -> dict:
    return json.loads((Path(run_dir) / "train" / "summary.json").read_text())


def _fake_cpu(monkeypatch, tmp_path, flags: str) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(flags)
    monkeypatch.setattr(train_stage.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_stage, "cpu_has_native_bf16", functools.partial(cpu_has_native_bf16, info))


def _fit_to(monkeypatch, steps: int) -> list[dict]:
    """Let the real measurement run, but fit to a fixed number of steps (the machine's speed must not matter)."""
    measured = []
    original = budget.time_steps

    def time_steps(*args, **kwargs):
        measured.append(original(*args, **kwargs))
        return measured[-1]

    monkeypatch.setattr(budget, "time_steps", time_steps)
    monkeypatch.setattr(budget, "fit_steps", lambda *a, **k: steps)
    return measured


@pytest.mark.parametrize("flags, bf16, micro_batch", [(AVX2, False, 2), (NATIVE_BF16, True, 4)])
def test_precision_and_micro_batch_follow_the_cpu_flags(tiny_config, monkeypatch, tmp_path, flags, bf16, micro_batch):
    _fake_cpu(monkeypatch, tmp_path, flags)
    cfg = tiny_config("train.micro_batch_size=auto", "train.block_size=512", "train.max_steps=2", "train.threads=1")
    assert train_stage.use_bf16(cfg.train) is bf16
    run_stages(cfg, ["corpus", "train"])
    summary = _summary(cfg.run_dir)
    assert summary["bf16"] is bf16 and summary["micro_batch_size"] == micro_batch
    assert summary["budget"]["micro_batch_size"] == micro_batch and summary["budget"]["precision"] == ("bf16" if bf16 else "fp32")
    assert (summary["frozen_weights_bf16"] > 0) is bf16  # only under bf16 autocast
    assert _rows(cfg.run_dir)[-1]["tokens"] == 2 * micro_batch * 512


def test_auto_micro_batch_rule():
    assert budget.auto_micro_batch(512, bf16=True) == 4 and budget.auto_micro_batch(512, bf16=False) == 2
    assert budget.auto_micro_batch(4096, bf16=True) == 1


def test_fit_fills_the_budget_left_after_the_measurement():
    assert budget.fit_steps(10.0, budget_seconds=600, spent_seconds=40, fill=0.95) == 53  # 0.95 * 560 / 10
    assert budget.fit_steps(10.0, budget_seconds=30, spent_seconds=40) == 1  # never fewer than one step


def test_auto_steps_need_a_time_budget():
    with pytest.raises(ValueError, match="max_minutes"):
        TrainConfig(max_steps="auto")
    with pytest.raises(ValueError, match=">= 1"):
        TrainConfig(max_steps=0)


def test_fitted_steps_are_recorded_and_the_measurement_does_not_leak(tiny_config, monkeypatch, tmp_path):
    """A run fitted to N steps trains exactly as one configured with max_steps N: the timed warm-up steps are
    undone. The schedule spans the fitted length."""
    measured = _fit_to(monkeypatch, 5)
    fitted = tiny_config(*AUTO, "train.lr=1e-3", f"run_dir={tmp_path / 'auto'}")
    run_stages(fitted, ["corpus", "train"])
    assert len(measured) == 1 and len(measured[0]["step_seconds"]) == budget.WARMUP_STEPS + budget.TIMED_STEPS
    record = json.loads((tmp_path / "auto" / "train" / budget.BUDGET_FILE).read_text())
    assert record["max_steps"] == 5 and record["measurement"]["budget_seconds"] == 300
    summary = _summary(tmp_path / "auto")
    assert summary["max_steps"] == 5 and summary["steps"] == 5 and summary["max_steps_fitted"]
    rows = _rows(tmp_path / "auto")
    warmup = round(0.1 * 5)
    assert [r["lr"] for r in rows] == pytest.approx([1e-3 * cosine_factor(s, 5, warmup, 0.1) for s in range(5)])

    explicit = tiny_config("train.max_steps=5", "train.threads=1", "train.lr=1e-3", f"run_dir={tmp_path / 'explicit'}")
    run_stages(explicit, ["corpus", "train"])
    assert [r["loss"] for r in _rows(tmp_path / "explicit")] == [r["loss"] for r in rows]


def _signal_at(monkeypatch, step: int) -> None:
    original = TrainingMonitor.on_log

    def on_log(self, args, state, control, logs=None, **kw):
        original(self, args, state, control, logs=logs, **kw)
        if state.global_step == step:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TrainingMonitor, "on_log", on_log)


def test_resume_reuses_the_fitted_steps_and_batch(tiny_config, monkeypatch, tmp_path):
    common = [*AUTO, "train.micro_batch_size=auto", "train.block_size=64", "train.save_steps=2"]
    with monkeypatch.context() as m:
        _fit_to(m, 6)
        reference = tiny_config(*common, f"run_dir={tmp_path / 'ref'}")
        run_stages(reference, ["corpus", "train"])
    expected = [(r["step"], r["loss"]) for r in _rows(tmp_path / "ref")]
    assert len(expected) == 6

    cfg = tiny_config(*common, f"run_dir={tmp_path / 'cut'}")
    with monkeypatch.context() as m:
        _fit_to(m, 6)
        _signal_at(m, 3)
        with pytest.raises(TrainingInterrupted):
            run_stages(cfg, ["corpus", "train"])
    record = (tmp_path / "cut" / "train" / budget.BUDGET_FILE).read_text()

    def no_measurement(*args, **kwargs):
        raise AssertionError("a resume must reuse the recorded fit, not measure again")

    monkeypatch.setattr(budget, "time_steps", no_measurement)
    monkeypatch.setattr(budget, "auto_micro_batch", lambda *a, **k: 1)  # another machine would pick another batch
    later = tiny_config(*common, "train.max_minutes=50", f"run_dir={tmp_path / 'cut'}")  # operational: still resumable
    run_stages(later, ["train"], resume="auto")
    assert [(r["step"], r["loss"]) for r in _rows(tmp_path / "cut")] == expected
    summary = _summary(tmp_path / "cut")
    assert summary["steps"] == 6 and summary["max_steps"] == 6 and summary["resumed_from"]
    assert (tmp_path / "cut" / "train" / budget.BUDGET_FILE).read_text() == record


def test_resume_without_the_budget_record_is_refused(tiny_config, monkeypatch):
    cfg = tiny_config(*AUTO, "train.save_steps=2")
    with monkeypatch.context() as m:
        _fit_to(m, 6)
        _signal_at(m, 3)
        with pytest.raises(TrainingInterrupted):
            run_stages(cfg, ["corpus", "train"])
    train_dir = Path(cfg.run_dir) / "train"
    assert latest(train_dir) is not None
    (train_dir / budget.BUDGET_FILE).unlink()
    with pytest.raises(StageError, match="budget.json"):
        run_stages(cfg, ["train"], resume="auto")


def test_auto_steps_are_refused_with_several_processes(tiny_config, monkeypatch):
    monkeypatch.setattr(train_stage, "world_size", lambda: 2)
    with pytest.raises(StageError, match="max_steps explicitly"):
        run_stages(tiny_config(*AUTO), ["corpus", "train"])


@pytest.mark.parametrize("rates, expected", [({1: 100.0, 2: 30.0}, 1), ({1: 100.0, 2: 180.0}, 2),
                                             ({1: 105.0, 2: 100.0}, 2)])
def test_thread_probe_takes_fewer_threads_only_when_clearly_faster(monkeypatch, rates, expected):
    monkeypatch.setattr(speed, "_probe_rate", lambda threads, dtype, seconds: rates[threads])
    assert speed.probe_threads(2, bf16=True)[0] == expected


def test_configured_threads_skip_the_probe(monkeypatch):
    import torch

    def probe(*args, **kwargs):
        raise AssertionError("no probe for a configured thread count")

    before = torch.get_num_threads()
    monkeypatch.setattr(speed, "probe_threads", probe)
    try:
        threads, info = speed.choose_threads(1, bf16=True)
        assert threads == 1 == torch.get_num_threads() and info["chosen_by"] == "configured"
    finally:
        torch.set_num_threads(before)
