"""Query vocabulary: words a hardware document and its code spell differently (synonym groups), format boilerplate
dropped from queries, and acronyms that are English stopwords in lower case (``CAN``).

The bundled ``vocabulary.yaml`` holds peripheral abbreviations (watchdog/wdt/wdog) and silicon vendors with the
code names their drivers use (Allwinner/sunxi/sun4i); a user's files (``map.vocabulary``) add groups in the same
format. Only queries are rewritten: code is indexed as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from firmlm.config import read_yaml_file
from firmlm.errors import ConfigError
from firmlm.specmap.identifiers import analyze, stem

BUNDLED = "vocabulary.yaml"
KEYS = ("groups", "query_stopwords", "capitalised")


def _word(text: str) -> str:
    return stem(str(text).strip().lower())


def _forms(text: str) -> set[str]:
    """A word as a query token can be: whole identifiers keep their plural, split words are stemmed."""
    word = str(text).strip().lower()
    return {word, stem(word)} - {""}


@dataclass(frozen=True)
class Vocabulary:
    """Synonym groups (each word → the other words of its groups), query stopwords and capitalised acronyms."""

    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    query_stopwords: frozenset[str] = frozenset()
    capitalised: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, datas: Sequence[dict[str, Any]]) -> Vocabulary:
        """Merge parsed vocabulary files (see ``vocabulary.yaml``); a word in several groups gets all of them."""
        synonyms: dict[str, dict[str, None]] = {}
        stopwords: set[str] = set()
        capitalised: dict[str, None] = {}
        for data in datas:
            for group in data.get("groups") or []:
                words = list(dict.fromkeys(_word(w) for w in group if _word(w)))
                for word in group:
                    for form in _forms(word):
                        synonyms.setdefault(form, {}).update(dict.fromkeys(w for w in words if w != _word(word)))
            stopwords.update(form for w in data.get("query_stopwords") or [] for form in _forms(w))
            capitalised.update(dict.fromkeys(str(w) for w in data.get("capitalised") or []))
        return cls({w: tuple(others) for w, others in synonyms.items()}, frozenset(stopwords), tuple(capitalised))

    def expand(self, tokens: Iterable[str]) -> list[str]:
        """``tokens`` without query stopwords, then each distinct token's synonyms not already present, once."""
        kept = [t for t in tokens if t not in self.query_stopwords]
        present = set(kept)
        added: dict[str, None] = {}
        for token in dict.fromkeys(kept):
            added.update((s, None) for s in self.synonyms.get(token, ()) if s not in present)
        return kept + list(added)

    def analyze_query(self, text: str) -> list[str]:
        """:func:`~firmlm.specmap.identifiers.analyze` tokens of a query, capitalised acronyms kept (``CAN``),
        boilerplate dropped, synonyms added."""
        tokens = analyze(text)
        for acronym in self.capitalised:
            word = acronym.lower()
            tokens = [t for t in tokens if t != word]
            tokens += [word] * len(re.findall(rf"(?<![A-Za-z0-9_]){re.escape(acronym)}(?![A-Za-z0-9_])", text))
        return self.expand(tokens)

    def __call__(self, text: str) -> list[str]:
        return self.analyze_query(text)


def read_vocabulary_file(path: Path) -> dict[str, Any]:
    """One vocabulary file, checked: a mapping with ``groups`` (lists of words), ``query_stopwords`` and
    ``capitalised`` (lists of words), each optional."""
    data = read_yaml_file(path, "map.vocabulary: ")
    if not isinstance(data, dict) or not set(data) <= set(KEYS):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"map.vocabulary: {path}: expected a mapping with keys {', '.join(KEYS)}; found {found}")
    groups = data.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, list) and len(g) >= 2 for g in groups):
        raise ConfigError(f"map.vocabulary: {path}: `groups` must be a list of lists of two or more words")
    for key in ("query_stopwords", "capitalised"):
        if not isinstance(data.get(key) or [], list):
            raise ConfigError(f"map.vocabulary: {path}: `{key}` must be a list of words")
    return data


@lru_cache(maxsize=1)
def _bundled() -> dict[str, Any]:
    return yaml.safe_load(resources.files("firmlm.specmap").joinpath(BUNDLED).read_text(encoding="utf-8"))


def load_vocabulary(extra: Sequence[Path | str] = (), bundled: bool = True) -> Vocabulary:
    """The bundled vocabulary (unless ``bundled`` is false) merged with the user's files ``extra``."""
    datas = ([_bundled()] if bundled else []) + [read_vocabulary_file(Path(p)) for p in extra]
    return Vocabulary.from_data(datas)
