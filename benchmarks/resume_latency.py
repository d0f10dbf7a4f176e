"""Seconds from a `--resume` call to its first optimizer step, resuming at step 10 and at a late step of
the same run (tiny model): the data position is restored by index arithmetic, so both should match.

Prints JSON lines: {"bench": "resume_to_first_step_s", "figure": late, "baseline": early, "ratio": ...}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--late", type=int, default=1000)
    args = p.parse_args()
    from firmlm.config import load_config
    from firmlm.errors import TrainingInterrupted
    from firmlm.stages import run_stages

    with tempfile.TemporaryDirectory() as d:
        total = args.late + 5
        base = [f"run_dir={d}/run", f"train.max_steps={total}", "train.block_size=64", "train.micro_batch_size=2",
                "train.lora.rank=4", "train.save_steps=10", f"train.keep_checkpoints={total}"]
        cfg = load_config(ROOT / "tests" / "fixtures" / "tiny.yaml", base)
        run_stages(cfg, ["corpus", "train"])
        ckpts = Path(d) / "run" / "train" / "checkpoints"
        timings = {}
        for step in (10, args.late):
            one_more = load_config(ROOT / "tests" / "fixtures" / "tiny.yaml", [*base, "train.max_minutes=0.000001"])
            t0 = time.perf_counter()
            try:
                run_stages(one_more, ["train"], force=True, resume=str(ckpts / f"step-{step}"))
            except TrainingInterrupted:
                pass
            timings[step] = time.perf_counter() - t0
            rows = [json.loads(x) for x in (Path(d) / "run" / "train" / "metrics.jsonl").read_text().splitlines()]
            assert rows[-1]["step"] == step + 1, rows[-1]
    print(json.dumps({"bench": "resume_to_first_step_s", "late_step": args.late, "figure": round(timings[args.late], 3),
                      "baseline_step": 10, "baseline": round(timings[10], 3),
                      "ratio": round(timings[args.late] / timings[10], 3)}))


if __name__ == "__main__":
    main()
