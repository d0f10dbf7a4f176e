"""The corpus stage: sources → documents (one per file) → category + split → parquet shards + manifest."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmlm.config import CorpusConfig, SourceConfig
from firmlm.corpus.categories import Categorizer, load_rules
from firmlm.corpus.chunking import chunk_text
from firmlm.corpus.debian import AptSourceFetcher
from firmlm.corpus.dedup import DedupSettings, find_duplicates
from firmlm.corpus.reader import kind_of, read_tree, spdx_license
from firmlm.corpus.shards import write_shards
from firmlm.errors import SourceError
from firmlm.models import cache_dir
from firmlm.runs import StageOutput, atomic_write_json

log = logging.getLogger(__name__)
DROP_EXAMPLES = 5


@dataclass
class ResolvedSource:
    """A source with the local tree it will be read from and where that tree came from."""

    config: SourceConfig
    root: Path
    origin: str
    info: dict[str, Any] = field(default_factory=dict)


def check_sources(cfg: CorpusConfig) -> None:
    """Fail before writing anything when a local source folder is missing."""
    if not cfg.sources:
        raise SourceError("corpus.sources: empty; add at least one local folder or Debian source package")
    for src in cfg.sources:
        if src.kind == "local" and not (src.path and src.path.is_dir()):
            raise SourceError(f"corpus.sources['{src.name}'].path: folder not found: {src.path}")


def resolve_sources(cfg: CorpusConfig) -> tuple[list[ResolvedSource], dict[str, str]]:
    """Local folders as they are; Debian packages downloaded and unpacked into the cache.

    A Debian package that cannot be fetched is skipped with its reason (returned by source name);
    the stage fails only when no source is left.
    """
    check_sources(cfg)
    fetcher: AptSourceFetcher | None = None
    out, unavailable = [], {}
    suffixes = tuple(cfg.extensions)
    for src in cfg.sources:
        if src.kind == "local":
            out.append(ResolvedSource(src, Path(src.path), f"local:{src.path}", {"path": str(src.path)}))
            continue
        try:
            fetcher = fetcher or AptSourceFetcher(cache_dir())
            tree = fetcher.fetch(src.package, suffixes, src.include, src.exclude)
        except SourceError as exc:
            log.warning("source '%s' skipped: %s", src.name, exc)
            unavailable[src.name] = str(exc)
            continue
        info = {"package": tree.package, "version": tree.version, "tarballs": tree.tarballs}
        out.append(ResolvedSource(src, tree.path, f"debian:{tree.package}={tree.version}", info))
    if not out:
        raise SourceError("corpus.sources: no source could be read: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()))
    return out, unavailable


def split_of(role: str, repo: str, path: str, seed: int, indomain_fraction: float) -> str:
    """heldout for held-out repositories; a stable hash of the path picks indomain files of the others."""
    if role == "heldout":
        return "heldout"
    digest = hashlib.sha256(f"{seed}:{repo}/{path}".encode()).digest()
    return "indomain" if int.from_bytes(digest[:8], "big") / 2**64 < indomain_fraction else "train"


def doc_id(repo: str, path: str) -> str:
    return hashlib.sha1(f"{repo}/{path}".encode()).hexdigest()[:16]


class Accounting:
    """Counts per stage step, drops per reason (with a few example paths), per category and split."""

    def __init__(self) -> None:
        self.read = Counter[str]()
        self.kept = Counter[str]()
        self.drops = Counter[str]()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.by_category: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_split = Counter[str]()
        self.chars_by_split = Counter[str]()
        self.chunks = 0
        self.docs = Counter[str]()

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


def documents(source: ResolvedSource, cfg: CorpusConfig, seed: int, cat: Categorizer, acc: Accounting) -> Iterator[dict[str, Any]]:
    """Documents of one source in path order: each kept file, chunked, every chunk with a ``// File:`` header."""
    src = source.config
    for rec in read_tree(source.root, tuple(cfg.extensions), src.include, src.exclude, src.max_files, cfg.max_file_bytes):
        acc.read[src.name] += 1
        if rec.text is None:
            acc.drop(src.name, rec.path, rec.skip or "unknown")
            continue
        category = cat(src.name, rec.path, rec.text)
        split = split_of(src.role, src.name, rec.path, seed, cfg.indomain_fraction)
        license_id = spdx_license(rec.text) or ""
        header = f"// File: {src.name}/{rec.path}\n"
        acc.kept[src.name] += 1
        for i, piece in enumerate(chunk_text(rec.text, cfg.max_chunk_chars, cfg.min_chunk_chars)):
            if len(piece.strip()) < cfg.min_chunk_chars and i > 0:
                acc.drop(src.name, f"{rec.path}#{i}", "chunk-too-short")
                continue
            text = header + piece
            yield {
                "text": text,
                "category": category,
                "split": split,
                "source": source.origin,
                "repo": src.name,
                "path": rec.path,
                "chunk": i,
                "kind": kind_of(rec.path),
                "license": license_id,
                "doc_id": doc_id(src.name, f"{rec.path}#{i}"),
                "n_chars": len(text),
            }


