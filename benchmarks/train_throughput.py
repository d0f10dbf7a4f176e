"""Tokens/s and peak RSS of firmlm's training loop against a plain transformers Trainer + peft, on the same
config, measured in the same run (each arm in its own process, so RSS is its own; arms alternate).

Same for both arms: the packed blocks (firmlm's, with position ids restarting per document, so both train
with document masking), precision (bf16 autocast where the CPU has native bf16, else fp32), thread count,
use_cache=False, block size, micro-batch, LoRA rank/alpha/targets/dropout, learning rate, logging every step,
and the number of timed steps: each arm runs one warm-up step more, excluded from the figure (reported apart:
it holds firmlm's compilation).

Prints JSON lines: {"bench": ..., "figure": ..., "baseline": ..., "ratio": ...}.
Usage: python benchmarks/train_throughput.py [--steps 8] [--block 512] [--batch 4] [--rank 64] [--repeats 2]
       [--threads N] [--corpus RUN/corpus] [--set train.compile=false ...]  (--set: firmlm arm only)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def config(args: argparse.Namespace, run_dir: Path, extra: list[str] = ()):
    """The quickstart config at the benchmark's settings (explicit steps and batch, no budget, no checkpoints)."""
    from firmlm.config import load_config

    return load_config(QUICKSTART, [
        f"run_dir={run_dir}", f"model={args.model}", f"train.max_steps={args.steps + 1}",
        f"train.block_size={args.block}", f"train.micro_batch_size={args.batch}", "train.grad_accum=1",
        f"train.lora.rank={args.rank}", f"train.lora.targets={args.targets}", f"train.lora.dropout={args.dropout}",
        f"train.threads={args.threads}", "train.max_minutes=null", "train.save_steps=0",
        "corpus.sources=[{name: fixture, kind: local, path: " + str(ROOT / "tests/fixtures/repos") + "}]",
        "corpus.indomain_fraction=0.0", *extra])


def prepare_corpus(args: argparse.Namespace, run_dir: Path) -> None:
    from firmlm.stages import run_stages

    if args.corpus:
        shutil.copytree(args.corpus, run_dir / "corpus")
    else:
        run_stages(config(args, run_dir), ["corpus"])


