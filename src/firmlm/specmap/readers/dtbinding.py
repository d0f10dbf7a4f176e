"""Device-tree binding schemas (YAML): one section per binding, its compatible strings in metadata only.

The compatible strings name the driver that matches the binding, so they would give the mapping away: they
go to ``metadata["compatible"]`` and are replaced by ``<compatible>`` wherever they occur in the text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from firmlm.errors import DocumentError
from firmlm.specmap.readers.base import DocumentReader, head_text, read_text
from firmlm.specmap.sections import Section

SCHEMA_KEYS = ("oneOf", "anyOf", "allOf", "items", "contains", "if", "then", "else", "not", "additionalItems")
COMPATIBLE_PLACEHOLDER = "<compatible>"
_BINDING_ID = re.compile(r"^\$(?:id|schema)\s*:", re.M)
_PROPERTIES = re.compile(r"^properties\s*:", re.M)
_SCHEMA_PATH = re.compile(r"schemas/(.+?)(?:\.ya?ml)?#?$")


def _strings(node: Any, out: list[str], seen: set[int]) -> None:
    """Strings under const/enum in a schema, following schema keywords (each object once)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, list):
        for item in node:
            _strings(item, out, seen)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("const", "enum"):
                values = value if isinstance(value, list) else [value]
                out.extend(v for v in values if isinstance(v, str) and v not in out)
            elif key in SCHEMA_KEYS or key == "compatible" or key == "properties":
                _strings(value, out, seen)


def compatible_strings(binding: dict[str, Any]) -> list[str]:
    """Every string a ``compatible`` schema in the binding names, in order of appearance, without repeats."""
    found: list[str] = []
    seen: set[int] = set()

    def visit(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "compatible" and isinstance(value, (dict, list)):
                    _strings(value, found, set())
                elif key != "examples":
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(binding)
    return found


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _property_line(name: str, schema: Any) -> str:
    """``name: description; type; enum …`` from a property schema (``true`` schemas give the name alone)."""
    if not isinstance(schema, dict):
        return f"  {name}"
    parts = [_one_line(schema["description"]).rstrip(".")] if "description" in schema else []
    kind = schema.get("type") or str(schema.get("$ref", "")).rsplit("/", 1)[-1].removesuffix("#")
    parts += [f"type {kind}"] if kind else []
    if name != "compatible":
        parts += [f"{key} {_one_line(schema[key])}" for key in ("enum", "const", "default", "minimum", "maximum")
                  if key in schema]
    parts += [f"{key} {schema[key]}" for key in ("minItems", "maxItems") if key in schema]
    items = schema.get("items")
    if isinstance(items, list):
        described = [_one_line(i["description"]) for i in items if isinstance(i, dict) and "description" in i]
        parts += [f"items: {'; '.join(described)}"] if described else []
    parts += ["deprecated"] if schema.get("deprecated") else []
    return f"  {name}: {'; '.join(parts)}" if parts else f"  {name}"


def binding_path(binding: dict[str, Any], title: str) -> tuple[str, ...]:
    """("bindings", folders…, title): the folders of ``$id`` (…/schemas/serial/st,stm32-uart.yaml#), then the title.
    The file name is left out: it usually spells a compatible string, which must not reach a query."""
    match = _SCHEMA_PATH.search(str(binding.get("$id", "")))
    folders = match.group(1).split("/")[:-1] if match else []
    return ("bindings", *folders, title)


def render_binding(binding: dict[str, Any]) -> str:
    """The binding as text: description, parent schemas, properties, required list and examples."""
    lines = [_one_line(binding["description"])] if binding.get("description") else []
    parents = [str(ref) for ref in [binding.get("$ref")] + [a.get("$ref") for a in binding.get("allOf") or []
                                                            if isinstance(a, dict)] if ref]
    lines += [f"Inherits: {', '.join(parents)}"] if parents else []
    for key, heading in (("properties", "Properties:"), ("patternProperties", "Pattern properties:")):
        if isinstance(binding.get(key), dict):
            lines.append(heading)
            lines += [_property_line(str(name), schema) for name, schema in binding[key].items()]
    if isinstance(binding.get("required"), list):
        lines.append(f"Required: {', '.join(map(str, binding['required']))}")
    for example in binding.get("examples") or []:
        lines += ["Example:"] + [f"  {line}".rstrip() for line in str(example).rstrip().split("\n")]
    return "\n".join(lines)


class DtBindingReader(DocumentReader):
    """Linux/Zephyr device-tree binding schemas; the span is the whole file."""

    kind = "dt-binding"
    suffixes = (".yaml", ".yml")
    expects = "a device-tree binding schema (top-level $id or $schema, and properties)"

    def sniff(self, path: Path) -> bool:
        head = head_text(path, 65536)
        return bool(_BINDING_ID.search(head) and _PROPERTIES.search(head))

    def read(self, path: Path) -> list[Section]:
        text = read_text(path)
        try:
            binding = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise DocumentError(f"{path}: invalid YAML{where}; expected {self.expects}") from None
        keys = sorted(map(str, binding)) if isinstance(binding, dict) else []
        if not keys or not ({"$id", "$schema"} & set(keys)) or not isinstance(binding.get("properties"), dict):
            found = ", ".join(keys[:12]) if keys else f"a {type(binding).__name__}"
            raise DocumentError(f"{path}: not a device-tree binding; expected top-level keys $id or $schema, "
                                f"and properties (found: {found})")
        compatibles = compatible_strings(binding)
        title = _one_line(binding.get("title") or path.stem)
        body = render_binding(binding)
        if compatibles:
            pattern = re.compile("|".join(map(re.escape, sorted(compatibles, key=len, reverse=True))), re.I)
            title, body = pattern.sub(COMPATIBLE_PLACEHOLDER, title), pattern.sub(COMPATIBLE_PLACEHOLDER, body)
        metadata = {"compatible": compatibles, "id": binding.get("$id"),
                    "required": [str(r) for r in binding.get("required") or []],
                    "properties": [str(p) for p in binding["properties"]]}
        return [Section(document=str(path), title=title, path=binding_path(binding, title), text=body,
                        span=(1, max(1, text.rstrip("\n").count("\n") + 1)), metadata=metadata, rendered=True)]
