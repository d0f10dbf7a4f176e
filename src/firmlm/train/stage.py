"""The train stage: corpus train split → packed blocks → LoRA continual pretraining → adapter."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from firmlm import models
from firmlm.config import TrainConfig
from firmlm.corpus.shards import read_documents
from firmlm.errors import StageError
from firmlm.runs import StageOutput
from firmlm.train.lora import adapter_stats, apply_lora, target_modules
from firmlm.train.monitor import StepMetrics
from firmlm.train.optim import build_optimizer
from firmlm.train.packing import PackedDataset, iter_texts, pack, tokenize_until

log = logging.getLogger(__name__)


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated
    and measured here 50-80x slower than fp32 in the backward pass."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def use_bf16(cfg: TrainConfig) -> bool:
    """`auto`: bf16 on a GPU that supports it, bf16 autocast on a CPU with native bf16, else fp32."""
    if cfg.precision == "fp32":
        return False
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cfg.precision == "bf16" or cpu_has_native_bf16()


def training_args(cfg: TrainConfig, output_dir: Path, seed: int):
    from transformers import TrainingArguments

    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_steps=cfg.max_steps,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        logging_first_step=True,
        save_strategy="no",
        report_to=[],
        bf16=use_bf16(cfg),
        use_cpu=on_cpu,
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        **_checkpointing_args(TrainingArguments, cfg.gradient_checkpointing),
        disable_tqdm=True,
        remove_unused_columns=False,
    )


def _checkpointing_args(args_cls, enabled: bool) -> dict:
    """Activation checkpointing (non-reentrant) under whichever name this transformers uses."""
    fields = getattr(args_cls, "__dataclass_fields__", {})
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


def run_train(cfg: TrainConfig, model_ref: str, corpus_dir: Path, seed: int, out: StageOutput) -> None:
    """Train a LoRA adapter on the corpus train split and save it to ``out.path/final``."""
    from transformers import PrinterCallback, Trainer, set_seed

    set_seed(seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, tokenizer = models.load(model_ref)
    tokens_per_step = cfg.micro_batch_size * cfg.grad_accum * cfg.block_size
    needed = tokens_per_step * cfg.max_steps
    started = time.perf_counter()
    docs, n_tokens = tokenize_until(iter_texts(read_documents(corpus_dir, split="train", columns=["text"])), tokenizer, needed + cfg.block_size)
    blocks = pack(docs, cfg.block_size)
    log.info("tokenized %d documents → %d tokens, %d blocks in %.1fs", len(docs), n_tokens, len(blocks), time.perf_counter() - started)
    min_blocks = cfg.micro_batch_size * cfg.grad_accum
    if len(blocks) < min_blocks:
        raise StageError(
            f"{corpus_dir}: train split has {n_tokens} tokens, fewer than one optimizer step needs "
            f"({min_blocks} blocks of train.block_size={cfg.block_size}); add sources or lower the block size"
        )
    if len(blocks) < needed // cfg.block_size:
        log.warning("train split is smaller than max_steps needs: it will be repeated (epochs > 1)")
    model.config.use_cache = False
    model = apply_lora(model, cfg.lora)
    stats = adapter_stats(model)
    log.info("LoRA r=%d targets=%s: %d trainable of %d parameters", cfg.lora.rank, cfg.lora.targets, stats["trainable_params"], stats["total_params"])
    optimizer, scheduler = build_optimizer(model, cfg)
    metrics = StepMetrics(out.path / "metrics.jsonl", tokens_per_step, cfg.max_minutes * 60 if cfg.max_minutes else None)
    trainer = Trainer(
        model=model,
        args=training_args(cfg, out.path / "trainer", seed),
        train_dataset=PackedDataset(blocks),
        optimizers=(optimizer, scheduler),
        callbacks=[metrics],
    )
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - t0
    final = out.path / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    steps = result.global_step
    out.summary.update(
        {
            "model": model_ref,
            "steps": steps,
            "max_steps": cfg.max_steps,
            "stopped_for_time": metrics.stopped_for_time,
            "train_tokens": steps * tokens_per_step,
            "train_seconds": round(train_seconds, 2),
            "tokens_per_s": round(steps * tokens_per_step / train_seconds, 2) if train_seconds else None,
            "final_loss": metrics.last.get("loss"),
            "first_loss": _first_loss(out.path / "metrics.jsonl"),
            "documents_tokenized": len(docs),
            "bf16": use_bf16(cfg),
            "lora": {"rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "rslora": cfg.lora.rslora, "targets": target_modules(cfg.lora.targets)},
            **stats,
            "adapter": "final",
        }
    )
    shutil.rmtree(out.path / "trainer", ignore_errors=True)


def _first_loss(path: Path) -> float | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        line = fh.readline()
    return json.loads(line).get("loss") if line else None
