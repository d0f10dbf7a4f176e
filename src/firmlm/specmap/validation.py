"""SpecMap M4 without an LLM: a section's status from how many of its key terms the mapped code carries.

Key terms are what a driver would name in code: the peripheral and register names of an SVD section, and the
identifier-like words of a section's title and text (``USART_CR1``, ``TXEIE``, ``I2C1``, ``DMAMUX``). Coverage
is the share of them found among the tokens of the mapped symbols, files and their comments.

- ``not_applicable``: front/back matter (introduction, revision history, ordering information ...) or a section
  with no key term and hardly any text;
- ``implemented``: symbols mapped and coverage >= ``implemented_at`` (0.6);
- ``partially_implemented``: files mapped and coverage >= ``partial_at`` (0.2), or prose without key terms whose
  symbols were found (prose cannot be checked term by term offline: an LLM judge can);
- ``not_implemented``: otherwise, and always when an SVD peripheral's name (or its stem: ``TIM`` of ``TIM2``)
  is absent from the mapped code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmlm.specmap.identifiers import analyze
from firmlm.specmap.mapping import SectionMapping
from firmlm.specmap.repository import RepositoryIndex
from firmlm.specmap.sections import Section

BOILERPLATE = re.compile(
    r"\b(introduction|overview of this|revision history|document history|ordering information|legal|disclaimer|"
    r"copyright|trademarks?|table of contents|contents|glossary|abbreviations|references|related documents|"
    r"about this (document|manual)|conventions|important notice)\b", re.I)
TECH_WORD = re.compile(r"\b(?=[A-Za-z0-9_]*[A-Z])(?=[A-Za-z0-9_]*(?:[0-9_]|[A-Z]{2}))[A-Za-z][A-Za-z0-9_]{1,}\b")
MAX_TERMS = 40
MIN_PROSE_TOKENS = 8


@dataclass(frozen=True)
class ValidationSettings:
    implemented_at: float = 0.6
    partial_at: float = 0.2


def key_terms(section: Section) -> list[str]:
    """Lower-case identifier-like terms of the section (metadata names first), without repeats."""
    names = [section.metadata.get("peripheral") or ""] + list(section.metadata.get("registers", []) or [])
    names += TECH_WORD.findall(f"{section.title}\n{section.text}")
    terms: dict[str, None] = {}
    for name in names:
        tokens = analyze(str(name))
        whole = str(name).strip("_").lower()
        if tokens:
            terms[whole if whole in tokens else tokens[0]] = None
        if len(terms) >= MAX_TERMS:
            break
    return list(terms)


def mapped_tokens(mapping: SectionMapping, index: RepositoryIndex) -> set[str]:
    """Tokens of what the section was mapped to: symbol names and kinds, file paths, comments and symbols."""
    files = {f.path: f for f in index.files}
    text = [f"{s.name} {s.path}" for s in mapping.symbols]
    for path, _ in mapping.files:
        entry = files.get(path)
        text.append(path if entry is None else f"{path} {entry.comment} {' '.join(entry.symbols)}")
    return set(analyze(" ".join(text)))


def _peripheral_found(section: Section, found: set[str]) -> bool:
    """An SVD peripheral's code names it (``TIM2`` or its stem ``TIM``): register names alone (``CR1``) are shared
    by every peripheral."""
    name = section.metadata.get("peripheral")
    return not name or any(t in found for t in analyze(str(name)))


def validate(section: Section, mapping: SectionMapping, index: RepositoryIndex,
             settings: ValidationSettings | None = None) -> SectionMapping:
    """Set ``status``, ``coverage`` and ``key_terms`` of ``mapping`` (returned)."""
    st = settings or ValidationSettings()
    terms = key_terms(section)
    mapping.key_terms = terms
    found = mapped_tokens(mapping, index) if mapping.files else set()
    mapping.coverage = round(sum(t in found for t in terms) / len(terms), 4) if terms else None
    prose = len(analyze(section.text))
    if BOILERPLATE.search(section.title) or (not terms and prose < MIN_PROSE_TOKENS):
        mapping.status = "not_applicable"
    elif not mapping.files or not _peripheral_found(section, found):
        mapping.status = "not_implemented"
    elif mapping.coverage is None:
        mapping.status = "partially_implemented" if mapping.symbols else "not_implemented"
    elif mapping.coverage >= st.implemented_at and mapping.symbols:
        mapping.status = "implemented"
    elif mapping.coverage >= st.partial_at:
        mapping.status = "partially_implemented"
    else:
        mapping.status = "not_implemented"
    return mapping
