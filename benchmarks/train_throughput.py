"""Tokens/s and peak RSS of firmlm's trainer against a plain transformers Trainer + peft run with the same
model, rank, targets, block size and batch, in the same run (each in its own process, so RSS is its own).

Prints JSON lines: {"bench": ..., "figure": ..., "baseline": ..., "ratio": ...}.
Usage: python benchmarks/train_throughput.py [--model bundled:smollm2-135m] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def firmlm_run(model: str, steps: int, block: int, batch: int, rank: int, workdir: Path) -> dict:
    from firmlm.config import load_config
    from firmlm.stages import run_stages

    cfg = load_config(ROOT / "configs" / "quickstart.yaml", [
        f"run_dir={workdir}", f"model={model}", f"train.max_steps={steps}", f"train.block_size={block}",
        f"train.micro_batch_size={batch}", f"train.lora.rank={rank}", "train.max_minutes=null", "train.save_steps=0",
        "corpus.sources=[{name: fixture, kind: local, path: " + str(ROOT / "tests/fixtures/repos") + "}]",
        "corpus.indomain_fraction=0.0"])
    run_stages(cfg, ["corpus"])
    run_stages(cfg, ["train"])
    rows = [json.loads(x) for x in (workdir / "train" / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:]  # the first step includes one-time warm-up in both runs
    seconds = timed[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    return {"tokens_per_s": len(timed) * batch * block / seconds}


def plain_run(model: str, steps: int, block: int, batch: int, rank: int, workdir: Path) -> dict:
    """What a user writes by hand: tokenized chunks, the LM collator, Trainer + peft, fp32 on CPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    from firmlm import models

    m, tok = models.load(model)
    text = "".join(p.read_text() for p in sorted((ROOT / "tests/fixtures/repos").rglob("*")) if p.is_file()) * 50
    ids = tok(text)["input_ids"]
    chunks = [{"input_ids": ids[i:i + block]} for i in range(0, len(ids) - block, block)][: steps * batch]
    m = get_peft_model(m, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, task_type="CAUSAL_LM",
                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    stamps = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    args = TrainingArguments(output_dir=str(workdir), per_device_train_batch_size=batch, max_steps=steps,
                             learning_rate=2e-4, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                             disable_tqdm=True)
    Trainer(model=m, args=args, train_dataset=chunks, callbacks=[Stamp()],
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False)).train()
    torch.set_num_threads(torch.get_num_threads())
    return {"tokens_per_s": (len(stamps) - 1) * batch * block / (stamps[-1] - stamps[0])}


def child(kind: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        fn = firmlm_run if kind == "firmlm" else plain_run
        out = fn(args.model, args.steps, args.block, args.batch, args.rank, Path(d))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(kind: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--model", args.model, "--steps", str(args.steps),
           "--block", str(args.block), "--batch", str(args.batch), "--rank", str(args.rank)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[7:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="bundled:smollm2-135m")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--child")
    args = p.parse_args()
    if args.child:
        child(args.child, args)
        return
    ours, plain = measure("firmlm", args), measure("plain", args)
    setup = {"model": args.model, "steps": args.steps, "block": args.block, "batch": args.batch, "rank": args.rank}
    for key in ("tokens_per_s", "peak_rss_mb"):
        print(json.dumps({"bench": f"train_{key}", **setup, "figure": round(ours[key], 2),
                          "baseline": round(plain[key], 2), "ratio": round(ours[key] / plain[key], 3)}))


if __name__ == "__main__":
    main()
