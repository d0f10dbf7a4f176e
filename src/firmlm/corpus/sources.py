"""Corpus inputs resolved to local trees: folders as they are; git repositories, Debian source packages and
archives fetched or unpacked once into the firmlm cache. Each records what it came from (version, commit,
hashes), its repository-level license, and anything skipped on the way."""

from __future__ import annotations

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
    root: Path
    origin: str
    info: dict[str, Any] = field(default_factory=dict)
    license: str = ""  # repository-level license, for files without an SPDX header
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) found while unpacking


def check_sources(cfg: CorpusConfig) -> None:
    """Fail before writing anything when a local source folder or archive is missing."""
    if not cfg.sources:
        raise SourceError("corpus.sources: empty; add at least one local folder, git repository, archive or Debian package")
    for src in cfg.sources:
        if src.kind == "local" and not (src.path and src.path.is_dir()):
            raise SourceError(f"corpus.sources['{src.name}'].path: folder not found: {src.path}")
        if src.kind == "archive" and not (src.path and src.path.is_file()):
            raise SourceError(f"corpus.sources['{src.name}'].path: archive not found: {src.path}")


def _resolve(src: SourceConfig, cfg: CorpusConfig, fetcher: AptSourceFetcher | None) -> ResolvedSource:
    suffixes = tuple(cfg.extensions)
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


def resolve_sources(cfg: CorpusConfig) -> tuple[list[ResolvedSource], dict[str, str]]:
    """Every source as a local tree. A remote source (git, Debian) that cannot be fetched is skipped with its
    reason (returned by source name); the stage fails only when no source is left."""
    check_sources(cfg)
    fetcher: AptSourceFetcher | None = None
    out, unavailable = [], {}
    for src in cfg.sources:
        try:
            if src.kind == "debian":
                fetcher = fetcher or AptSourceFetcher(cache_dir())
            out.append(_resolve(src, cfg, fetcher))
        except SourceError as exc:
            if src.kind in ("local", "archive") and "not a readable archive" not in str(exc):
                raise
            log.warning("source '%s' skipped: %s", src.name, exc)
            unavailable[src.name] = str(exc)
    if not out:
        raise SourceError("corpus.sources: no source could be read: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()))
    return out, unavailable
