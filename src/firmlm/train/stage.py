"""The train stage: corpus train split → packed blocks → LoRA continual pretraining → adapter.

Works in place in RUN/train (checkpoints must survive a crash): metrics.jsonl, anomalies.jsonl,
checkpoints/step-N, emergency/step-N, final/, and summary.json last.
"""

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
from firmlm.distributed import is_main_process, world_size
from firmlm.errors import StageError, TrainingInterrupted
from firmlm.models import cache_dir
from firmlm.runs import StageOutput, atomic_write_json
from firmlm.train.lora import adapter_stats, apply_lora, lean_adapter_saves, target_modules
from firmlm.train.monitor import TrainingMonitor, truncate_jsonl
from firmlm.train.optim import build_optimizer
from firmlm.train.packing import PackedDataset, pack, tokenize_until
from firmlm.train.signals import stop_on_signals
from firmlm.train.token_cache import cache_key, load_blocks_mmap, save_blocks, tokenizer_fingerprint
from firmlm.train.trainer import FirmlmTrainer, SignalStop, load_monitor_state
from firmlm.train.upload import CheckpointUploader

log = logging.getLogger(__name__)
SPREAD_MARGIN = 1.5  # select 1.5x the characters the token budget needs (the chars/token estimate is rough)


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


def _checkpointing_args(args_cls, enabled: bool) -> dict:
    """Activation checkpointing (non-reentrant) under whichever name this transformers uses."""
    fields = getattr(args_cls, "__dataclass_fields__", {})
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


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
        logging_nan_inf_filter=True,  # keeps the Trainer's accumulator sane; the monitor logs raw losses
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=None,
        report_to=list(cfg.report_to),
        bf16=use_bf16(cfg),
        tf32=torch.cuda.is_available() or None,
        use_cpu=on_cpu,
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
        **_checkpointing_args(TrainingArguments, cfg.gradient_checkpointing),
    )


