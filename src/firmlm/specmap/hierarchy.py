"""SpecMap's hierarchy (paper M1-M3): a section's folders, then files inside them, then symbols inside those.

Each level ranks a candidate set with a pluggable :class:`~firmlm.specmap.scorers.Scorer` and keeps the best
``k`` whose score is at least ``keep_ratio`` of the level's best. M1 scores a folder by its best-scoring file
over the whole repository (``folder_evidence="files"``, the default: Kconfig help and Makefile comments count
as files of their folder) or by its description alone (``"description"``, as the paper's M1 reads folder
summaries; on the Linux binding benchmark it kept the right folder for 4 sections in 5, the files for 19 in 20).
M2 then ranks only the chosen folders' files, so words common to a folder (its subsystem) weigh less than
across the repository. The query is the section's path, title and text, plus the previous section's title and
the start of its text (document order), so a short section such as "Bit 13 UE" is read in its context. M1
keeps the most specific folder when a folder and one of its sub-folders are both chosen. Sections are
independent once their context is fixed, so they run in a thread pool; the result keeps document order.
M4 (the status) is :mod:`firmlm.specmap.validation`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from firmlm.specmap.mapping import SectionMapping, SymbolHit
from firmlm.specmap.repository import RepositoryIndex, folder_of
from firmlm.specmap.scorers import Candidate, Scorer
from firmlm.specmap.sections import Section

FOLDER_EVIDENCE = ("files", "description")


@dataclass(frozen=True)
class HierarchySettings:
    """How many candidates each level keeps, and how close to the best one they must score."""

    folders_k: int = 3
    files_k: int = 5
    symbols_k: int = 10
    keep_ratio: float = 0.5
    ranked_files_k: int = 20  # the M2 ranking kept for recall@k / MAP
    context_chars: int = 400  # of the previous section, added to the query
    query_chars: int = 6000
    workers: int = 2
    folder_evidence: str = "files"  # or "description"
    folder_files_k: int = 400  # M1 (files evidence): the repository's best files whose folders are candidates


def section_query(section: Section, previous: Section | None, settings: HierarchySettings) -> str:
    """The text each level is ranked against: path, title, text, register names, and the previous section."""
    names = " ".join(str(n) for n in section.metadata.get("registers", []) or [])
    parts = [" ".join(section.path), section.title, section.text, names]
    if previous is not None and settings.context_chars > 0:
        parts += [previous.title, previous.text[: settings.context_chars]]
    return "\n".join(p for p in parts if p)[: settings.query_chars]


def keep_best(ranked: Sequence[tuple[str, float]], k: int, keep_ratio: float) -> list[tuple[str, float]]:
    """The first ``k`` of a ranking (best first) scoring at least ``keep_ratio`` of the best, and above 0."""
    if not ranked or ranked[0][1] <= 0:
        return []
    floor = ranked[0][1] * keep_ratio
    return [(cid, score) for cid, score in ranked[:k] if score >= floor and score > 0]


def most_specific(folders: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Drop a chosen folder when one of its sub-folders is chosen too (``.`` is everyone's parent)."""
    names = [name for name, _ in folders]

    def has_child(parent: str) -> bool:
        prefix = "" if parent == "." else parent.rstrip("/") + "/"
        return any(other != parent and other.startswith(prefix) for other in names)

    return [(name, score) for name, score in folders if not has_child(name)]


class Hierarchy:
    """M1-M3 over one repository index with one scorer."""

    def __init__(self, index: RepositoryIndex, scorer: Scorer, settings: HierarchySettings | None = None):
        self.index = index
        self.scorer = scorer
        self.settings = settings or HierarchySettings()
        if self.settings.folder_evidence not in FOLDER_EVIDENCE:
            raise ValueError(f"folder_evidence: expected one of {', '.join(FOLDER_EVIDENCE)}, "
                             f"got {self.settings.folder_evidence!r}")
        self._folders = index.folder_candidates()
        self._files = index.file_candidates()
        self._symbols = {s.path: [] for s in index.symbols}
        for s in index.symbols:
            self._symbols[s.path].append(s)

    def map_sections(self, sections: Sequence[Section]) -> list[SectionMapping]:
        """Every section in document order (the previous section's context fixed first, then in parallel)."""
        jobs = [(s, sections[i - 1] if i else None) for i, s in enumerate(sections)]
        if self.settings.workers <= 1 or len(jobs) <= 1:
            return [self.map_section(s, prev) for s, prev in jobs]
        with ThreadPoolExecutor(self.settings.workers) as pool:
            return list(pool.map(lambda job: self.map_section(*job), jobs))

    def map_section(self, section: Section, previous: Section | None = None) -> SectionMapping:
        started = time.perf_counter()
        st = self.settings
        query = section_query(section, previous, st)
        folders = most_specific(keep_best(self.rank_folders(query), st.folders_k, st.keep_ratio))
        file_set = self.index.file_candidates([name for name, _ in folders]) if folders else []
        ranked_files = self._rank(query, file_set, max(st.ranked_files_k, st.files_k))
        files = keep_best(ranked_files, st.files_k, st.keep_ratio)
        symbols = self._symbols_for(query, [name for name, _ in files])
        return SectionMapping(
            document=section.document, title=section.title, path=list(section.path), span=list(section.span),
            span_unit=section.span_unit, folders=folders, files=files, ranked_files=ranked_files, symbols=symbols,
            seconds=round(time.perf_counter() - started, 4),
        )

    def rank_folders(self, query: str) -> list[tuple[str, float]]:
        """M1's ranking: folders by their best file's score (or by their description), best first."""
        st = self.settings
        if st.folder_evidence == "description":
            return self._rank(query, self._folders, st.folders_k * 3)
        best: dict[str, float] = {}
        for path, score in self._rank(query, self._files, st.folder_files_k):
            best.setdefault(folder_of(path), score)
        return list(best.items())

    def _rank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[tuple[str, float]]:
        return self.scorer.rank(query, candidates, k) if candidates else []

    def _symbols_for(self, query: str, paths: list[str]) -> list[SymbolHit]:
        if not paths:
            return []
        st = self.settings
        ranked = keep_best(self._rank(query, self.index.symbol_candidates(paths), st.symbols_k), st.symbols_k,
                           st.keep_ratio)
        by_id = {f"{s.path}:{s.line}:{s.name}": s for p in paths for s in self._symbols.get(p, [])}
        return [SymbolHit(s.name, s.kind, s.path, s.line, s.end, score) for cid, score in ranked
                if (s := by_id.get(cid)) is not None]
