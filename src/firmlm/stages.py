"""Stage wiring: fingerprints, skip-when-done, and the order `firmlm run` follows."""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmlm.config import FirmlmConfig, dump_config
from firmlm.errors import StageError
from firmlm.runs import RunDir, atomic_write_json, atomic_write_text, fingerprint

log = logging.getLogger(__name__)
ORDER = ("map", "corpus", "train", "eval", "exec", "report")
SYNC_DIR = ".sync"  # file markers the main process leaves for the other ranks
# Keys that change how a run is operated, not what it computes: changing them keeps checkpoints resumable
# and a finished train stage valid.
TRAIN_OPERATIONAL_KEYS = {"max_minutes", "save_steps", "keep_checkpoints", "upload_to", "delete_after_upload",
                          "report_to", "monitor", "threads"}


@dataclass
class StageResult:
    name: str
    skipped: bool
    summary: dict[str, Any]


def _rules_hash(cfg: FirmlmConfig) -> str:
    from firmlm.corpus.categories import DEFAULT_RULES

    path = cfg.corpus.category_rules or DEFAULT_RULES
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else "missing"


def _map_inputs(cfg: FirmlmConfig) -> list:
    """What the map stage reads besides its config: the documents' contents and the repositories' source configs."""
    from firmlm.specmap.stage import document_files

    inputs: list = []
    for entry in cfg.map.documents:
        if entry.path is None:  # a Debian package: its name and filters (a newer upload is fetched as corpus does)
            inputs.append(entry.model_dump(mode="json"))
        else:
            path = Path(entry.path)
            files = document_files(path) if path.exists() else []
            inputs.append([[str(f), hashlib.sha256(f.read_bytes()).hexdigest()] for f in files])
        source = next((s for s in cfg.corpus.sources if s.name == entry.repository), None)
        inputs.append(source.model_dump(mode="json") if source else entry.repository)
    for path in cfg.map.vocabulary:
        inputs.append([str(path), hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file()
                       else "missing"])
    return inputs


