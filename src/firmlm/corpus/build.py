"""The corpus stage: sources → datatrove pipeline (read, annotate, filter, clean, scrub, chunk, signatures;
parallel tasks, resumable) → global pass (dedup with leakage guard, fork detection, source interleaving) →
parquet shards + manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from firmlm import __version__
from firmlm.config import CorpusConfig
from firmlm.corpus.blocks import EVAL_FILE_SCHEMA, pipeline
from firmlm.corpus.categories import load_rules
from firmlm.corpus.dedup import DedupSettings, find_duplicates, find_forks
from firmlm.corpus.pipeline import run_pipeline
from firmlm.corpus.shards import COLUMNS, write_shards
from firmlm.corpus.sources import ResolvedSource, resolve_sources
from firmlm.corpus.splits import doc_id
from firmlm.runs import StageOutput, atomic_write_json

log = logging.getLogger(__name__)
DROP_EXAMPLES = 5
EVAL_FILES = "eval_files.parquet"  # indomain/heldout files as they are in the repository (secrets scrubbed)


class Accounting:
    """Counts per stage step, drops per reason (with a few example paths), per category and split."""

    def __init__(self) -> None:
        self.read = Counter[str]()
        self.kept_files: dict[str, set[int]] = defaultdict(set)
        self.drops = Counter[str]()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.by_category: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_split = Counter[str]()
        self.chars_by_split = Counter[str]()
        self.chunks = 0
        self.docs = Counter[str]()
        self.cleaned = Counter[str]()
        self.secrets = Counter[str]()

    def count(self, doc: dict[str, Any]) -> None:
        """Count a document that is written to the shards."""
        self.by_category[doc["category"]][doc["split"]] += 1
        self.by_split[doc["split"]] += 1
        self.chars_by_split[doc["split"]] += doc["n_chars"]
        self.chunks += 1
        self.docs[doc["repo"]] += 1

    def drop(self, repo: str, path: str, reason: str) -> None:
        self.drops[reason] += 1
        if len(self.examples[reason]) < DROP_EXAMPLES:
            self.examples[reason].append(f"{repo}/{path}")


def interleave(streams: list[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Round-robin over sources so any prefix of the train split mixes every repository."""
    longest = max((len(s) for s in streams), default=0)
    for i in range(longest):
        for stream in streams:
            if i < len(stream):
                yield stream[i]


def _work_key(cfg: CorpusConfig, seed: int, sources: list[ResolvedSource]) -> str:
    rules = load_rules(cfg.category_rules).source
    parts = [cfg.model_dump(mode="json", exclude={"executor"}), seed, [s.origin for s in sources],
             hashlib.sha256(Path(rules).read_bytes()).hexdigest(), __version__, cfg.executor.tasks]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_task_outputs(work_dir: Path, tasks: int, acc: Accounting, sources: list[ResolvedSource]) -> list[list[dict]]:
    """Per source, its documents in file order; drops accounted for."""
    streams: list[list[dict]] = [[] for _ in sources]
    read: dict[str, set[int]] = defaultdict(set)  # files listed and opened (skips found while listing excluded)
    for rank in range(tasks):
        for row in pq.read_table(work_dir / "drops" / f"{rank:05d}.parquet").to_pylist():
            acc.drop(row["repo"], row["path"], row["reason"])
            if row["file_index"] >= 0:
                read[row["repo"]].add(row["file_index"])
        for row in pq.read_table(work_dir / "docs" / f"{rank:05d}.parquet").to_pylist():
            streams[row["source_index"]].append(row)
    for stream in streams:
        stream.sort(key=lambda r: (r["file_index"], r["chunk"]))
        for row in stream:
            read[row["repo"]].add(row["file_index"])
            acc.kept_files[row["repo"]].add(row["file_index"])
            acc.cleaned.update(json.loads(row.pop("cleaned") or "{}"))
            acc.secrets.update(json.loads(row.pop("secrets") or "{}"))
    acc.read.update({repo: len(files) for repo, files in read.items()})
    return streams


def write_eval_files(work_dir: Path, tasks: int, target: Path) -> int:
    """Collect the tasks' evaluation-split files (repository text) into one parquet file, in a stable order."""
    tables = [pq.read_table(p) for rank in range(tasks) if (p := work_dir / "evalfiles" / f"{rank:05d}.parquet").is_file()]
    table = pa.concat_tables(tables) if tables else EVAL_FILE_SCHEMA.empty_table()
    table = table.sort_by([("split", "ascending"), ("category", "ascending"), ("repo", "ascending"), ("path", "ascending")])
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(target)
    return table.num_rows