def interleave(streams: list[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Round-robin over sources so any prefix of the train split mixes every repository."""
    longest = max((len(s) for s in streams), default=0)
    for i in range(longest):
        for stream in streams:
            if i < len(stream):
                yield stream[i]


def build_corpus(cfg: CorpusConfig, seed: int, out: StageOutput) -> None:
    """Run the corpus stage into ``out.path``."""
    cat = load_rules(cfg.category_rules)
    sources, unavailable = resolve_sources(cfg)
    acc = Accounting()
    streams = []
    for source in sources:
        log.info("reading %s (%s)", source.config.name, source.origin)
        streams.append(list(documents(source, cfg, seed, cat, acc)))
    docs = list(interleave(streams))
    d = cfg.dedup
    drops = find_duplicates(docs, DedupSettings(d.exact, d.near, d.threshold, d.num_perm, d.shingle)) if d.enabled else {}
    kept = []
    for i, doc in enumerate(docs):
        if i in drops:
            acc.drop(doc["repo"], f"{doc['path']}#{doc['chunk']}", drops[i])
        else:
            acc.count(doc)
            kept.append(doc)
    log.info("dedup: %d of %d documents removed (%d train documents leaked from evaluation splits)",
             len(drops), len(docs), sum(1 for r in drops.values() if r == "leakage"))
    shards = write_shards(kept, out.path, cfg.shard_rows)
    manifest = {
        "inputs": [
            {"name": s.config.name, "kind": s.config.kind, "role": s.config.role, "origin": s.origin, **s.info,
             "files_read": acc.read[s.config.name], "files_kept": acc.kept[s.config.name],
             "documents": acc.docs[s.config.name]}
            for s in sources
        ],
        "unavailable_sources": unavailable,
        "category_rules": cat.source,
        "counts": {"files_read": sum(acc.read.values()), "files_kept": sum(acc.kept.values()),
                   "documents": acc.chunks, "shards": len(shards)},
        "drops": dict(sorted(acc.drops.items())),
        "leakage_guard_removed": acc.drops.get("leakage", 0),
        "drop_examples": dict(acc.examples),
        "per_split": dict(acc.by_split),
        "chars_per_split": dict(acc.chars_by_split),
        "per_category": {c: dict(v) for c, v in sorted(acc.by_category.items())},
        "rules_taken": dict(sorted(cat.taken.items())),
    }
    atomic_write_json(out.path / "manifest.json", manifest)
    out.summary.update(
        {
            "documents": manifest["counts"]["documents"],
            "files_read": manifest["counts"]["files_read"],
            "dropped": sum(acc.drops.values()),
            "leakage_removed": acc.drops.get("leakage", 0),
            "unavailable_sources": sorted(unavailable),
            "per_split": manifest["per_split"],
            "categories": {c: sum(v.values()) for c, v in manifest["per_category"].items()},
            "shards": shards,
        }
    )
