"""The corpus pipeline as datatrove blocks. One task handles every ``tasks``-th file of each source:

    ReadSourceFiles → Annotate → FileFilter → Clean → ScrubSecrets → Chunk → ChunkFilter → Signature → TaskWriter

A file or chunk a block rejects is not lost: it travels on with ``metadata["drop"]`` set to the reason, every
later block passes it through untouched, and TaskWriter records it next to the kept documents. Each task
writes its two parquet files atomically at the end, and datatrove marks the task complete only after that,
so a rerun after a crash redoes only unfinished tasks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from firmlm.config import MAPPING_CATEGORY, FilterConfig
from firmlm.corpus.chunking import SECTION_DELIMITER, chunk_text
from firmlm.corpus.dedup import DedupSettings, exact_key, minhash
from firmlm.corpus.filters import clean, clean_around, reject_chunk, reject_file
from firmlm.corpus.provenance import spdx_header, vendor_of
from firmlm.corpus.reader import kind_of, list_candidates, read_file, spread
from firmlm.corpus.sources import MAPPING_COLUMNS

MAPPING_QUOTES_EVAL = "mapping-quotes-evaluation-file"  # drop reason
SOURCE_FILENAMES = {"c": "x.c", "h": "x.h", "asm": "x.S", "dts": "x.dts", "linker_script": "x.ld", "kconfig": "Kconfig",
                    "doc": "x.md", "mapping": "x.c"}


class FirmlmBlock(PipelineStep):
    """A block that handles one document at a time and passes dropped documents through unchanged."""

    type = "firmlm"

    def process(self, doc: Document) -> Iterable[Document]:
        raise NotImplementedError

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data or ():
            if doc.metadata.get("drop"):
                yield doc
                continue
            with self.track_time():
                produced = list(self.process(doc))
            for out in produced:
                if out.metadata.get("drop"):
                    self.stat_update(f"dropped:{out.metadata['drop']}")
                yield out


def dropped(doc: Document, reason: str) -> Document:
    doc.metadata["drop"] = reason
    return doc


class ReadSourceFiles(PipelineStep):
    """Reads this task's share of every source: file i of a source goes to task i mod tasks. Files that cannot
    be read (binary, invalid UTF-8, too large, unreadable, links) come out as dropped documents."""

    name = "read source files"
    type = "reader"

    def __init__(self, sources: list[dict[str, Any]], extensions: list[str], max_file_bytes: int):
        super().__init__()
        self.sources = sources
        self.extensions = tuple(extensions)
        self.max_file_bytes = max_file_bytes

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for s_idx, src in enumerate(self.sources):
            if src.get("kind") == "mapping":
                yield from self._mapping_rows(s_idx, src, rank, world_size)
                continue
            root = Path(src["root"])
            paths, skipped = list_candidates(root, self.extensions, src["include"], src["exclude"])
            base = {"source_index": s_idx, "repo": src["name"], "source": src["origin"], "role": src["role"],
                    "repo_license": src["license"]}
            if rank == 0:  # skips found while listing or unpacking are recorded once
                for n, (path, reason) in enumerate([(r.path, r.skip) for r in skipped] + [tuple(x) for x in src["skipped"]]):
                    yield Document("", f"{s_idx}/skip/{n}", metadata={**base, "path": path, "file_index": -1, "drop": reason})
            for f_idx, rel in enumerate(spread(paths, src["max_files"])):
                if f_idx % world_size != rank:
                    continue
                rec = read_file(root, rel, self.max_file_bytes)
                meta = {**base, "path": rel, "file_index": f_idx}
                if rec.text is None:
                    meta["drop"] = rec.skip or "unknown"
                self.stat_update("files")
                yield Document(rec.text or "", f"{s_idx}/{f_idx}", metadata=meta)

    def _mapping_rows(self, s_idx: int, src: dict[str, Any], rank: int, world_size: int) -> DocumentsPipeline:
        """SpecMap's training documents: one per mapped section, its path ``<document file>#<row>``."""
        rows = pq.read_table(src["root"], columns=list(MAPPING_COLUMNS)).to_pylist()
        base = {"source_index": s_idx, "repo": src["name"], "source": src["origin"], "role": src["role"],
                "repo_license": src["license"]}
        for f_idx, n in enumerate(spread(list(range(len(rows))), src["max_files"])):
            if f_idx % world_size != rank:
                continue
            row = rows[n]
            meta = {**base, "path": f"{Path(row['document']).name}#{n}", "file_index": f_idx,
                    "mapping": {"repository": row["repository"], "files": list(row["files"] or []),
                                "section": row["section"], "status": row["status"]}}
            if not (row["text"] or "").strip():
                meta["drop"] = "empty"
            self.stat_update("files")
            yield Document(row["text"] or "", f"{s_idx}/{f_idx}", metadata=meta)