def spread_indices(n_chars: list[int], needed_chars: int) -> list[int]:
    """Indices of documents taken at an even stride over the whole split (kept in corpus order) so that a
    budget smaller than the corpus still sees every part of it; all of them when the budget covers it."""
    total = sum(n_chars)
    if total <= needed_chars or not n_chars:
        return list(range(len(n_chars)))
    stride = max(1, total // max(1, needed_chars))
    return list(range(0, len(n_chars), stride))


def load_blocks(corpus_dir: Path, tokenizer, cfg: TrainConfig):
    """Tokenize the train split in corpus order (only what max_steps needs, spread over the split) and pack it."""
    tokens_per_step = cfg.micro_batch_size * cfg.grad_accum * cfg.block_size * world_size()
    needed = tokens_per_step * cfg.max_steps + cfg.block_size
    started = time.perf_counter()
    rows = list(read_documents(corpus_dir, split="train", columns=["text", "n_chars", "doc_id"]))
    probe = "".join(r["text"] for r in rows[:50])[:200_000]
    chars_per_token = len(probe) / max(1, len(tokenizer(probe, add_special_tokens=False)["input_ids"])) if probe else 3.0
    picked = spread_indices([r["n_chars"] for r in rows], int(needed * chars_per_token * SPREAD_MARGIN))
    key = cache_key([rows[i]["doc_id"] for i in picked], [rows[i]["n_chars"] for i in picked],
                    tokenizer_fingerprint(tokenizer), cfg.block_size, needed)
    cache_file = cache_dir() / "tokens" / f"{key}.arrow"
    cached = load_blocks_mmap(cache_file, cfg.block_size)
    if cached is not None:
        blocks, doc_tokens = cached
        log.info("token cache hit: %d blocks from %s", len(blocks), cache_file)
        n_tokens = sum(doc_tokens)
    else:
        docs, n_tokens = tokenize_until((rows[i]["text"] for i in picked), tokenizer, needed)
        blocks = pack(docs, cfg.block_size)
        doc_tokens = [len(d) for d in docs]
        if is_main_process():
            save_blocks(cache_file, blocks, doc_tokens)
        log.info("tokenized %d of %d train documents → %d tokens, %d blocks in %.1fs", len(docs), len(rows), n_tokens,
                 len(blocks), time.perf_counter() - started)
    min_blocks = cfg.micro_batch_size * cfg.grad_accum * world_size()
    if len(blocks) < min_blocks:
        raise StageError(
            f"{corpus_dir}: train split has {n_tokens} tokens, fewer than one optimizer step needs "
            f"({min_blocks} blocks of train.block_size={cfg.block_size}); add sources or lower the block size"
        )
    if len(blocks) < (needed - cfg.block_size) // cfg.block_size:
        log.warning("train split is smaller than max_steps needs: it will be repeated (epochs > 1)")
    return blocks, len(doc_tokens)


def run_train(cfg: TrainConfig, model_ref: str, corpus_dir: Path, seed: int, out: StageOutput, resume: Path | None = None) -> None:
    """Train a LoRA adapter on the corpus train split; ``resume`` continues from a checkpoint."""
    from transformers import PrinterCallback, set_seed

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    train_dir = out.path
    dtype = torch.bfloat16 if use_bf16(cfg) and torch.cuda.is_available() else None
    model, tokenizer = models.load(model_ref, dtype=dtype, attn_implementation=cfg.attn_implementation)
    blocks, n_docs = load_blocks(corpus_dir, tokenizer, cfg)
    set_seed(seed)  # after loading: a first-time model build must not change the adapter's init
    tokens_per_step = cfg.micro_batch_size * cfg.grad_accum * cfg.block_size * world_size()  # global
    model.config.use_cache = False
    model = lean_adapter_saves(apply_lora(model, cfg.lora))
    stats = adapter_stats(model)
    log.info("LoRA r=%d targets=%s: %d trainable of %d parameters", cfg.lora.rank, cfg.lora.targets,
             stats["trainable_params"], stats["total_params"])
    optimizer, scheduler = build_optimizer(model, cfg)
    m = cfg.monitor
    monitor = TrainingMonitor(train_dir, tokens_per_step, max_seconds=cfg.max_minutes * 60 if cfg.max_minutes else None,
                              window=m.window, loss_spike_ratio=m.loss_spike_ratio, grad_spike_ratio=m.grad_spike_ratio,
                              nan_patience=m.nan_patience)
    if resume is not None:
        load_monitor_state(resume, monitor)
        step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
        if is_main_process():
            truncate_jsonl(train_dir / "metrics.jsonl", step)
            truncate_jsonl(train_dir / "anomalies.jsonl", step)
        log.info("resuming from %s (step %d)", resume, step)
    with stop_on_signals() as flag:
        signal_stop = SignalStop(flag)
        trainer = FirmlmTrainer(
            model=model,
            args=training_args(cfg, train_dir / ".trainer", seed),
            train_dataset=PackedDataset(blocks),
            optimizers=(optimizer, scheduler),
            callbacks=[monitor, signal_stop],
            train_dir=train_dir,
            monitor=monitor,
            keep_checkpoints=cfg.keep_checkpoints,
            checkpoint_meta={"fingerprint": out.fingerprint, "model": model_ref},
            tokenizer_for_preview=tokenizer,
        )
        signal_stop.trainer = trainer
        trainer.remove_callback(PrinterCallback)
        if cfg.upload_to and is_main_process():
            trainer.uploader = CheckpointUploader(cfg.upload_to, cfg.delete_after_upload)
        if is_main_process():
            atomic_write_json(train_dir / "run_info.json", run_info(cfg, model_ref, model, trainer))
        t0 = time.perf_counter()
        try:
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        finally:
            if trainer.uploader is not None:
                trainer.uploader.close()
        train_seconds = time.perf_counter() - t0
    shutil.rmtree(train_dir / ".trainer", ignore_errors=True)
    if trainer.emergency_reason is not None:
        saved = trainer.saved[-1] if trainer.saved else None
        raise TrainingInterrupted(
            f"training stopped at step {result.global_step} ({trainer.emergency_reason}); emergency checkpoint "
            f"{saved}; continue with: firmlm train -c CONFIG --resume auto"
        )
    if is_main_process():
        final_tmp = train_dir / ".final.tmp"
        shutil.rmtree(final_tmp, ignore_errors=True)
        model.save_pretrained(final_tmp)
        tokenizer.save_pretrained(final_tmp)
        shutil.rmtree(train_dir / "final", ignore_errors=True)
        os.replace(final_tmp, train_dir / "final")
    steps = result.global_step
    done_here = steps - (monitor.first_step or 0)
    out.summary.update(
        {
            "model": model_ref,
            "steps": steps,
            "max_steps": cfg.max_steps,
            "resumed_from": str(resume) if resume else None,
            "stopped_for_time": monitor.stop_reason == "time_budget",
            "train_tokens": steps * tokens_per_step,
            "train_seconds": round(train_seconds, 2),
            "tokens_per_s": round(done_here * tokens_per_step / train_seconds, 2) if train_seconds else None,
            "final_loss": monitor.last.get("loss"),
            "first_loss": _first_loss(train_dir / "metrics.jsonl"),
            "anomalies": dict(monitor.counts),
            "skipped_optimizer_steps": getattr(optimizer, "skipped_steps", 0),
            "documents_tokenized": n_docs,
            "uploads": {"done": len(trainer.uploader.uploaded), "failed": trainer.uploader.failed}
            if trainer.uploader is not None else None,
            "bf16": use_bf16(cfg),
            "lora": {"rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "rslora": cfg.lora.rslora,
                     "targets": target_modules(cfg.lora.targets)},
            **stats,
            "adapter": "final",
        }
    )


def run_info(cfg: TrainConfig, model_ref: str, model, trainer) -> dict:
    """What a tracker or a person needs to reproduce the run: config, adapted modules, devices."""
    adapted = sorted({n.rsplit(".lora_", 1)[0] for n, _ in model.named_parameters() if ".lora_" in n})
    return {
        "model": model_ref,
        "train_config": cfg.model_dump(mode="json"),
        "adapted_modules": adapted,
        "world_size": trainer.args.world_size,
        "device": str(trainer.args.device),
        "cuda_devices": torch.cuda.device_count(),
        "torch": torch.__version__,
    }


def _first_loss(path: Path) -> float | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        line = fh.readline()
    return json.loads(line).get("loss") if line else None

