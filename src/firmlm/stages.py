"""Stage wiring: fingerprints, skip-when-done, and the order `firmlm run` follows."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmlm.config import FirmlmConfig, dump_config
from firmlm.runs import RunDir, atomic_write_text, fingerprint

log = logging.getLogger(__name__)
ORDER = ("corpus", "train", "eval", "report")
# Keys that change how a run is operated, not what it computes: changing them keeps checkpoints resumable
# and a finished train stage valid.
TRAIN_OPERATIONAL_KEYS = {"max_minutes", "save_steps", "keep_checkpoints", "upload_to", "delete_after_upload",
                          "report_to", "monitor"}


@dataclass
class StageResult:
    name: str
    skipped: bool
    summary: dict[str, Any]


def _rules_hash(cfg: FirmlmConfig) -> str:
    from firmlm.corpus.categories import DEFAULT_RULES

    path = cfg.corpus.category_rules or DEFAULT_RULES
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else "missing"


def fingerprints(cfg: FirmlmConfig) -> dict[str, str]:
    """Each stage's fingerprint: its own config plus everything upstream of it."""
    corpus = fingerprint("corpus", cfg.corpus.model_dump(mode="json"), cfg.seed, _rules_hash(cfg))
    train = fingerprint("train", cfg.train.model_dump(mode="json", exclude=TRAIN_OPERATIONAL_KEYS), cfg.model, cfg.seed, corpus)
    evaluate = fingerprint("eval", cfg.eval.model_dump(mode="json"), cfg.model, cfg.seed, corpus,
                           train if cfg.train.enabled else None, cfg.train.precision)
    report = fingerprint("report", corpus, train if cfg.train.enabled else None, evaluate if cfg.eval.enabled else None)
    return {"corpus": corpus, "train": train, "eval": evaluate, "report": report}


def _corpus(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.corpus.build import build_corpus

    build_corpus(cfg.corpus, cfg.seed, out)


def _train(cfg: FirmlmConfig, run: RunDir, out, resume: Path | None = None) -> None:
    from firmlm.train.stage import run_train

    run.require("corpus")
    run_train(cfg.train, cfg.model, run.stage_path("corpus"), cfg.seed, out, resume=resume)


def _eval(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.evaluate.stage import run_eval
    from firmlm.train.stage import use_bf16

    run.require("corpus")
    train_dir = None
    if cfg.train.enabled:
        run.require("train")
        train_dir = run.stage_path("train")
    run_eval(cfg.eval, cfg.model, run.stage_path("corpus"), train_dir, cfg.seed, use_bf16(cfg.train), out,
             cache_dir=run.root / "cache")  # API responses outlive a crashed or forced eval


def _report(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.report.render import render_report

    render_report(run.root, out)


RUNNERS: dict[str, Callable[..., None]] = {
    "corpus": _corpus,
    "train": _train,
    "eval": _eval,
    "report": _report,
}


def enabled(cfg: FirmlmConfig, name: str) -> bool:
    return bool(getattr(cfg, name).enabled)


def preflight(cfg: FirmlmConfig, names: list[str]) -> None:
    """Checks that must fail before anything is written: model reference, source folders."""
    from firmlm import models

    models.parse_ref(cfg.model)
    if "corpus" in names:
        from firmlm.corpus.sources import check_sources

        check_sources(cfg.corpus)


def run_stages(cfg: FirmlmConfig, names: list[str], force: bool = False, resume: str | None = None) -> list[StageResult]:
    """Run the named stages in pipeline order, skipping those whose fingerprint is unchanged.

    ``resume`` (``auto`` or a checkpoint folder) continues an interrupted train stage.
    """
    from firmlm.distributed import barrier, ensure_process_group, is_main_process
    from firmlm.train.checkpoints import resolve_resume

    preflight(cfg, names)
    ensure_process_group()  # launched with several processes: only the main one writes shared artifacts
    run = RunDir(cfg.run_dir)
    if is_main_process():
        run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.root / "config.yaml", dump_config(cfg))
    barrier()
    fps = fingerprints(cfg)
    results = []
    for name in ORDER:
        if name not in names:
            continue
        if not force and run.is_done(name, fps[name]):
            log.info("%s: unchanged, skipped (use --force to redo)", name)
            results.append(StageResult(name, True, run.summary(name) or {}))
            continue
        log.info("%s: running", name)
        if name == "train":  # every process trains
            checkpoint = resolve_resume(run.stage_path(name), resume, fps[name])
            with run.stage_in_place(name, fps[name], fresh=checkpoint is None) as out:
                RUNNERS[name](cfg, run, out, resume=checkpoint)
        else:
            if is_main_process():
                with run.stage(name, fps[name]) as out:
                    RUNNERS[name](cfg, run, out)
            barrier()
        results.append(StageResult(name, False, run.summary(name) or {}))
    return results
