"""The map stage: hardware documents → sections → folders, files, symbols (M1-M3) → status (M4).

Writes ``RUN/map/mapping.json`` (see :mod:`firmlm.specmap.mapping`), ``RUN/map/documents.parquet`` (the
training rendering, :mod:`firmlm.specmap.render`: columns text, document, section, repository, status, files)
and ``RUN/map/summary.json`` (sections and statuses per document, documents skipped with their reason).
A document that cannot be read is skipped with its reason; the stage fails only when nothing was mapped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from firmlm.config import CorpusConfig, MapConfig, MapDocumentConfig
from firmlm.errors import ConfigError, DocumentError, SourceError, StageError
from firmlm.runs import StageOutput, atomic_write_json
from firmlm.specmap.documents import read_document, supported_suffixes
from firmlm.specmap.hierarchy import Hierarchy, HierarchySettings
from firmlm.specmap.render import render_section
from firmlm.specmap.repository import RepositoryIndex
from firmlm.specmap.scorers import BM25Scorer, Scorer
from firmlm.specmap.sections import Section, chunk_sections
from firmlm.specmap.validation import validate
from firmlm.specmap.vocabulary import load_vocabulary

log = logging.getLogger(__name__)
MAPPING_FILE = "mapping.json"
DOCUMENTS_FILE = "documents.parquet"


def document_files(path: Path) -> list[Path]:
    """``path`` itself, or the supported documents under a folder (sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"map.documents: {path}: no such file or folder")
    suffixes = set(supported_suffixes())
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def entry_documents(entry: MapDocumentConfig) -> list[Path]:
    """The documents of a ``map.documents`` entry: its path, or its Debian package's documents (fetched once into
    the firmlm cache, like a corpus source)."""
    if entry.path is not None:
        return document_files(Path(entry.path))
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.models.references import cache_dir

    tree = AptSourceFetcher(cache_dir()).fetch(entry.package, tuple(supported_suffixes()), entry.include,
                                              entry.exclude)
    return document_files(tree.path)


def repository_root(name: str, corpus: CorpusConfig) -> tuple[Path, str]:
    """A corpus source's tree (fetched as the corpus stage fetches it) or a folder, and the repository's name (the
    source name, or the folder's)."""
    source = next((s for s in corpus.sources if s.name == name), None)
    if source is None:
        folder = Path(name)
        if not folder.is_dir():
            known = ", ".join(s.name for s in corpus.sources) or "none"
            raise ConfigError(f"map.documents[].repository: {name!r} is neither a corpus source name ({known}) "
                              f"nor a folder")
        return folder, folder.resolve().name
    if source.kind == "mapping":
        raise ConfigError(f"map.documents[].repository: {name!r} is a `mapping` corpus source (SpecMap's own "
                          f"output), not a firmware tree")
    from firmlm.corpus.sources import resolve_sources

    resolved, _ = resolve_sources(corpus.model_copy(update={"sources": [source]}))
    return resolved[0].root, name


def make_scorer(cfg: MapConfig, cache_dir: Path) -> Scorer:
    vocabulary = load_vocabulary(cfg.vocabulary)
    if cfg.scorer == "bm25":
        return BM25Scorer(query_analyzer=vocabulary)
    from firmlm.specmap.scorer_factory import make_scorer as build

    return build(cfg.scorer, judge_endpoint=cfg.judge_endpoint, cache_dir=cache_dir, vocabulary=vocabulary)


def read_sections(files: list[Path], cfg: MapConfig, skipped: list[dict[str, str]]) -> list[Section]:
    sections: list[Section] = []
    for path in files:
        try:
            found = read_document(path)
        except DocumentError as exc:
            log.warning("map: %s skipped: %s", path, exc)
            skipped.append({"document": str(path), "reason": str(exc)})
            continue
        sections += chunk_sections(found, cfg.max_section_chars, cfg.min_section_chars)
    return sections


def run_map(cfg: MapConfig, corpus: CorpusConfig, out: StageOutput, cache_dir: Path) -> None:
    """Map every configured document set to its repository; write the artifacts into ``out.path``."""
    if not cfg.documents:
        raise ConfigError("map.documents: empty; list {path: <document or folder>, repository: <source or folder>}")
    started = time.perf_counter()
    settings = HierarchySettings(cfg.folders_k, cfg.files_k, cfg.symbols_k, cfg.keep_ratio, workers=cfg.workers,
                                 folder_evidence=cfg.folder_evidence)
    scorer = make_scorer(cfg, cache_dir)
    documents, rows, skipped = [], [], []
    for entry in cfg.documents:
        root, repository = repository_root(entry.repository, corpus)
        index = RepositoryIndex.build(root, cache_dir / "symbols")
        if index.reason and not index.files:
            skipped.append({"document": entry.label, "reason": f"repository {entry.repository}: {index.reason}"})
            continue
        try:
            files = entry_documents(entry)
        except SourceError as exc:  # a package that cannot be fetched
            log.warning("map: %s skipped: %s", entry.label, exc)
            skipped.append({"document": entry.label, "reason": str(exc)})
            continue
        by_document: dict[str, list[Section]] = {}
        for section in read_sections(files, cfg, skipped):
            by_document.setdefault(section.document, []).append(section)
        hierarchy = Hierarchy(index, scorer, settings)
        for document, sections in by_document.items():
            mappings = [validate(s, m, index) for s, m in zip(sections, hierarchy.map_sections(sections))]
            documents.append({"document": document, "repository": repository, "root": str(root),
                              "symbols_skipped": index.reason, "sections": [m.as_dict() for m in mappings]})
            for section, mapping in zip(sections, mappings):
                text = render_section(section, mapping, root, repository, cfg.max_code_chars)
                if text is not None:
                    rows.append({"text": text, "document": document, "section": section.title,
                                 "repository": repository, "status": mapping.status,
                                 "files": [f for f, _ in mapping.files]})
    if not documents:
        reasons = "; ".join(f"{s['document']}: {s['reason']}" for s in skipped) or "no sections"
        raise StageError(f"map: nothing could be mapped ({reasons})")
    atomic_write_json(out.path / MAPPING_FILE, {"scorer": cfg.scorer, "settings": settings.__dict__,
                                                "documents": documents, "skipped": skipped})
    write_documents(out.path / DOCUMENTS_FILE, rows)
    out.summary.update(summarize(documents, rows, skipped, time.perf_counter() - started))
    stats = getattr(scorer, "stats", None)  # the LLM judge: calls, tokens, cache hits, fallbacks, seconds
    if stats is not None:
        out.summary["judge"] = dataclasses.asdict(stats)