class Annotate(FirmlmBlock):
    """Category (rule file), split (held-out repository, or a seeded hash of the path), kind, license, vendor."""

    name = "annotate"

    def __init__(self, rules_path: str | None, seed: int, indomain_fraction: float,
                 roles: dict[str, str] | None = None):
        super().__init__()
        self.rules_path = rules_path
        self.seed = seed
        self.indomain_fraction = indomain_fraction
        self.roles = roles or {}  # repository name → role, for the code inside mapping documents
        self._categorizer = None

    def process(self, doc: Document) -> Iterable[Document]:
        from firmlm.corpus.categories import load_rules
        from firmlm.corpus.splits import split_of

        if self._categorizer is None:
            self._categorizer = load_rules(Path(self.rules_path) if self.rules_path else None)
        m = doc.metadata
        if "mapping" in m:
            yield self._mapping(doc)
            return
        m["category"], m["rule"] = self._categorizer.classify(m["repo"], m["path"], doc.text)
        m["split"] = split_of(m["role"], m["repo"], m["path"], self.seed, self.indomain_fraction)
        m["kind"] = kind_of(m["path"])
        m["license"] = spdx_header(doc.text) or m["repo_license"]
        m["vendor"] = vendor_of(m["repo"], m["path"])
        if m["split"] != "train" and "drop" not in m:
            m["raw_text"] = doc.text  # evaluation reads files as they are in the repository, not cleaned
        yield doc

    def _mapping(self, doc: Document) -> Document:
        """A SpecMap document: category ``spec_mapping``, always train; dropped when it quotes a file of an
        evaluation split (an indomain file of a training repository, or any file of a held-out one)."""
        from firmlm.corpus.splits import split_of

        m = doc.metadata
        mapped = m.pop("mapping")
        first_file = (mapped["files"] or [""])[0]
        m.update(category=MAPPING_CATEGORY, rule="mapping", split="train", kind="mapping",
                 license=spdx_header(doc.text) or m["repo_license"], vendor=vendor_of(mapped["repository"], first_file))
        role = self.roles.get(mapped["repository"])
        held_back = [f for f in mapped["files"] if role is not None
                     and split_of(role, mapped["repository"], f, self.seed, self.indomain_fraction) != "train"]
        return dropped(doc, MAPPING_QUOTES_EVAL) if held_back and "drop" not in m else doc


class RejectBlock(FirmlmBlock):
    """A filter: a document whose ``reason`` is not None is dropped with ``filter:<reason>``."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = FilterConfig(**cfg)

    def reason(self, doc: Document) -> str | None:
        raise NotImplementedError

    def process(self, doc: Document) -> Iterable[Document]:
        reason = self.reason(doc)
        yield dropped(doc, f"filter:{reason}") if reason else doc


class FileFilter(RejectBlock):
    """Whole-file rejects: auto-generated, very long lines, minified, data-only (see filters.reject_file)."""

    name = "file filter"

    def reason(self, doc: Document) -> str | None:
        return reject_file(doc.text, self.cfg)


class Clean(FirmlmBlock):
    """Text cleaners (CR and tabs, separator lines, character runs, ASCII art, empty comments), counted."""

    name = "clean"

    def process(self, doc: Document) -> Iterable[Document]:
        mapping = doc.metadata.get("kind") == "mapping"  # its section rules are structure, not decoration
        result = clean_around(doc.text, SECTION_DELIMITER) if mapping else clean(doc.text)
        doc.text = result.text
        doc.metadata["cleaned"] = result.changes
        for name, n in result.changes.items():
            self.stat_update(f"cleaned:{name}", value=n)
        yield doc


class ScrubSecrets(FirmlmBlock):
    """Credentials (detect-secrets), private keys, e-mail and IP addresses → typed placeholders."""

    name = "scrub secrets"

    def process(self, doc: Document) -> Iterable[Document]:
        from firmlm.corpus.secrets import scrub

        filename = SOURCE_FILENAMES.get(doc.metadata["kind"], doc.metadata["path"])
        doc.text, counts = scrub(doc.text, filename)
        doc.metadata["secrets"] = dict(counts)
        if "raw_text" in doc.metadata:  # the evaluation copy loses its secrets too
            doc.metadata["raw_text"] = scrub(doc.metadata["raw_text"], filename)[0]
        yield doc


class Chunk(FirmlmBlock):
    """Section-aware chunks, each with a ``// File: repo/path`` header line."""

    name = "chunk"

    def __init__(self, max_chars: int, min_chars: int):
        super().__init__()
        self.max_chars = max_chars
        self.min_chars = min_chars

    def process(self, doc: Document) -> Iterable[Document]:
        m = doc.metadata
        header = "" if m["kind"] == "mapping" else f"// File: {m['repo']}/{m['path']}\n"  # mapping: own rules
        pieces = chunk_text(doc.text, self.max_chars - len(header), self.min_chars, m["kind"])
        for i, piece in enumerate(pieces):
            meta = {**m, "chunk": i}
            if i > 0:  # file-level counts belong to the first chunk only
                meta["cleaned"], meta["secrets"] = {}, {}
            out = Document(header + piece, f"{doc.id}#{i}", metadata=meta)
            if len(piece.strip()) < self.min_chars and i > 0:
                out = dropped(out, "chunk-too-short")
            yield out


