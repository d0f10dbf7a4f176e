"""The train stage: corpus train split → packed blocks → LoRA continual pretraining → adapter.

Works in place in RUN/train (checkpoints must survive a crash): budget.json (what `auto` settings resolved
to), data.json, metrics.jsonl, anomalies.jsonl, checkpoints/step-N, emergency/step-N, final/, and summary.json
last.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from firmlm import models
from firmlm.config import TrainConfig
from firmlm.distributed import is_main_process, world_size
from firmlm.errors import StageError, TrainingInterrupted
from firmlm.models.placement import cpu_has_native_bf16
from firmlm.runs import StageOutput, atomic_write_json
from firmlm.train import budget
from firmlm.train.checkpoints import CheckpointPublisher, load_monitor_state, read_meta
from firmlm.train.data import load_blocks, tokens_per_step
from firmlm.train.flops import lora_flops_per_token, peak_flops_per_device
from firmlm.train.head_loss import FusedHeadLoss
from firmlm.train.lora import adapter_stats, apply_lora, lean_adapter_saves, target_modules
from firmlm.train.monitor import StepRecord, StopRequest, TrainingMonitor, truncate_jsonl
from firmlm.train.packing import PackedDataset
from firmlm.train.signals import stop_on_signals
from firmlm.train.speed import choose_threads, compile_decoder_layers, store_frozen_weights_bf16, use_masked_sdpa
from firmlm.train.tracking import RecordTrackerIds, prepare_trackers
from firmlm.train.trainer import FirmlmTrainer, SignalStop
from firmlm.train.upload import CheckpointUploader

log = logging.getLogger(__name__)


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
        dataloader_drop_last=cfg.compile,  # a short last batch (data repeated) would make the layers compile again
        disable_tqdm=True,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,  # every adapter takes part in every step: skip DDP's extra graph walk
        **_checkpointing_args(TrainingArguments, cfg.gradient_checkpointing),
    )


def build_trainer(cfg: TrainConfig, model, tokenizer, dataset, output_dir: Path, seed: int, record: StepRecord,
                  callbacks: list, head_loss: FusedHeadLoss | None = None) -> FirmlmTrainer:
    """The Trainer for a peft model on packed blocks (also used by the GPU benchmark). ``cfg`` has its `auto`
    settings resolved (``budget.resolve``, ``fit_to_budget``)."""
    from transformers import PrinterCallback, default_data_collator

    trainer = FirmlmTrainer(
        model=model,
        args=training_args(cfg, output_dir, seed),
        train_dataset=dataset,
        data_collator=default_data_collator,  # stacks blocks; a padding collator would add an attention_mask
        processing_class=tokenizer,
        callbacks=callbacks,
        train_config=cfg,
        record=record,
        head_loss=head_loss,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def check_resumable(resume: Path) -> None:
    """Refuse a checkpoint written with another number of processes: the step size and the data each step
    reads would change silently."""
    saved = read_meta(resume).get("world_size")
    if saved is not None and int(saved) != world_size():
        raise StageError(
            f"--resume {resume}: written by {saved} processes, this run has {world_size()}; the tokens per step and "
            f"the data order would change. Resume with {saved} processes, or start over with --force"
        )


def prepare_model(cfg: TrainConfig, model, bf16: bool) -> tuple[object, FusedHeadLoss | None, dict]:
    """LoRA adapters plus what makes training fast on this machine (see firmlm.train.speed): frozen weights in
    bf16 under CPU autocast, compiled decoder layers and the fused head loss with ``train.compile``."""
    model.config.use_cache = False
    model = lean_adapter_saves(apply_lora(model, cfg.lora))
    frozen_bf16 = store_frozen_weights_bf16(model) if bf16 and not torch.cuda.is_available() else 0
    if cfg.compile:
        use_masked_sdpa(model)
    compiled = compile_decoder_layers(model) if cfg.compile else 0
    head_loss = FusedHeadLoss.for_model(model, compiled=True) if compiled and world_size() == 1 else None
    info = {"frozen_weights_bf16": frozen_bf16, "compiled_layers": compiled, "fused_head_loss": head_loss is not None}
    return model, head_loss, info


def fit_to_budget(cfg: TrainConfig, model, tokenizer, head_loss, corpus_dir: Path, staging: Path,
                  seed: int) -> tuple[TrainConfig, dict]:
    """``max_steps: auto`` on a fresh start: time a few optimizer steps on the first train blocks (undone
    afterwards, see firmlm.train.budget) and fit the steps to what is left of ``max_minutes``."""
    from firmlm.corpus.shards import read_documents

    if world_size() > 1:
        raise StageError(f"train.max_steps: auto measures one process; with {world_size()} processes set "
                         f"train.max_steps explicitly")
    n_steps = budget.WARMUP_STEPS + budget.TIMED_STEPS
    per_step = cfg.micro_batch_size * cfg.grad_accum
    blocks = budget.probe_blocks(read_documents(corpus_dir, split="train", columns=["text"]), tokenizer,
                                 cfg.block_size, n_steps * per_step)
    probe_cfg = cfg.model_copy(update={"max_steps": n_steps, "save_steps": 0, "report_to": [], "max_minutes": None})

    def run(callbacks: list) -> None:
        trainer = build_trainer(probe_cfg, model, tokenizer, PackedDataset(blocks), staging, seed, StepRecord(),
                                callbacks, head_loss)
        trainer.train()

    measured = budget.time_steps(model, run)
    budget_seconds = cfg.max_minutes * 60
    steps = budget.fit_steps(measured["seconds_per_step"], budget_seconds, measured["measure_seconds"])
    log.info("max_steps auto: %.2f s per step of %d tokens (measured over %d steps in %.0f s) → %d steps fill %.1f "
             "minutes", measured["seconds_per_step"], tokens_per_step(cfg), len(measured["step_seconds"]),
             measured["measure_seconds"], steps, cfg.max_minutes)
    return cfg.model_copy(update={"max_steps": steps}), {**measured, "budget_seconds": budget_seconds, "fill": budget.FILL}


def run_train(cfg: TrainConfig, model_ref: str, corpus_dir: Path, seed: int, out: StageOutput, resume: Path | None = None) -> None:
    """Train a LoRA adapter on the corpus train split; ``resume`` continues from a checkpoint."""
    from transformers import set_seed

    train_dir = out.path
    if resume is not None:
        check_resumable(resume)
    bf16 = use_bf16(cfg)
    threads, thread_info = choose_threads(cfg.threads, bf16, world_size())
    record = budget.read_record(train_dir) if resume is not None else None
    run_cfg, resolved = budget.resolve(cfg, bf16, record, resuming=resume is not None)
    dtype = torch.bfloat16 if bf16 and torch.cuda.is_available() else None
    model, tokenizer = models.load(model_ref, dtype=dtype, attn_implementation=cfg.attn_implementation)
    set_seed(seed)  # after loading: a first-time model build must not change the adapter's init
    model, head_loss, speed = prepare_model(run_cfg, model, bf16)
    stats = adapter_stats(model)
    log.info("LoRA r=%d targets=%s: %d trainable of %d parameters; micro-batch %d, %s, %d threads%s",
             cfg.lora.rank, cfg.lora.targets, stats["trainable_params"], stats["total_params"],
             run_cfg.micro_batch_size, "bf16" if bf16 else "fp32", threads, ", compiled" if speed["compiled_layers"] else "")
    staging = train_dir / ".trainer"
    if is_main_process():
        shutil.rmtree(staging, ignore_errors=True)  # checkpoint-N folders a killed run left unpublished
    measured = None
    if run_cfg.max_steps == "auto":
        run_cfg, measured = fit_to_budget(run_cfg, model, tokenizer, head_loss, corpus_dir, staging, seed)
        resolved["max_steps"] = run_cfg.max_steps
    if resolved and is_main_process() and resume is None:
        record = {**resolved, "precision": "bf16" if bf16 else "fp32", "threads": thread_info,
                  **({"measurement": _rounded(measured)} if measured else {})}
        atomic_write_json(train_dir / budget.BUDGET_FILE, record)
    blocks, n_docs = load_blocks(corpus_dir, tokenizer, run_cfg, train_dir)
    step_tokens = tokens_per_step(run_cfg)
    step_record, stop, m = StepRecord(), StopRequest(), cfg.monitor
    monitor = TrainingMonitor(train_dir, step_tokens, step_record, stop,
                              max_seconds=cfg.max_minutes * 60 if cfg.max_minutes else None,
                              window=m.window, loss_spike_ratio=m.loss_spike_ratio, grad_spike_ratio=m.grad_spike_ratio,
                              nan_patience=m.nan_patience, flops_per_token=lora_flops_per_token(model, cfg.block_size),
                              peak_flops=peak_flops_per_device())
    if resume is not None:
        load_monitor_state(resume, monitor)
        step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
        if is_main_process():
            truncate_jsonl(train_dir / "metrics.jsonl", step)
            truncate_jsonl(train_dir / "anomalies.jsonl", step)
        log.info("resuming from %s (step %d)", resume, step)
    uploader = CheckpointUploader(cfg.upload_to, cfg.delete_after_upload) if cfg.upload_to and is_main_process() else None
    publisher = CheckpointPublisher(train_dir, monitor, stop, cfg.keep_checkpoints,
                                    {"fingerprint": out.fingerprint, "model": model_ref}, uploader)
    trackers = prepare_trackers(list(cfg.report_to), train_dir, resuming=resume is not None)
    tracker_ids = [RecordTrackerIds(list(cfg.report_to), train_dir, trackers)] if cfg.report_to else []
    with stop_on_signals() as flag:
        trainer = build_trainer(run_cfg, model, tokenizer, PackedDataset(blocks), staging, seed, step_record,
                                [monitor, SignalStop(flag, stop), publisher, *tracker_ids], head_loss)
        if is_main_process():
            info = run_info(run_cfg, model_ref, model, trainer)
            atomic_write_json(train_dir / "run_info.json", {**info, "resolved_auto": resolved, "threads": threads, **speed})
        t0 = time.perf_counter()
        try:
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        finally:
            if uploader is not None:
                uploader.close()
        train_seconds = time.perf_counter() - t0
    if is_main_process():
        shutil.rmtree(staging, ignore_errors=True)
    del trainer
    release_accelerator_memory()  # eval runs next in this process (main) and sizes its batches from free memory
    if stop.reason is not None:
        saved = publisher.saved[-1] if publisher.saved else None
        raise TrainingInterrupted(
            f"training stopped at step {result.global_step} ({stop.reason}); emergency checkpoint "
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
            "max_steps": run_cfg.max_steps,
            "max_steps_fitted": cfg.max_steps == "auto",
            "micro_batch_size": run_cfg.micro_batch_size,
            "budget": budget.read_record(train_dir),
            "resumed_from": str(resume) if resume else None,
            "stopped_for_time": monitor.stop_reason == "time_budget",
            "train_tokens": steps * step_tokens,
            "train_seconds": round(monitor.train_seconds, 2),
            "seconds_this_process": round(train_seconds, 2),
            "tokens_per_s": round(done_here * step_tokens / train_seconds, 2) if train_seconds else None,
            "tokens_per_s_per_device": monitor.last.get("tokens_per_s_per_device"),
            "mfu": monitor.last.get("mfu"),
            "final_loss": monitor.last.get("loss"),
            "first_loss": _first_loss(train_dir / "metrics.jsonl"),
            "anomalies": dict(monitor.counts),
            "skipped_optimizer_steps": monitor.skipped_steps,
            "documents_tokenized": n_docs,
            "uploads": {"done": len(uploader.uploaded), "failed": uploader.failed} if uploader is not None else None,
            "bf16": bf16,
            "threads": thread_info,
            **speed,
            "world_size": world_size(),
            "lora": {"rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "rslora": cfg.lora.rslora,
                     "targets": target_modules(cfg.lora.targets)},
            **stats,
            "adapter": "final",
        }
    )


def _rounded(measured: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in measured.items()}


def release_accelerator_memory() -> None:
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


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

