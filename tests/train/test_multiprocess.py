"""Two CPU processes (torchrun, gloo) with the `full` target preset, including embedding adapters on a
model with tied embeddings: through a SIGTERM, resumed to completion, then eval and report on the main
process while the other waits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmlm.train import checkpoints

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _torchrun(run_dir: Path, *extra: str) -> list[str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    return [str(torchrun), "--nproc_per_node", "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0",
            "-m", "firmlm", "train", "-c", str(FIXTURES / "tiny.yaml"), "--set", f"run_dir={run_dir}",
            "--set", "model=tiny:qwen2", "--set", "train.lora.targets=full", "--set", "train.max_steps=40", *extra]


@pytest.mark.slow
def test_two_process_full_preset_sigterm_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "firmlm", "corpus", "-c", str(FIXTURES / "tiny.yaml"),
                    "--set", f"run_dir={run_dir}"], check=True, capture_output=True, env=env)
    proc = subprocess.Popen(_torchrun(run_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    metrics = run_dir / "train" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    emergency = checkpoints.latest(run_dir / "train")
    assert emergency is not None and emergency.parent.name == "emergency", output
    meta = checkpoints.read_meta(emergency)
    assert meta["world_size"] == 2 and meta["reason"].startswith("signal")
    assert {p.name for p in emergency.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    steps_done = meta["step"]
    assert 3 <= steps_done < 40

    resumed = subprocess.run(_torchrun(run_dir, "--resume", "auto"), capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["resumed_from"].endswith(f"step-{steps_done}")
    rows = [json.loads(ln) for ln in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 41))  # one writer, no gaps or repeats
    assert rows[-1]["tokens"] == 40 * 2 * 2 * 64  # global tokens: micro-batch 2 x 2 processes x block 64
    assert (run_dir / "train" / "final" / "adapter_model.safetensors").is_file()

    # eval and report run once, on the main process; the other rank waits on file markers, not a collective
    pipeline = _torchrun(run_dir)
    pipeline[pipeline.index("train")] = "run"
    finished = subprocess.run(pipeline, capture_output=True, text=True, env=env)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert {"base", "final"} <= set(results["models"])
    for stage in ("eval", "report"):
        assert json.loads((run_dir / ".sync" / f"{stage}.json").read_text())["ok"]
    assert (run_dir / "report" / "report.md").is_file()