def build_corpus(cfg: CorpusConfig, seed: int, out: StageOutput, map_dir: Path | None = None) -> None:
    """Run the corpus stage into ``out.path`` (task outputs go to ``RUN/work/corpus-<key>`` until it ends);
    ``mapping`` sources read ``map_dir`` (the run's map stage) unless they name their own file."""
    sources, unavailable = resolve_sources(cfg, map_dir=map_dir)
    work_dir = out.path.parent / "work" / f"corpus-{_work_key(cfg, seed, sources)}"
    spec = [{"name": s.config.name, "kind": s.config.kind, "root": str(s.root), "origin": s.origin,
             "role": s.config.role, "include": s.config.include, "exclude": s.config.exclude,
             "max_files": s.config.max_files,
             "license": s.license, "skipped": s.skipped} for s in sources]
    log.info("corpus: %d sources, %d tasks on the %s executor", len(sources), cfg.executor.tasks, cfg.executor.kind)
    run_info = run_pipeline(cfg.executor, pipeline(spec, cfg, seed, work_dir), work_dir)
    acc = Accounting()
    streams = _read_task_outputs(work_dir, cfg.executor.tasks, acc, sources)
    docs = list(interleave(streams))
    rules_taken = Counter(r["rule"] for r in docs if r["chunk"] == 0)
    d = cfg.dedup
    matched: dict[int, int] = {}
    drops = (find_duplicates(docs, DedupSettings(d.exact, d.near, d.threshold, d.num_perm, d.shingle, d.leakage_threshold), matched)
             if d.enabled else {})
    forks = find_forks(docs, matched, d.fork_threshold) if d.enabled else {}
    kept = []
    for i, doc in enumerate(docs):
        if i in drops:
            acc.drop(doc["repo"], f"{doc['path']}#{doc['chunk']}", drops[i])
        elif d.drop_forks and doc["repo"] in forks:
            acc.drop(doc["repo"], f"{doc['path']}#{doc['chunk']}", "fork")
        else:
            doc["doc_id"] = doc_id(doc["repo"], f"{doc['path']}#{doc['chunk']}")
            doc["n_chars"] = len(doc["text"])
            acc.count(doc)
            kept.append({k: doc[k] for k in COLUMNS})
    log.info("dedup: %d of %d documents removed (%d train documents leaked from evaluation splits); forks: %s",
             len(drops), len(docs), sum(1 for r in drops.values() if r == "leakage"), forks or "none")
    shards = write_shards(kept, out.path, cfg.shard_rows)
    eval_files = write_eval_files(work_dir, cfg.executor.tasks, out.path / EVAL_FILES)
    manifest = {
        "inputs": [
            {"name": s.config.name, "kind": s.config.kind, "role": s.config.role, "origin": s.origin, **s.info,
             "license": s.license, "files_read": acc.read[s.config.name],
             "files_kept": len(acc.kept_files[s.config.name]), "documents": acc.docs[s.config.name]}
            for s in sources
        ],
        "unavailable_sources": unavailable,
        "category_rules": load_rules(cfg.category_rules).source,
        "executor": {"kind": cfg.executor.kind, **run_info},
        "counts": {"files_read": sum(acc.read.values()), "files_kept": sum(len(v) for v in acc.kept_files.values()),
                   "eval_files": eval_files,
                   "chunks_before_dedup": len(docs), "documents": acc.chunks, "shards": len(shards)},
        "drops": dict(sorted(acc.drops.items())),
        "leakage_guard_removed": acc.drops.get("leakage", 0),
        "drop_examples": dict(acc.examples),
        "cleaning_changes": dict(sorted(acc.cleaned.items())),
        "secrets_replaced": dict(sorted(acc.secrets.items())),
        "forks": forks,
        "per_split": dict(acc.by_split),
        "chars_per_split": dict(acc.chars_by_split),
        "per_category": {c: dict(v) for c, v in sorted(acc.by_category.items())},
        "rules_taken": dict(sorted(rules_taken.items())),
    }
    atomic_write_json(out.path / "manifest.json", manifest)
    shutil.rmtree(work_dir, ignore_errors=True)
    out.summary.update(
        {
            "documents": manifest["counts"]["documents"],
            "files_read": manifest["counts"]["files_read"],
            "dropped": sum(acc.drops.values()),
            "leakage_removed": acc.drops.get("leakage", 0),
            "secrets_replaced": sum(acc.secrets.values()),
            "unavailable_sources": sorted(unavailable),
            "per_split": manifest["per_split"],
            "categories": {c: sum(v.values()) for c, v in manifest["per_category"].items()},
            "shards": shards,
        }
    )
