"""The ground truth ``firmlm map --eval`` scores SpecMap against, and how its sections find their mappings.

Layout (every key required, no other keys allowed)::

    {"documents": [{"document": "<path of the datasheet as given in the config>",
                    "sections": {"<section title>": {"files": ["<repo-relative path>", ...],
                                                     "symbols": ["<name>", ...]}}}]}

A ground-truth title matches a :class:`~firmlm.specmap.mapping.SectionMapping` of the same document when it
equals (case and runs of white space ignored) the mapping's ``title``, the last element of its ``path``, either
of them without a chunking suffix " (part i/n)", or one of the titles joined by " + " in a merged mapping. All
mappings a title matches pool their files and symbols, so the parts of a split section count as one section.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmlm.errors import ConfigError
from firmlm.specmap.mapping import SectionMapping
from firmlm.specmap.metrics import normalise_path

_PART_SUFFIX = re.compile(r"^(?P<title>.*?) \(part \d+/\d+\)$")
_UNSET = object()
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


@dataclass(frozen=True)
class TruthSection:
    """The files (normalised repository-relative paths) and symbol names that implement one section."""

    title: str
    files: tuple[str, ...]
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class TruthDocument:
    """One datasheet's annotated sections, in file order."""

    document: str
    sections: tuple[TruthSection, ...]


@dataclass(frozen=True)
class GroundTruth:
    """A validated ground-truth file."""

    path: Path
    documents: tuple[TruthDocument, ...]


def title_key(title: str) -> str:
    """A title in the form titles are compared in: case-folded, runs of white space made one space."""
    return " ".join(title.split()).casefold()


def base_title(title: str) -> str:
    """``title`` without a chunking suffix " (part i/n)"."""
    found = _PART_SUFFIX.match(title)
    return found.group("title") if found else title


def mapping_keys(mapping: SectionMapping) -> set[str]:
    """Every title key a ground-truth section may use to name ``mapping``."""
    names = [mapping.title, *mapping.title.split(" + ")]
    if mapping.path:
        names.append(mapping.path[-1])
    return {title_key(n) for name in names for n in (name, base_title(name))}


def document_key(document: str) -> str:
    """A document path in the form documents are compared in."""
    return normalise_path(document)


def match_sections(mappings: Sequence[SectionMapping], title: str) -> list[SectionMapping]:
    """The mappings (of one document) a ground-truth section title names, in their order."""
    key = title_key(title)
    return [m for m in mappings if key in mapping_keys(m)]


def _fail(path: Path, key: str, expected: str, value: Any = _UNSET) -> ConfigError:
    got = "" if value is _UNSET else f", got {_JSON_TYPES.get(type(value), type(value).__name__)}"
    where = f"{path}: {key}: " if key else f"{path}: "
    return ConfigError(f"{where}expected {expected}{got}")


def _strings(path: Path, key: str, value: Any, files: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(path, key, "a list of strings", value)
    out: dict[str, None] = {}
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _fail(path, f"{key}[{i}]", "a non-empty string", item)
        if files:
            item = normalise_path(item)
            if item.startswith(("/", "../")) or item in (".", ".."):
                raise ConfigError(f"{path}: {key}[{i}]: expected a path relative to the repository root inside "
                                  f"it, got {value[i]!r}")
        out[item.strip()] = None
    return tuple(out)


def _keys(path: Path, key: str, value: dict, required: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in value]
    unknown = sorted(k for k in value if k not in required)
    if missing or unknown:
        parts = ([f"missing {', '.join(repr(k) for k in missing)}"] if missing else []) + (
            [f"unknown {', '.join(repr(k) for k in unknown)}"] if unknown else [])
        where = f"{key}: " if key else ""
        raise ConfigError(f"{path}: {where}expected the keys {', '.join(repr(k) for k in required)}; "
                          f"{'; '.join(parts)}")


def _document(path: Path, key: str, value: Any) -> TruthDocument:
    if not isinstance(value, dict):
        raise _fail(path, key, 'an object {"document": ..., "sections": {...}}', value)
    _keys(path, key, value, ("document", "sections"))
    document, sections = value["document"], value["sections"]
    if not isinstance(document, str) or not document.strip():
        raise _fail(path, f"{key}.document", "the datasheet's path as given in the config", document)
    if not isinstance(sections, dict):
        raise _fail(path, f"{key}.sections", "an object mapping section titles to files and symbols", sections)
    out, seen = [], {}
    for title, entry in sections.items():
        where = f"{key}.sections[{json.dumps(title)}]"
        if not title.strip():
            raise _fail(path, where, "a non-empty section title")
        if title_key(title) in seen:
            raise ConfigError(f"{path}: {where}: the same title as {json.dumps(seen[title_key(title)])} "
                              "(titles are compared ignoring case and white space)")
        seen[title_key(title)] = title
        if not isinstance(entry, dict):
            raise _fail(path, where, 'an object {"files": [...], "symbols": [...]}', entry)
        _keys(path, where, entry, ("files", "symbols"))
        out.append(TruthSection(title, _strings(path, f"{where}.files", entry["files"], True),
                                _strings(path, f"{where}.symbols", entry["symbols"], False)))
    return TruthDocument(document, tuple(out))


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read and validate a ground-truth JSON file; a ConfigError names the file and the key that is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: ground-truth file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the ground-truth file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise _fail(path, "", 'a JSON object {"documents": [...]}', data)
    _keys(path, "", data, ("documents",))
    if not isinstance(data["documents"], list):
        raise _fail(path, "documents", "a list of documents", data["documents"])
    documents, seen = [], {}
    for i, value in enumerate(data["documents"]):
        document = _document(path, f"documents[{i}]", value)
        key = document_key(document.document)
        if key in seen:
            raise ConfigError(f"{path}: documents[{i}].document: {document.document!r} is already documents"
                              f"[{seen[key]}]")
        seen[key] = i
        documents.append(document)
    return GroundTruth(path, tuple(documents))
