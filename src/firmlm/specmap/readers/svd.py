"""CMSIS-SVD register maps: one section per peripheral with its registers, fields and bit ranges.

A peripheral with ``derivedFrom`` inherits what it does not define itself (registers, description, group);
``dim`` registers have their names expanded (``%s`` from ``dimIndex`` or 0..dim-1) and are listed once.
Register properties (size, access, reset value) inherit device → peripheral → cluster → register.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from firmlm.errors import DocumentError
from firmlm.specmap.readers.base import DocumentReader, head_text, read_bytes
from firmlm.specmap.readers.xmltree import parse_xml
from firmlm.specmap.sections import Section

_INTEGER = re.compile(r"^\+?(0[xX][0-9a-fA-F]+|#[01]+|[0-9]+)$")
_BIT_RANGE = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*\]$")
_DEVICE_ROOT = re.compile(r"<(?:\w+:)?device[\s>/]")
PROPERTIES = ("size", "access", "resetValue")
MAX_ENUMERATED = 8


def parse_svd_int(value: str) -> int | None:
    """An SVD scaledNonNegativeInteger (``42``, ``0x2A``, ``#101010``), or None."""
    match = _INTEGER.match(value.strip())
    if not match:
        return None
    digits = match.group(1)
    if digits[0] == "#":
        return int(digits[1:], 2)
    return int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits)


