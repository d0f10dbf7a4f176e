"""A guarded XML parse into ElementTree elements with the line span of every element."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat

from firmlm.errors import DocumentError


class _Forbidden(Exception):
    pass


def parse_xml(path: Path, data: bytes) -> tuple[ET.Element, dict[int, tuple[int, int]]]:
    """The root element and ``{id(element): (first line, last line)}``.

    DOCTYPE and ENTITY declarations are refused (no entity expansion); namespace prefixes are dropped from
    tag names. Malformed XML raises DocumentError with the file, line and column.
    """
    builder = ET.TreeBuilder()
    spans: dict[int, tuple[int, int]] = {}
    starts: list[int] = []
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def start(tag: str, attributes: dict[str, str]) -> None:
        builder.start(tag.rsplit(":", 1)[-1], attributes)
        starts.append(parser.CurrentLineNumber)

    def end(tag: str) -> None:
        element = builder.end(tag.rsplit(":", 1)[-1])
        spans[id(element)] = (starts.pop(), parser.CurrentLineNumber)

    def forbid(*_: object) -> None:
        raise _Forbidden(parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    try:
        parser.Parse(data, True)
    except _Forbidden as exc:
        raise DocumentError(f"{path}: DOCTYPE/ENTITY declaration at line {exc.args[0]} is not allowed "
                            "(entity expansion is refused); expected plain XML") from None
    except expat.ExpatError as exc:
        raise DocumentError(f"{path}: malformed XML at line {exc.lineno}, column {exc.offset + 1}: "
                            f"{expat.ErrorString(exc.code)}") from None
    return builder.close(), spans