class ChunkFilter(RejectBlock):
    """Chunk rejects: low alphanumeric share, mostly garbage (> 70%), neither code nor 20 words of prose."""

    name = "chunk filter"

    def reason(self, doc: Document) -> str | None:
        return reject_chunk(doc.text, doc.metadata["kind"], self.cfg)


class Signature(FirmlmBlock):
    """The exact-duplicate key and the MinHash signature, computed in parallel so the global pass only
    compares them."""

    name = "dedup signature"

    def __init__(self, num_perm: int, shingle: int):
        super().__init__()
        self.settings = DedupSettings(num_perm=num_perm, shingle=shingle)

    def process(self, doc: Document) -> Iterable[Document]:
        doc.metadata["exact_key"] = exact_key(doc.text)
        doc.metadata["minhash"] = minhash(doc.text, self.settings).hashvalues.tolist()
        yield doc


TASK_DOC_SCHEMA = pa.schema([
    ("source_index", pa.int32()), ("file_index", pa.int64()), ("chunk", pa.int32()), ("text", pa.string()),
    ("category", pa.string()), ("rule", pa.string()), ("split", pa.string()), ("source", pa.string()),
    ("repo", pa.string()), ("path", pa.string()), ("kind", pa.string()), ("license", pa.string()),
    ("vendor", pa.string()), ("exact_key", pa.string()), ("minhash", pa.list_(pa.uint64())),
    ("cleaned", pa.string()), ("secrets", pa.string()),
])  # fmt: skip
EVAL_FILE_SCHEMA = pa.schema([
    ("split", pa.string()), ("category", pa.string()), ("repo", pa.string()), ("path", pa.string()),
    ("kind", pa.string()), ("license", pa.string()), ("text", pa.string()),
])  # fmt: skip
TASK_DROP_SCHEMA = pa.schema([
    ("source_index", pa.int32()), ("file_index", pa.int64()), ("repo", pa.string()), ("path", pa.string()),
    ("reason", pa.string()),
])  # fmt: skip


class TaskWriter(PipelineStep):
    """Writes the task's kept documents and its drops to ``docs/NNNNN.parquet`` and ``drops/NNNNN.parquet``, and
    the repository text (secrets scrubbed, not cleaned) of its evaluation-split files to ``evalfiles/``."""

    name = "task writer"
    type = "writer"

    def __init__(self, work_dir: str):
        super().__init__()
        self.work_dir = work_dir

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import json

        docs: list[dict[str, Any]] = []
        drops: list[dict[str, Any]] = []
        eval_files: list[dict[str, Any]] = []
        for doc in data or ():
            m = doc.metadata
            if m.get("chunk") == 0 and "raw_text" in m:  # a file that passed the file filters
                eval_files.append({**{k: m.get(k) for k in EVAL_FILE_SCHEMA.names}, "text": m["raw_text"]})
            if m.get("drop"):
                chunk = f"#{m['chunk']}" if "chunk" in m else ""
                drops.append({"source_index": m["source_index"], "file_index": m["file_index"], "repo": m["repo"],
                              "path": m["path"] + chunk, "reason": m["drop"]})
                continue
            docs.append({**{k: m.get(k) for k in TASK_DOC_SCHEMA.names if k in m}, "text": doc.text,
                         "cleaned": json.dumps(m.get("cleaned", {})), "secrets": json.dumps(m.get("secrets", {}))})
            self.stat_update("documents")
        _write(pa.Table.from_pylist(docs, schema=TASK_DOC_SCHEMA), Path(self.work_dir) / "docs" / f"{rank:05d}.parquet")
        _write(pa.Table.from_pylist(drops, schema=TASK_DROP_SCHEMA), Path(self.work_dir) / "drops" / f"{rank:05d}.parquet")
        _write(pa.Table.from_pylist(eval_files, schema=EVAL_FILE_SCHEMA),
               Path(self.work_dir) / "evalfiles" / f"{rank:05d}.parquet")
        return iter(())


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def pipeline(sources: list[dict[str, Any]], cfg, seed: int, work_dir: Path) -> list[PipelineStep]:
    """The blocks for a corpus config (filters, scrubbing and signatures only when enabled)."""
    filters = cfg.filters.model_dump()
    steps: list[PipelineStep] = [
        ReadSourceFiles(sources, list(cfg.extensions), cfg.max_file_bytes),
        Annotate(str(cfg.category_rules) if cfg.category_rules else None, seed, cfg.indomain_fraction,
                 {s["name"]: s["role"] for s in sources if s.get("kind") != "mapping"}),
    ]
    if cfg.filters.enabled:
        steps += [FileFilter(filters), Clean()]
    if cfg.scrub_secrets:
        steps.append(ScrubSecrets())
    steps.append(Chunk(cfg.max_chunk_chars, cfg.min_chunk_chars))
    if cfg.filters.enabled:
        steps.append(ChunkFilter(filters))
    if cfg.dedup.enabled:
        steps.append(Signature(cfg.dedup.num_perm, cfg.dedup.shingle))
    steps.append(TaskWriter(str(work_dir)))
    return steps

