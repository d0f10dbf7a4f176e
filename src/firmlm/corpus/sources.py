"""Corpus inputs resolved to local trees: folders as they are; git repositories, Debian source packages and
archives fetched or unpacked once into the firmlm cache; SpecMap's documents.parquet (kind ``mapping``) as a file.
Each records what it came from (version, commit, hashes), its repository-level license, and anything skipped on
the way."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmlm.config import CorpusConfig, SourceConfig
from firmlm.corpus.archives import unpack_archive
from firmlm.corpus.debian import AptSourceFetcher
from firmlm.corpus.gitsrc import checkout
from firmlm.corpus.provenance import debian_copyright_license, repository_license
from firmlm.errors import SourceError
from firmlm.models import cache_dir

log = logging.getLogger(__name__)


@dataclass
class ResolvedSource:
    """A source with the local tree it will be read from and where that tree came from."""

    config: SourceConfig
    root: Path  # the tree; for kind mapping, the documents.parquet file
    origin: str
    info: dict[str, Any] = field(default_factory=dict)
    license: str = ""  # repository-level license, for files without an SPDX header
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) found while unpacking


MAPPING_DOCUMENTS = "documents.parquet"


def mapping_file(src: SourceConfig, map_dir: Path | None) -> Path:
    """The documents.parquet a ``mapping`` source reads: its ``path`` (a file or a run's map folder), else
    ``map_dir`` (this run's RUN/map)."""
    path = Path(src.path) if src.path is not None else map_dir
    if path is not None and (path.is_dir() or src.path is None):
        path = path / MAPPING_DOCUMENTS
    if path is None or not path.is_file():
        where = path or f"RUN/map/{MAPPING_DOCUMENTS}"
        raise SourceError(f"corpus.sources['{src.name}']: kind=mapping reads {where}, which does not exist; run the "
                          f"map stage first (`firmlm map -c CONFIG`, or map.enabled: true) or set `path`")
    return path


MAPPING_COLUMNS = ("text", "document", "section", "repository", "status", "files")


def check_mapping_columns(src: SourceConfig, path: Path) -> None:
    """A clear error when ``path`` is not a parquet file with the map stage's columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"corpus.sources['{src.name}']: {path}: not a readable parquet file ({exc})") from None
    missing = [c for c in MAPPING_COLUMNS if c not in names]
    if missing:
        raise SourceError(f"corpus.sources['{src.name}']: {path}: missing columns {', '.join(missing)}; expected the "
                          f"map stage's documents.parquet ({', '.join(MAPPING_COLUMNS)})")


def check_sources(cfg: CorpusConfig, map_dir: Path | None = None, defer_mapping: bool = False) -> None:
    """Fail before writing anything when a local source folder or archive is missing."""
    if not cfg.sources:
        raise SourceError("corpus.sources: empty; add at least one local folder, git repository, archive or Debian package")
    for src in cfg.sources:
        if src.kind == "local" and not (src.path and src.path.is_dir()):
            raise SourceError(f"corpus.sources['{src.name}'].path: folder not found: {src.path}")
        if src.kind == "archive" and not (src.path and src.path.is_file()):
            raise SourceError(f"corpus.sources['{src.name}'].path: archive not found: {src.path}")
        if src.kind == "mapping" and not (defer_mapping and src.path is None):  # deferred: the map stage runs first
            mapping_file(src, map_dir)


def _resolve(src: SourceConfig, cfg: CorpusConfig, fetcher: AptSourceFetcher | None,
             map_dir: Path | None = None) -> ResolvedSource:
    suffixes = tuple(cfg.extensions)
    if src.kind == "mapping":
        path = mapping_file(src, map_dir)
        check_mapping_columns(src, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ResolvedSource(src, path, f"mapping:{path}@{digest[:12]}", {"path": str(path), "sha256": digest})
    if src.kind == "local":
        root = Path(src.path)
        return ResolvedSource(src, root, f"local:{root}", {"path": str(root)}, repository_license(root) or "")
    if src.kind == "git":
        co = checkout(src.url, src.ref, cache_dir())
        return ResolvedSource(src, co.path, f"git:{co.url}@{co.commit[:12]}",
                              {"url": co.url, "ref": co.ref, "commit": co.commit}, repository_license(co.path) or "")
    if src.kind == "archive":
        un = unpack_archive(Path(src.path), cache_dir(), suffixes, src.include, src.exclude)
        return ResolvedSource(src, un.path, f"archive:{Path(src.path).name}", {"path": str(src.path), "sha256": un.sha256},
                              repository_license(un.path) or "", un.skipped)
    tree = fetcher.fetch(src.package, suffixes, src.include, src.exclude)
    download = fetcher.root / "downloads"
    folder = next((d for d in download.glob(f"{tree.package}_*") if (d / ".complete").is_file()
                   and (d / ".complete").read_text().strip() == tree.version), None)
    license_id = debian_copyright_license(folder) if folder else None
    info = {"package": tree.package, "version": tree.version, "tarballs": tree.tarballs}
    return ResolvedSource(src, tree.path, f"debian:{tree.package}={tree.version}", info, license_id or "")


def resolve_sources(cfg: CorpusConfig, map_dir: Path | None = None) -> tuple[list[ResolvedSource], dict[str, str]]:
    """Every source as a local tree (``mapping`` sources read ``map_dir``'s documents.parquet unless they name
    one). A remote source (git, Debian) that cannot be fetched is skipped with its reason (returned by source
    name); the stage fails only when no source is left."""
    check_sources(cfg, map_dir)
    fetcher: AptSourceFetcher | None = None
    out, unavailable = [], {}
    for src in cfg.sources:
        try:
            if src.kind == "debian":
                fetcher = fetcher or AptSourceFetcher(cache_dir())
            out.append(_resolve(src, cfg, fetcher, map_dir))
        except SourceError as exc:
            if src.kind in ("local", "archive", "mapping") and "not a readable archive" not in str(exc):
                raise
            log.warning("source '%s' skipped: %s", src.name, exc)
            unavailable[src.name] = str(exc)
    if not out:
        raise SourceError("corpus.sources: no source could be read: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()))
    return out, unavailable