def _text(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    return " ".join((child.text or "").split()) if child is not None else ""


def _bits(msb: int, lsb: int) -> str:
    return f"[{msb}]" if msb == lsb else f"[{msb}:{lsb}]"


def dim_names(name: str, count: int, index: str) -> list[str]:
    """``CCR%s`` with dim 4 and dimIndex ``1-4`` → CCR1 … CCR4; ``A-C`` and ``x,y,z`` lists work too."""
    if "%s" not in name:
        return [name]
    if re.fullmatch(r"\d+-\d+", index):
        low, high = map(int, index.split("-"))
        labels = [str(i) for i in range(low, high + 1)]
    elif re.fullmatch(r"[A-Z]-[A-Z]", index):
        labels = [chr(c) for c in range(ord(index[0]), ord(index[2]) + 1)]
    elif index:
        labels = [part.strip() for part in index.split(",")]
    else:
        labels = [str(i) for i in range(count)]
    return [name.replace("%s", label) for label in labels[:count]]


class _SvdFile:
    """One parsed SVD file: lookups that raise DocumentError naming the file and the element."""

    def __init__(self, path: Path, root: ET.Element, spans: dict[int, tuple[int, int]]):
        self.path, self.root, self.spans = path, root, spans
        self.device = _text(root, "name") or path.stem
        self.peripherals: dict[str, ET.Element] = {}
        for number, element in enumerate(root.iterfind("peripherals/peripheral"), 1):
            name = _text(element, "name")
            if not name:
                raise self.error(element, f"<peripheral> #{number} has no <name>")
            self.peripherals[name] = element

    def error(self, element: ET.Element, message: str) -> DocumentError:
        line = self.spans.get(id(element), (0, 0))[0]
        return DocumentError(f"{self.path}: line {line}: {message}; expected a CMSIS-SVD element")

    def integer(self, element: ET.Element, tag: str, owner: str, required: bool = False) -> int | None:
        raw = _text(element, tag)
        if not raw:
            if required:
                raise self.error(element, f"{owner} has no <{tag}>")
            return None
        value = parse_svd_int(raw)
        if value is None:
            raise self.error(element, f"{owner}: <{tag}> is not an integer ({raw!r})")
        return value

    def inherited(self, peripheral: ET.Element, tag: str, seen: tuple[str, ...] = ()) -> ET.Element | None:
        """``peripheral``'s own ``tag`` child, else its derivedFrom chain's."""
        child = peripheral.find(tag)
        base = peripheral.get("derivedFrom")
        if child is not None or not base:
            return child
        name = _text(peripheral, "name")
        if base not in self.peripherals:
            raise self.error(peripheral, f"peripheral {name} is derivedFrom unknown peripheral {base!r}")
        if base in seen:
            raise self.error(peripheral, f"peripheral {name}: derivedFrom cycle through {base!r}")
        return self.inherited(self.peripherals[base], tag, seen + (name,))

    def properties(self, element: ET.Element, parent: dict[str, str]) -> dict[str, str]:
        return {**parent, **{tag: _text(element, tag) for tag in PROPERTIES if _text(element, tag)}}

    def field_line(self, field: ET.Element, register: str, access: str) -> str:
        name = _text(field, "name")
        owner = f"field {name or '?'} of register {register}"
        if not name:
            raise self.error(field, f"{owner} has no <name>")
        bit_range = _BIT_RANGE.match(_text(field, "bitRange"))
        if _text(field, "bitRange") and not bit_range:
            raise self.error(field, f"{owner}: <bitRange> is not [msb:lsb] ({_text(field, 'bitRange')!r})")
        if bit_range:
            msb, lsb = int(bit_range.group(1)), int(bit_range.group(2))
        elif field.find("lsb") is not None or field.find("msb") is not None:
            lsb, msb = self.integer(field, "lsb", owner, True), self.integer(field, "msb", owner, True)
        elif field.find("bitOffset") is not None:
            lsb = self.integer(field, "bitOffset", owner, True)
            msb = lsb + (self.integer(field, "bitWidth", owner) or 1) - 1
        else:
            raise self.error(field, f"{owner} has no bit position (bitOffset/bitWidth, lsb/msb or bitRange)")
        values = [f"{_text(v, 'value')}={_text(v, 'name')}" for v in field.iterfind("enumeratedValues/enumeratedValue")
                  if _text(v, "name")]
        line = f"  {name} {_bits(msb, lsb)} {_text(field, 'access') or access}".rstrip()
        line += f": {_text(field, 'description')}" if _text(field, "description") else ""
        if values:
            more = ", …" if len(values) > MAX_ENUMERATED else ""
            line += f" (values: {', '.join(values[:MAX_ENUMERATED])}{more})"
        return line

    def registers(self, container: ET.Element, props: dict[str, str], prefix: str, base: int,
                  lines: list[str], names: list[str]) -> None:
        """Append each register's lines (and clusters', recursively) and its expanded names."""
        for element in container:
            if element.tag not in ("register", "cluster"):
                continue
            name = _text(element, "name")
            if not name:
                raise self.error(element, f"<{element.tag}> in {prefix or 'peripheral'} has no <name>")
            owner = f"{element.tag} {prefix}{name}"
            offset = base + self.integer(element, "addressOffset", owner, True)
            inner = self.properties(element, props)
            if element.tag == "cluster":
                self.registers(element, inner, f"{prefix}{name.replace('[%s]', '[n]').replace('%s', 'n')}.",
                               offset, lines, names)
                continue
            dim = self.integer(element, "dim", owner)
            expanded = [prefix + n for n in dim_names(name, dim or 1, _text(element, "dimIndex"))]
            names.extend(expanded)
            step = self.integer(element, "dimIncrement", owner) if dim else None
            width = (parse_svd_int(inner.get("size", "32")) or 32) // 4
            reset = parse_svd_int(inner.get("resetValue", ""))
            head = f"Register {', '.join(expanded)} @ 0x{offset:02X}" + (f" (+{step:#x} each)" if step else "")
            head += f", reset 0x{reset:0{width}X}" if reset is not None else ""
            head += f", {inner['access']}" if inner.get("access") else ""
            description = _text(element, "description")
            lines.append(head + (f": {description}" if description else ""))
            lines.extend(self.field_line(f, expanded[0], inner.get("access", ""))
                         for f in element.iterfind("fields/field"))

    def section(self, name: str, element: ET.Element, device_props: dict[str, str]) -> Section:
        group = self.inherited(element, "groupName")
        group_name = " ".join((group.text or "").split()) if group is not None else ""
        description = self.inherited(element, "description")
        base_address = self.integer(element, "baseAddress", f"peripheral {name}", True)
        lines = [name + (f": {' '.join((description.text or '').split())}" if description is not None else "")]
        lines += [f"Group: {group_name}"] if group_name else []
        lines.append(f"Base address: 0x{base_address:08X}")
        base = element.get("derivedFrom")
        lines += [f"Derived from: {base}"] if base else []
        interrupts = [(_text(i, "name"), _text(i, "value"), _text(i, "description"))
                      for i in element.iterfind("interrupt")]
        lines += [f"Interrupt {n} ({v})" + (f": {d}" if d else "") for n, v, d in interrupts]
        names: list[str] = []
        registers = self.inherited(element, "registers")
        if registers is not None:
            props = dict(device_props)
            for tag in PROPERTIES:
                own = self.inherited(element, tag)
                props.update({tag: " ".join(own.text.split())} if own is not None and own.text else {})
            self.registers(registers, props, "", 0, lines, names)
        metadata: dict[str, Any] = {"device": self.device, "peripheral": name, "group": group_name or None,
                                    "base_address": base_address, "derived_from": base, "registers": names,
                                    "interrupts": [n for n, _, _ in interrupts]}
        path = (self.device, group_name, name) if group_name else (self.device, name)
        return Section(document=str(self.path), title=name, path=path, text="\n".join(lines),
                       span=self.spans.get(id(element), (1, 1)), metadata=metadata, rendered=True)


class SvdReader(DocumentReader):
    """CMSIS-SVD files (``.svd``, or ``.xml`` with a ``<device>`` root); spans are the peripherals' lines."""

    kind = "svd"
    suffixes = (".svd", ".xml")
    expects = "a CMSIS-SVD file with a <device> root element"

    def sniff(self, path: Path) -> bool:
        return bool(_DEVICE_ROOT.search(head_text(path)))

    def read(self, path: Path) -> list[Section]:
        root, spans = parse_xml(path, read_bytes(path))
        if root.tag != "device":
            raise DocumentError(f"{path}: root element is <{root.tag}>; expected {self.expects}")
        svd = _SvdFile(path, root, spans)
        device_props = svd.properties(root, {})
        return [svd.section(name, element, device_props) for name, element in svd.peripherals.items()]
