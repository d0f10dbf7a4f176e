"""Training tokens/s per GPU, MFU and peak memory for the Spark recipe: firmlm's trainer against a plain
transformers Trainer + peft at the same settings, in the same run (each arm in its own process).

Model: the OLMo-3-7B shape built from a config with random weights (throughput does not depend on the
weights, and nothing is downloaded); LoRA r=512, alpha=1024, rsLoRA on attention, MLP, embed_tokens and
lm_head; block 2,048; bf16; flash attention when the flash-attn package is installed, else sdpa. Both arms
train on the same random packed blocks with the same micro-batch, accumulation, checkpointing and dropout.
The paper's figure is 1,080 tokens/s per H100 for this recipe.

Prints JSON lines: {"bench": ..., "figure": ..., "baseline": ..., "ratio": ...}. Without a CUDA device it
prints one line saying so and exits 0, unless --allow-cpu (a smoke run of the code on a tiny shape).
Usage: python benchmarks/gpu_throughput.py [--steps 6] [--batch 4] [--layers 32] [--dropout 0.05]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAPER_TOKENS_PER_S_PER_GPU = 1080.0
OLMO3_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=100278, max_position_embeddings=65536, rope_theta=500000.0)


def olmo3_model(layers: int, hidden: int | None, dtype, attn: str | None):
    import torch
    from transformers import AutoModelForCausalLM, Olmo3Config

    shape = dict(OLMO3_7B, num_hidden_layers=layers)
    if hidden:
        shape.update(hidden_size=hidden, intermediate_size=hidden * 2, num_attention_heads=max(1, hidden // 64),
                     num_key_value_heads=max(1, hidden // 64), vocab_size=4096)
    config = Olmo3Config(**shape, bos_token_id=100257, eos_token_id=100257, pad_token_id=100277,
                         tie_word_embeddings=False, layer_types=["full_attention"] * layers)
    if hidden:
        config.update({"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    model.config.use_cache = False
    return model


def random_blocks(n: int, block: int, vocab: int, doc_tokens: int = 700):
    """``n`` packed blocks of random documents of ``doc_tokens`` tokens (document masking at work)."""
    import numpy as np

    from firmlm.train.packing import pack

    rng = np.random.default_rng(0)
    docs = [rng.integers(3, vocab - 3, size=doc_tokens, dtype=np.int32) for _ in range(n * block // doc_tokens + 2)]
    blocks = pack(docs, block)
    return type(blocks)(blocks.input_ids[:n], blocks.position_ids[:n])


def train_config(args):
    from firmlm.config import LoraConfig, TrainConfig

    return TrainConfig(block_size=args.block, micro_batch_size=args.batch, grad_accum=args.accum,
                       max_steps=args.steps + args.warmup, precision="bf16", gradient_checkpointing=not args.no_ckpt,
                       attn_implementation=args.attn, save_steps=0,
                       lora=LoraConfig(rank=args.rank, alpha=2.0 * args.rank, rslora=True, dropout=args.dropout,
                                       targets="full"))


class Stamps:
    """Step-end times, to time the steps after warm-up."""

    def __init__(self):
        from transformers import TrainerCallback

        stamps = self.stamps = []

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                stamps.append(time.perf_counter())

        self.callback = Stamp()


def firmlm_arm(args, workdir: Path) -> dict:
    from firmlm.train.lora import apply_lora
    from firmlm.train.monitor import StepRecord
    from firmlm.train.packing import PackedDataset
    from firmlm.train.stage import build_trainer

    cfg = train_config(args)
    model = olmo3_model(args.layers, args.hidden, _dtype(), args.attn)
    model = apply_lora(model, cfg.lora)
    blocks = random_blocks(cfg.max_steps * args.batch * args.accum, args.block, model.config.vocab_size)
    stamps = Stamps()
    trainer = build_trainer(cfg, model, None, PackedDataset(blocks), workdir, 0, StepRecord(), [stamps.callback])
    trainer.train()
    return _figures(stamps.stamps, args, model)


def plain_arm(args, workdir: Path) -> dict:
    """What a user writes by hand: Trainer + peft at the same settings (labels = inputs, no packing masks)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    model = olmo3_model(args.layers, args.hidden, _dtype(), args.attn)
    model = get_peft_model(model, LoraConfig(
        r=args.rank, lora_alpha=2 * args.rank, use_rslora=True, lora_dropout=args.dropout, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens",
                        "lm_head"]))
    n = (args.steps + args.warmup) * args.batch * args.accum
    blocks = random_blocks(n, args.block, model.config.vocab_size)
    data = [{"input_ids": torch.from_numpy(r.astype("int64")), "labels": torch.from_numpy(r.astype("int64"))}
            for r in blocks.input_ids]
    stamps = Stamps()
    targs = TrainingArguments(output_dir=str(workdir), per_device_train_batch_size=args.batch,
                              gradient_accumulation_steps=args.accum, max_steps=args.steps + args.warmup,
                              learning_rate=1.5e-5, bf16=True, gradient_checkpointing=not args.no_ckpt,
                              gradient_checkpointing_kwargs={"use_reentrant": False}, max_grad_norm=5.0,
                              report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
                              use_cpu=not torch.cuda.is_available(), remove_unused_columns=False)
    Trainer(model=model, args=targs, train_dataset=data, data_collator=default_data_collator,
            callbacks=[stamps.callback]).train()
    return _figures(stamps.stamps, args, model)


