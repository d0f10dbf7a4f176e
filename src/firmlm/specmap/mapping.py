"""What SpecMap found for one section, and the ``RUN/map/mapping.json`` layout.

``mapping.json``::

    {"scorer": "bm25", "settings": {...},
     "documents": [{"document": "<path as given>", "repository": "<name>", "root": "<tree>",
                    "sections": [SectionMapping.as_dict(), ...]}],
     "skipped": [{"document": ..., "reason": ...}]}

Ranked lists (``folders``, ``files``, ``symbols``) are best first; ``ranked_files`` keeps the whole M2 ranking
(before the cut to the chosen files) for recall@k and MAP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["implemented", "partially_implemented", "not_implemented", "not_applicable"]
STATUSES: tuple[Status, ...] = ("implemented", "partially_implemented", "not_implemented", "not_applicable")


@dataclass
class SymbolHit:
    """A code symbol mapped to a section: where it is defined and how well it matched."""

    name: str
    kind: str
    path: str
    line: int
    end: int | None
    score: float


@dataclass
class SectionMapping:
    """One section's folders, files and symbols (M1-M3) and its status (M4)."""

    document: str
    title: str
    path: list[str]
    span: list[int]
    span_unit: str
    folders: list[tuple[str, float]] = field(default_factory=list)
    files: list[tuple[str, float]] = field(default_factory=list)
    ranked_files: list[tuple[str, float]] = field(default_factory=list)
    symbols: list[SymbolHit] = field(default_factory=list)
    status: Status = "not_implemented"
    coverage: float | None = None  # share of the section's key terms found in the mapped code
    key_terms: list[str] = field(default_factory=list)
    tokens_used: int = 0  # LLM tokens (0 without a judge)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("folders", "files", "ranked_files"):
            data[key] = [[name, round(score, 4)] for name, score in getattr(self, key)]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SectionMapping:
        data = dict(data)
        data["symbols"] = [SymbolHit(**s) for s in data.get("symbols", [])]
        for key in ("folders", "files", "ranked_files"):
            data[key] = [(str(n), float(s)) for n, s in data.get(key, [])]
        return cls(**data)