def write_documents(path: Path, rows: list[dict[str, Any]]) -> None:
    schema = pa.schema([("text", pa.string()), ("document", pa.string()), ("section", pa.string()),
                        ("repository", pa.string()), ("status", pa.string()), ("files", pa.list_(pa.string()))])
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    tmp.replace(path)


def summarize(documents: list[dict], rows: list[dict], skipped: list[dict], seconds: float) -> dict[str, Any]:
    per_document = {}
    for doc in documents:
        statuses = Counter(s["status"] for s in doc["sections"])
        per_document[doc["document"]] = {"repository": doc["repository"], "sections": len(doc["sections"]),
                                         "status": dict(sorted(statuses.items())),
                                         "tokens_used": sum(s["tokens_used"] for s in doc["sections"])}
    return {"documents": per_document, "training_documents": len(rows), "skipped": skipped,
            "sections": sum(d["sections"] for d in per_document.values()), "map_seconds": round(seconds, 2)}



def _truth_name(document: str, truth_documents: list[str], base: Path) -> str:
    """The ground truth's name for a mapped document: the same path, one relative to the ground-truth file's
    folder or the working directory, or a trailing part of it."""
    for name in truth_documents:
        candidate = Path(name)
        options = [candidate] if candidate.is_absolute() else [base / candidate, Path.cwd() / candidate]
        if any(str(p.resolve()) == document for p in options) or document.endswith("/" + name.lstrip("./")):
            return name
    return document


def run_map_eval(cfg: MapConfig, corpus: CorpusConfig, map_dir: Path, ground_truth: Path, cache_dir: Path) -> str:
    """Score the finished map stage against ``ground_truth`` next to a flat BM25 baseline over all files of each
    repository (same queries, same k), write ``eval.json`` into ``map_dir`` and return the side-by-side table."""
    from firmlm.specmap.evaluation import evaluate_mapping, flat_bm25_baseline, load_ground_truth, render_comparison
    from firmlm.specmap.hierarchy import section_query
    from firmlm.specmap.mapping import SectionMapping

    truth = load_ground_truth(ground_truth)
    names = [d.document for d in truth.documents]
    base = Path(ground_truth).resolve().parent
    mapping_path = map_dir / MAPPING_FILE
    if not mapping_path.is_file():
        raise StageError(f"{mapping_path}: the map stage has not finished; run `firmlm map -c CONFIG` first")
    mapping = json.loads(mapping_path.read_text())
    settings = HierarchySettings(**mapping["settings"])
    hierarchical, flat, roots = [], [], {}
    flat_scorer = BM25Scorer(query_analyzer=load_vocabulary(cfg.vocabulary))  # the map stage's BM25 vocabulary
    for doc in mapping["documents"]:
        name = _truth_name(doc["document"], names, base)
        roots[name] = doc["root"]
        for section in doc["sections"]:
            hierarchical.append(SectionMapping.from_dict({**section, "document": name}))
    for entry in cfg.documents:
        root, _ = repository_root(entry.repository, corpus)
        index = RepositoryIndex.build(root, cache_dir / "symbols")
        sections = read_sections(entry_documents(entry), cfg, [])
        queries = [section_query(s, sections[i - 1] if i and sections[i - 1].document == s.document else None,
                                 settings) for i, s in enumerate(sections)]
        for m in flat_bm25_baseline(sections, index, k=settings.files_k, symbols_k=settings.symbols_k,
                                    ranked_k=settings.ranked_files_k, queries=queries, scorer=flat_scorer):
            m.document = _truth_name(m.document, names, base)
            flat.append(m)
    result = {"ground_truth": str(ground_truth), "hierarchical": evaluate_mapping(hierarchical, truth, roots=roots),
              "flat_bm25": evaluate_mapping(flat, truth, roots=roots)}
    atomic_write_json(map_dir / "eval.json", result)
    return render_comparison(result["hierarchical"], result["flat_bm25"])