def firmlm_arm(args: argparse.Namespace, run_dir: Path) -> dict:
    from firmlm.stages import run_stages

    cfg = config(args, run_dir, args.set)
    run_stages(cfg, ["train"], force=True)
    rows = [json.loads(x) for x in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    timed = rows[1:]
    return {"timed_seconds": timed[-1]["elapsed_s"] - rows[0]["elapsed_s"], "timed_steps": len(timed),
            "first_step_s": rows[0]["elapsed_s"], "bf16": summary["bf16"],
            "losses": [round(r["loss"], 4) for r in rows]}


def plain_arm(args: argparse.Namespace, run_dir: Path) -> dict:
    """What a user writes by hand: Trainer + peft over the same packed blocks, at the same settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from firmlm import models
    from firmlm.train.data import load_blocks
    from firmlm.train.lora import target_modules
    from firmlm.train.packing import PackedDataset
    from firmlm.train.stage import use_bf16

    cfg = config(args, run_dir).train
    torch.set_num_threads(args.threads)
    model, tok = models.load(args.model)
    blocks, _ = load_blocks(run_dir / "corpus", tok, cfg, run_dir)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             use_rslora=cfg.lora.rslora, target_modules=target_modules(cfg.lora.targets),
                                             task_type="CAUSAL_LM"))
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_train_begin(self, targs, state, control, **kw):
            stamps.append(time.perf_counter())

        def on_step_end(self, targs, state, control, **kw):
            stamps.append(time.perf_counter())

    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, targs, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(round(float(logs["loss"]), 4))

    bf16 = use_bf16(cfg)
    targs = TrainingArguments(output_dir=str(run_dir / "plain"), per_device_train_batch_size=cfg.micro_batch_size,
                              max_steps=cfg.max_steps, learning_rate=cfg.lr, bf16=bf16, use_cpu=True, report_to=[],
                              save_strategy="no", logging_steps=1, disable_tqdm=True, remove_unused_columns=False,
                              train_sampling_strategy="sequential", seed=0)
    Trainer(model=model, args=targs, train_dataset=PackedDataset(blocks), data_collator=default_data_collator,
            callbacks=[Stamp(), Losses()]).train()
    return {"timed_seconds": stamps[-1] - stamps[1], "timed_steps": len(stamps) - 2, "first_step_s": stamps[1] - stamps[0],
            "bf16": bf16, "losses": losses}


def child(kind: str, args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    out = firmlm_arm(args, run_dir) if kind == "firmlm" else plain_arm(args, run_dir)
    out["tokens_per_s"] = out["timed_steps"] * args.batch * args.block / out["timed_seconds"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(kind: str, args: argparse.Namespace, run_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--run-dir", str(run_dir), *args.forward]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[7:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="bundled:smollm2-135m")
    p.add_argument("--steps", type=int, default=8, help="timed steps (each arm runs one warm-up step more)")
    p.add_argument("--block", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--targets", default="attn_mlp")
    p.add_argument("--dropout", type=float, default=None, help="default: the quickstart's")
    p.add_argument("--threads", type=int, default=None, help="default: firmlm's probe, once, for both arms")
    p.add_argument("--repeats", type=int, default=2, help="firmlm/plain pairs, alternating")
    p.add_argument("--corpus", default=None, help="an existing RUN/corpus folder (default: the fixture repositories)")
    p.add_argument("--set", action="append", default=[], help="extra override for the firmlm arm only")
    p.add_argument("--child")
    p.add_argument("--run-dir")
    args = p.parse_args()
    if args.dropout is None or args.threads is None:
        from firmlm.config import load_config

        quick = load_config(QUICKSTART).train
        if args.dropout is None:
            args.dropout = quick.lora.dropout
        if args.threads is None:
            from firmlm.train.speed import choose_threads
            from firmlm.train.stage import use_bf16

            args.threads, _ = choose_threads("auto", use_bf16(quick))
    if args.child:
        child(args.child, args)
        return
    args.forward = [f"--{k}={v}" for k, v in [("model", args.model), ("steps", args.steps), ("block", args.block),
                                              ("batch", args.batch), ("rank", args.rank), ("targets", args.targets),
                                              ("dropout", args.dropout), ("threads", args.threads)]]
    args.forward += [f"--set={s}" for s in args.set]
    runs: dict[str, list[dict]] = {"firmlm": [], "plain": []}
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base"
        prepare_corpus(args, base)
        for i in range(args.repeats):
            for kind in ("firmlm", "plain"):
                run_dir = Path(d) / f"{kind}-{i}"
                shutil.copytree(base / "corpus", run_dir / "corpus")
                for name in ("config.yaml",):
                    if (base / name).is_file():
                        shutil.copy(base / name, run_dir / name)
                runs[kind].append(measure(kind, args, run_dir))
                print(json.dumps({"arm": kind, "repeat": i, **runs[kind][-1]}), file=sys.stderr)
    setup = {"model": args.model, "timed_steps": args.steps, "block": args.block, "batch": args.batch, "rank": args.rank,
             "targets": args.targets, "dropout": args.dropout, "threads": args.threads,
             "bf16": runs["firmlm"][0]["bf16"], "firmlm_set": args.set, "corpus": args.corpus or "fixture repos"}
    pairs = [round(f["tokens_per_s"] / b["tokens_per_s"], 3) for f, b in zip(runs["firmlm"], runs["plain"])]
    for key in ("tokens_per_s", "peak_rss_mb", "first_step_s"):
        ours = statistics.median(r[key] for r in runs["firmlm"])
        plain = statistics.median(r[key] for r in runs["plain"])
        line = {"bench": f"train_{key}", **setup, "figure": round(ours, 2), "baseline": round(plain, 2),
                "ratio": round(ours / plain, 3)}
        if key == "tokens_per_s":
            line["ratio_per_repeat"] = pairs
        print(json.dumps(line))


if __name__ == "__main__":
    main()