def _mapping_inputs(cfg: FirmlmConfig, specmap: str) -> list:
    """What `mapping` corpus sources read: this run's map stage (its fingerprint) or a named file (its hash)."""
    inputs: list = []
    for src in cfg.corpus.sources:
        if src.kind != "mapping":
            continue
        if src.path is None:
            inputs.append(["map", specmap])
            continue
        path = Path(src.path) / "documents.parquet" if Path(src.path).is_dir() else Path(src.path)
        inputs.append([str(path), hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"])
    return inputs


def _task_inputs(cfg: FirmlmConfig) -> list:
    """The exec stage's task files and their contents (the bundled suite when none is configured)."""
    from firmlm.exec.suite import suite_dir
    from firmlm.exec.tasks import task_files

    folder = Path(cfg.exec.tasks) if cfg.exec.tasks else suite_dir()
    if not folder.exists():
        return [str(folder), "missing"]
    return [[f.name, hashlib.sha256(f.read_bytes()).hexdigest()] for f in task_files(folder)]


def fingerprints(cfg: FirmlmConfig) -> dict[str, str]:
    """Each stage's fingerprint: its own config plus everything upstream of it."""
    specmap = fingerprint("map", cfg.map.model_dump(mode="json"), _map_inputs(cfg))
    corpus = fingerprint("corpus", cfg.corpus.model_dump(mode="json"), cfg.seed, _rules_hash(cfg),
                         *_mapping_inputs(cfg, specmap))
    train = fingerprint("train", cfg.train.model_dump(mode="json", exclude=TRAIN_OPERATIONAL_KEYS), cfg.model, cfg.seed, corpus)
    evaluate = fingerprint("eval", cfg.eval.model_dump(mode="json"), cfg.model, cfg.seed, corpus,
                           train if cfg.train.enabled else None, cfg.train.precision)
    execution = fingerprint("exec", cfg.exec.model_dump(mode="json"), cfg.model, train if cfg.train.enabled else None,
                            cfg.train.precision, _task_inputs(cfg))
    report = fingerprint("report", corpus, train if cfg.train.enabled else None, evaluate if cfg.eval.enabled else None,
                         *([specmap] if cfg.map.enabled else []), *([execution] if cfg.exec.enabled else []))
    return {"map": specmap, "corpus": corpus, "train": train, "eval": evaluate, "exec": execution, "report": report}


def _map(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.models.references import cache_dir
    from firmlm.specmap.stage import run_map

    run_map(cfg.map, cfg.corpus, out, cache_dir() / "specmap")


def _corpus(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.corpus.build import build_corpus

    build_corpus(cfg.corpus, cfg.seed if cfg.corpus.split_seed is None else cfg.corpus.split_seed, out,
                 map_dir=run.stage_path("map"))


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


def _exec(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.exec.stage import run_exec
    from firmlm.train.stage import use_bf16

    train_dir = None
    if cfg.train.enabled:
        run.require("train")
        train_dir = run.stage_path("train")
    run_exec(cfg.exec, cfg.model, train_dir, use_bf16(cfg.train), out, cache_dir=run.root / "cache")


def _report(cfg: FirmlmConfig, run: RunDir, out) -> None:
    from firmlm.report.render import render_report

    render_report(run.root, out)


RUNNERS: dict[str, Callable[..., None]] = {
    "map": _map,
    "corpus": _corpus,
    "train": _train,
    "eval": _eval,
    "exec": _exec,
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

        map_runs_first = "map" in names and cfg.map.enabled  # it writes what `mapping` sources read
        check_sources(cfg.corpus, Path(cfg.run_dir) / "map", defer_mapping=map_runs_first)


def train_start(run: RunDir, resume: str | None, fp: str, force: bool) -> Path | None:
    """The checkpoint the train stage continues from (None: a fresh start, which empties RUN/train).

    ``--resume auto|PATH`` picks as asked. Without it, a resumable checkpoint of this train configuration
    (an interrupted run) is continued automatically; checkpoints of another configuration are never deleted
    silently: that is refused unless ``--force`` asks for a fresh start.
    """
    from firmlm.train.checkpoints import latest_matching, list_resumable, resolve_resume

    train_dir = run.stage_path("train")
    if resume:
        checkpoint = resolve_resume(train_dir, resume, fp)
        if checkpoint is not None or force:
            return checkpoint
    elif not force:
        checkpoint = latest_matching(train_dir, fp)
        if checkpoint is not None:
            log.info("train: continuing the interrupted run from %s (--force starts over)", checkpoint)
            return checkpoint
    others = list_resumable(train_dir)
    if others and not force:
        raise StageError(
            f"{train_dir}: holds {len(others)} resumable checkpoint(s) of another train config (newest: {others[-1]}); "
            f"starting over would delete them. Rerun with --force to start over, restore the config that wrote them "
            f"and add --resume auto, or set another run_dir"
        )
    return None


def run_stages(cfg: FirmlmConfig, names: list[str], force: bool = False, resume: str | None = None) -> list[StageResult]:
    """Run the named stages in pipeline order, skipping those whose fingerprint is unchanged.

    ``resume`` (``auto`` or a checkpoint folder) continues an interrupted train stage. Launched with several
    processes, every process trains; the other stages run on the main process while the others wait for its
    file marker (a collective would time out during a long corpus or eval stage).
    """
    from firmlm import models
    from firmlm.distributed import barrier, ensure_process_group, is_main_process, wait_for_marker

    if resume and "train" not in names:
        raise StageError(f"--resume {resume}: only the train stage resumes from checkpoints; {', '.join(names)} "
                         f"restart from their inputs (a finished stage is skipped, an interrupted one is redone)")
    preflight(cfg, names)
    ensure_process_group()  # launched with several processes: only the main one writes shared artifacts
    run = RunDir(cfg.run_dir)
    sync = run.root / SYNC_DIR
    if is_main_process():
        run.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(sync, ignore_errors=True)  # markers of an earlier invocation
        atomic_write_text(run.root / "config.yaml", dump_config(cfg))
        if "train" in names:
            models.prepare(cfg.model)  # one process converts/builds a cached model; the others load it
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
            checkpoint = train_start(run, resume, fps[name], force)
            with run.stage_in_place(name, fps[name], fresh=checkpoint is None) as out:
                RUNNERS[name](cfg, run, out, resume=checkpoint)
        elif is_main_process():
            marker = sync / f"{name}.json"
            try:
                with run.stage(name, fps[name]) as out:
                    RUNNERS[name](cfg, run, out)
            except BaseException as exc:
                atomic_write_json(marker, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
                raise
            atomic_write_json(marker, {"ok": True, "fingerprint": fps[name]})
        else:
            wait_for_marker(sync / f"{name}.json", f"the {name} stage")
        results.append(StageResult(name, False, run.summary(name) or {}))
    return results
