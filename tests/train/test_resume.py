"""Checkpoints, signals, NaN handling and resume, on a tiny model on CPU (deterministic)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from firmlm.errors import StageError, TrainingInterrupted
from firmlm.stages import run_stages
from firmlm.train import checkpoints
from firmlm.train.monitor import TrainingMonitor
from firmlm.train.trainer import FirmlmTrainer

FIXTURES = Path(__file__).parents[1] / "fixtures"
STEPS = ["train.max_steps=10", "train.save_steps=3", "train.keep_checkpoints=2", "train.lora.dropout=0.1",
         "train.lora.targets=full"]


def _losses(train_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(ln) for ln in (train_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows]


def _signal_at(monkeypatch, step: int, signum=signal.SIGTERM):
    original = TrainingMonitor.on_log

    def on_log(self, args, state, control, logs=None, **kw):
        original(self, args, state, control, logs=logs, **kw)
        if state.global_step == step:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(TrainingMonitor, "on_log", on_log)


def test_sigterm_then_resume_reproduces_uninterrupted_losses(tiny_config, tmp_path, monkeypatch):
    reference = tiny_config(*STEPS, f"run_dir={tmp_path / 'ref'}")
    run_stages(reference, ["corpus", "train"])
    expected = _losses(tmp_path / "ref" / "train")
    assert [s for s, _ in expected] == list(range(1, 11))

    cfg = tiny_config(*STEPS, f"run_dir={tmp_path / 'cut'}")
    with monkeypatch.context() as m:
        _signal_at(m, 5)
        with pytest.raises(TrainingInterrupted, match="--resume auto") as stop:
            run_stages(cfg, ["corpus", "train"])
    assert stop.value.exit_code == 0
    train_dir = tmp_path / "cut" / "train"
    assert not (train_dir / "summary.json").exists()
    emergency = checkpoints.latest(train_dir)
    assert emergency == train_dir / "emergency" / "step-5"
    assert checkpoints.read_meta(emergency)["reason"] == "signal SIGTERM"
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "firmlm-monitor.json"):
        assert (emergency / name).is_file(), name
    from safetensors import safe_open

    with safe_open(emergency / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any("embed_tokens.lora_embedding_A" in k for k in keys)  # embedding adapters are saved...
    assert not any("base_layer" in k for k in keys)  # ...but never a full copy of the embedding matrices

    run_stages(cfg, ["corpus", "train"], resume="auto")
    assert _losses(train_dir) == expected
    summary = json.loads((train_dir / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["resumed_from"].endswith("emergency/step-5")
    assert [s for s, _ in checkpoints.list_complete(train_dir / "checkpoints")] == [9, 10]  # keep last 2 (+ final step)


def test_resume_refuses_a_checkpoint_of_another_config(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(*STEPS)
    with monkeypatch.context() as m:
        _signal_at(m, 2, signal.SIGINT)
        with pytest.raises(TrainingInterrupted):
            run_stages(cfg, ["corpus", "train"])
    other = tiny_config(*STEPS, "train.lr=0.01")
    with pytest.raises(StageError, match="different train config"):
        run_stages(other, ["train"], resume="auto")


def test_nan_steps_are_caught_logged_and_trigger_an_emergency_checkpoint(tiny_config, monkeypatch):
    nan_steps = {4, 5, 6}
    original = FirmlmTrainer.compute_loss

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        step = self.state.global_step + 1
        return loss * float("nan") if step in nan_steps else loss

    monkeypatch.setattr(FirmlmTrainer, "compute_loss", compute_loss)
    cfg = tiny_config("train.max_steps=10")
    with pytest.raises(TrainingInterrupted, match="3 consecutive non-finite steps"):
        run_stages(cfg, ["corpus", "train"])
    train_dir = Path(cfg.run_dir) / "train"
    anomalies = [json.loads(ln) for ln in (train_dir / "anomalies.jsonl").read_text().splitlines()]
    nan = [a for a in anomalies if a["kind"] == "nonfinite_loss"]
    assert [a["step"] for a in nan] == [4, 5, 6]
    assert all(a["batch_preview"] for a in nan)
    emergency = checkpoints.latest(train_dir)
    assert emergency == train_dir / "emergency" / "step-6"
    from safetensors.torch import load_file

    weights = load_file(emergency / "adapter_model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())  # NaN steps were not applied


def test_single_nan_step_is_skipped_and_training_completes(tiny_config, monkeypatch):
    original = FirmlmTrainer.compute_loss

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step + 1 == 2 else loss

    monkeypatch.setattr(FirmlmTrainer, "compute_loss", compute_loss)
    cfg = tiny_config("train.max_steps=5")
    run_stages(cfg, ["corpus", "train"])
    summary = json.loads((Path(cfg.run_dir) / "train" / "summary.json").read_text())
    assert summary["anomalies"] == {"nonfinite_loss": 1}
    assert summary["skipped_optimizer_steps"] == 1


def test_incomplete_checkpoints_are_never_picked(tmp_path):
    train_dir = tmp_path / "train"
    good = train_dir / "checkpoints" / "step-4"
    good.mkdir(parents=True)
    (good / "trainer_state.json").write_text("{}")
    (good / checkpoints.MARKER).write_text(json.dumps({"step": 4, "fingerprint": "f"}))
    half = train_dir / "checkpoints" / "step-8"  # killed before the marker was written
    half.mkdir()
    (half / "trainer_state.json").write_text("{}")
    (train_dir / ".staging" / "checkpoint-12").mkdir(parents=True)
    assert checkpoints.latest(train_dir) == good
    assert checkpoints.resolve_resume(train_dir, "auto", "f") == good
    with pytest.raises(StageError, match="not a complete checkpoint"):
        checkpoints.resolve_resume(train_dir, str(half), "f")


@pytest.mark.slow
def test_sigkill_during_checkpointing_leaves_a_resumable_run(tmp_path):
    """A real SIGKILL while checkpoints are written every step; --resume auto then finishes the run."""
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "firmlm", "train", "-c", str(FIXTURES / "tiny.yaml"), "--set", f"run_dir={run_dir}",
            "--set", "train.max_steps=400", "--set", "train.save_steps=1", "--set", "train.keep_checkpoints=2"]
    subprocess.run([sys.executable, "-m", "firmlm", "corpus", "-c", str(FIXTURES / "tiny.yaml"), "--set",
                    f"run_dir={run_dir}"], check=True, capture_output=True)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ckpts = run_dir / "train" / "checkpoints"
    while time.time() < deadline and len(checkpoints.list_complete(ckpts)) < 2:
        time.sleep(0.05)
    time.sleep(0.37)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    picked = checkpoints.latest(run_dir / "train")
    assert picked is not None and checkpoints.is_complete(picked)
    step = checkpoints.read_meta(picked)["step"]
    done = subprocess.run([*args, "--resume", "auto"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["resumed_from"].endswith(f"step-{step}")