def _dtype():
    import torch

    return torch.bfloat16


def _figures(stamps: list[float], args, model) -> dict:
    import torch

    from firmlm.train.flops import lora_flops_per_token, peak_flops_per_device

    timed = stamps[args.warmup - 1:] if args.warmup else [stamps[0], *stamps]
    seconds = timed[-1] - timed[0]
    tokens = (len(timed) - 1) * args.batch * args.accum * args.block
    tps = tokens / seconds
    peak = peak_flops_per_device()
    flops = lora_flops_per_token(model, args.block)
    return {"tokens_per_s_per_gpu": tps, "mfu": tps * flops / peak if peak else None,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def measure(kind: str, argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, *argv], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} arm failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[7:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (compilation, allocator)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--block", type=int, default=2048)
    p.add_argument("--rank", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.05, help="the paper's 0.05; 0 lets peft skip the dropout copy")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, default=None, help="smaller hidden size (smoke runs)")
    p.add_argument("--attn", default=None, help="attention implementation (default: flash_attention_2 if installed)")
    p.add_argument("--no-ckpt", action="store_true", help="no activation checkpointing")
    p.add_argument("--allow-cpu", action="store_true")
    p.add_argument("--child")
    args = p.parse_args()
    if args.attn is None:
        import importlib.util

        args.attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    if args.child:
        with tempfile.TemporaryDirectory() as d:
            out = (firmlm_arm if args.child == "firmlm" else plain_arm)(args, Path(d))
        print("RESULT " + json.dumps(out))
        return
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(json.dumps({"bench": "gpu_throughput", "skipped": "no CUDA device on this machine"}))
        return
    argv = [a for a in sys.argv[1:]]
    if "--attn" not in argv:
        argv += ["--attn", args.attn]
    ours, plain = measure("firmlm", argv), measure("plain", argv)
    setup = {"device": ours["device"], "layers": args.layers, "rank": args.rank, "block": args.block,
             "batch": args.batch, "accum": args.accum, "dropout": args.dropout, "attn": args.attn,
             "checkpointing": not args.no_ckpt}
    print(json.dumps({"bench": "gpu_tokens_per_s_per_gpu", **setup, "figure": round(ours["tokens_per_s_per_gpu"], 1),
                      "baseline": round(plain["tokens_per_s_per_gpu"], 1),
                      "ratio": round(ours["tokens_per_s_per_gpu"] / plain["tokens_per_s_per_gpu"], 3),
                      "vs_paper": round(ours["tokens_per_s_per_gpu"] / PAPER_TOKENS_PER_S_PER_GPU, 2),
                      "mfu": ours["mfu"], "baseline_mfu": plain["mfu"]}))
    if ours["peak_memory_gib"] is not None:
        print(json.dumps({"bench": "gpu_peak_memory_gib", **setup, "figure": round(ours["peak_memory_gib"], 2),
                          "baseline": round(plain["peak_memory_gib"], 2),
                          "ratio": round(ours["peak_memory_gib"] / plain["peak_memory_gib"], 3)}))


if __name__ == "__main__":
    main()
