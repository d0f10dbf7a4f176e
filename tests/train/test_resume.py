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


KILL_DRIVER = """
import pathlib, sys, time
import torch
import firmlm.train.checkpoints as ck
point, flag, rest = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
calls = []

def block_at_second_call():
    calls.append(1)
    if len(calls) == 2:
        flag.write_text("blocked")
        while True:
            time.sleep(1)

if point == "publish":  # staging folder complete with its marker, flushed, not yet renamed into place
    fsync_tree = ck.fsync_tree
    def blocking_fsync(folder):
        fsync_tree(folder)
        block_at_second_call()
    ck.fsync_tree = blocking_fsync
else:  # the Trainer is writing the optimizer state of the checkpoint
    save = torch.save
    def blocking_save(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            block_at_second_call()
        return save(obj, f, *args, **kwargs)
    torch.save = blocking_save
from firmlm.cli import main
sys.argv = ["firmlm", *rest]
main()
"""


@pytest.mark.slow
def test_sigkill_inside_checkpoint_writes_always_leaves_the_previous_checkpoint(tmp_path):
    """Ten real SIGKILLs, each while a checkpoint is being written (alternately inside the Trainer's save and
    inside publishing); each time the previous checkpoint is picked and loads, and the run then finishes."""
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    driver = tmp_path / "driver.py"
    driver.write_text(KILL_DRIVER)
    common = ["-c", str(FIXTURES / "tiny.yaml"), "--set", f"run_dir={run_dir}", "--set", "train.max_steps=24",
              "--set", "train.save_steps=2", "--set", "train.keep_checkpoints=2"]
    subprocess.run([sys.executable, "-m", "firmlm", "corpus", *common], check=True, capture_output=True)
    train_dir = run_dir / "train"
    for attempt in range(10):
        flag = tmp_path / f"blocked-{attempt}"
        point = "publish" if attempt % 2 else "save"
        proc = subprocess.Popen([sys.executable, str(driver), point, str(flag), "train", *common],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not flag.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert flag.exists(), f"attempt {attempt}: the process never reached its second checkpoint write"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        picked = checkpoints.latest(train_dir)
        expected_step = 2 * (attempt + 1)  # the checkpoint written before the killed one
        assert picked == train_dir / "checkpoints" / f"step-{expected_step}", (attempt, point)
        assert json.loads((picked / "trainer_state.json").read_text())["global_step"] == expected_step
        assert load_file(picked / "adapter_model.safetensors")
        assert not (train_dir / "summary.json").exists()
    done = subprocess.run([sys.executable, "-m", "firmlm", "train", *common, "--resume", "auto"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((train_dir / "summary.json").read_text())
    assert summary["steps"] == 24 and summary["resumed_from"].endswith("checkpoints/step-20")


def _interrupt(cfg, monkeypatch, step: int) -> Path:
    with monkeypatch.context() as m:
        _signal_at(m, step)
        with pytest.raises(TrainingInterrupted):
            run_stages(cfg, ["corpus", "train"])
    return checkpoints.latest(Path(cfg.run_dir) / "train")


def test_rerun_continues_an_interrupted_run_instead_of_deleting_it(tiny_config, monkeypatch):
    cfg = tiny_config("train.max_steps=6")
    emergency = _interrupt(cfg, monkeypatch, 3)
    run_stages(cfg, ["corpus", "train"])  # no --resume: the checkpoint of this config is picked up
    summary = json.loads((Path(cfg.run_dir) / "train" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_from"] == str(emergency)
    assert emergency.is_dir()


def test_rerun_under_another_config_refuses_to_delete_checkpoints(tiny_config, monkeypatch):
    emergency = _interrupt(tiny_config("train.max_steps=6"), monkeypatch, 2)
    other = tiny_config("train.max_steps=6", "train.lr=0.01")
    with pytest.raises(StageError, match="--force"):
        run_stages(other, ["train"])
    assert checkpoints.is_complete(emergency)
    run_stages(other, ["train"], force=True)  # asked for: start over
    summary = json.loads((Path(other.run_dir) / "train" / "summary.json").read_text())
    assert summary["resumed_from"] is None and not emergency.exists()


def test_resume_refuses_another_world_size(tiny_config, monkeypatch):
    cfg = tiny_config("train.max_steps=6")
    emergency = _interrupt(cfg, monkeypatch, 2)
    marker = emergency / checkpoints.MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "world_size": 2}))
    with pytest.raises(StageError, match="written by 2 processes, this run has 1"):
        run_stages(cfg, ["train"], resume="auto")


def test_time_budget_and_skipped_steps_continue_across_a_resume(tiny_config, monkeypatch):
    cfg = tiny_config("train.max_steps=20", "train.max_minutes=10")
    emergency = _interrupt(cfg, monkeypatch, 2)
    state_file = emergency / "firmlm-monitor.json"
    state = json.loads(state_file.read_text())
    assert state["train_seconds"] > 0 and state["skipped_steps"] == 0
    state_file.write_text(json.dumps({**state, "train_seconds": 599.9, "skipped_steps": 2}))  # 9m59.9s already spent
    run_stages(cfg, ["train"], resume="auto")
    summary = json.loads((Path(cfg.run_dir) / "train" / "summary.json").read_text())
    assert summary["stopped_for_time"] and summary["steps"] < 20
    assert summary["train_seconds"] >= 600 and summary["skipped_optimizer_steps"] == 2


def test_resume_is_refused_for_stages_that_do_not_resume(tiny_config):
    with pytest.raises(StageError, match="only the train stage resumes"):
        run_stages(tiny_config(), ["eval"], resume="auto")


def test_a_resumed_run_continues_the_same_mlflow_run(tiny_config, tmp_path, monkeypatch):
    """MLflow (its SQLite tracking store, for real): the steps before and after an interruption land in one run."""
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install mlflow-skinny)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    cfg = tiny_config(*STEPS, "train.report_to=[mlflow]")
    with monkeypatch.context() as m:
        _signal_at(m, 4)
        with pytest.raises(TrainingInterrupted):
            run_stages(cfg, ["corpus", "train"])
    train_dir = Path(cfg.run_dir) / "train"
    first_id = json.loads((train_dir / "tracking.json").read_text())["mlflow_run_id"]
    if mlflow.active_run() is not None:  # the interrupted run's integration may leave it open in this process
        mlflow.end_run()
    run_stages(cfg, ["corpus", "train"], resume="auto")
    assert json.loads((train_dir / "tracking.json").read_text())["mlflow_run_id"] == first_id
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_id for r in runs] == [first_id]  # no second run
    steps = [m.step for m in mlflow.tracking.MlflowClient().get_metric_history(first_id, "loss")]
    assert min(steps) <= 4 and max(steps) == 10  # before and after the interruption, in the same run
