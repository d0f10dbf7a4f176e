"""CMSIS-style device headers generated from CMSIS-SVD register maps, for the Cortex-M exec targets.

A header gives what firmware written against a vendor's CMSIS header expects: one register struct per peripheral
type (``USART_TypeDef`` / ``NRF_UART_Type``), an instance per peripheral (``USART2->BRR``, ``NRF_RNG->VALUE``),
field macros (``USART_CR1_UE_Pos``, ``_Msk``, and for ST's style the bare mask ``USART_CR1_UE`` and single bits
``RCC_CFGR_SW_0``), and the interrupt numbers (``TIM2_IRQn``); it includes ``core_cm.h`` (NVIC, SCB, SysTick and
the intrinsics, written for firmlm). The matching ``vectors.h`` lists the interrupt handlers by their vendor names
(``TIM2_IRQHandler``) for the startup code's vector table.

Peripherals of one ``groupName`` share a type when their registers agree at every shared offset, else the later
one gets a type of its own; registers at one offset (SVD ``alternateRegister``) become an anonymous union, with the
common name before ``_`` as one more member (``CCMR1`` next to ``CCMR1_Output`` and ``CCMR1_Input``); ``dim``
registers named ``X[%s]`` become arrays, other ``dim`` registers are expanded; clusters become nested structs.

Run ``python -m firmlm.exec.device_header`` to regenerate the bundled headers from the ``cmsis-svd`` source
distribution on PyPI (downloaded once into firmlm's cache).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from firmlm.errors import DocumentError
from firmlm.specmap.readers.svd import dim_names, parse_svd_int

CMSIS_SVD_SDIST = "cmsis-svd==0.4"
_C_TYPES = {8: "uint8_t", 16: "uint16_t", 32: "uint32_t"}
_VARIANT = re.compile(r"_(?:Output|Input|Host|Device)$")  # alternate views of one register
_ACCESS = {"read-only": "__I", "write-only": "__O"}
_CORE_IRQS = {
    "cortex-m4": [("NonMaskableInt", -14), ("HardFault", -13), ("MemoryManagement", -12), ("BusFault", -11),
                  ("UsageFault", -10), ("SVCall", -5), ("DebugMonitor", -4), ("PendSV", -2), ("SysTick", -1)],
    "cortex-m0": [("NonMaskableInt", -14), ("HardFault", -13), ("SVCall", -5), ("PendSV", -2), ("SysTick", -1)],
}


@dataclass(frozen=True)
class HeaderStyle:
    """How a vendor names things: ``type_name`` formats a group (``{group}``), instances get ``instance_prefix``;
    ``bare_masks`` adds ST's ``REG_FIELD`` mask and ``REG_FIELD_n`` bits next to ``_Pos`` and ``_Msk``."""

    file_name: str
    core: str  # a key of _CORE_IRQS
    priority_bits: int  # __NVIC_PRIO_BITS
    core_clock_hz: int  # after reset: SystemCoreClock
    type_name: str = "{group}_TypeDef"
    instance_prefix: str = ""
    bare_masks: bool = True
    skip_groups: tuple[str, ...] = ("NVIC",)  # core peripherals come from core_cm.h


@dataclass
class Member:
    """A register, or a cluster of them, at ``offset`` bytes into its parent."""

    name: str
    offset: int
    size: int = 32  # bits of one register
    access: str = ""
    count: int = 1  # array length (dim registers named X[%s], dim clusters)
    stride: int = 0  # bytes per array element of a cluster
    fields: list[tuple[str, int, int, dict[str, int]]] = field(default_factory=list)  # name, lsb, width, values
    children: list[Member] | None = None  # a cluster's members

    @property
    def bytes(self) -> int:
        if self.children is None:
            return self.size // 8 * self.count
        return (self.stride or _extent(self.children)) * self.count


def _extent(members: list[Member]) -> int:
    return max((m.offset + m.bytes for m in members), default=0)


def _text(element: ET.Element, tag: str) -> str:
    return " ".join((element.findtext(tag) or "").split())


class _Reader:
    """Members of SVD register blocks, with the file named in every error."""

    def __init__(self, path: Path):
        self.path = path

    def integer(self, element: ET.Element, tag: str, owner: str, default: int | None = None) -> int:
        raw = _text(element, tag)
        value = parse_svd_int(raw) if raw else default
        if value is None:
            raise DocumentError(f"{self.path}: {owner}: <{tag}> missing or not an integer ({raw!r}); expected a "
                                "CMSIS-SVD integer")
        return value

    def fields(self, register: ET.Element, owner: str) -> list[tuple[str, int, int, dict[str, int]]]:
        found = []
        for item in register.iterfind("fields/field"):
            name = _text(item, "name")
            bit_range = re.fullmatch(r"\[(\d+):(\d+)\]", _text(item, "bitRange"))
            if bit_range:
                msb, lsb = int(bit_range.group(1)), int(bit_range.group(2))
            elif item.find("lsb") is not None:
                lsb, msb = self.integer(item, "lsb", owner), self.integer(item, "msb", owner)
            else:
                lsb = self.integer(item, "bitOffset", f"{owner}.{name}")
                msb = lsb + self.integer(item, "bitWidth", f"{owner}.{name}", 1) - 1
            values = {}
            for item_value in item.iterfind("enumeratedValues/enumeratedValue"):
                value = parse_svd_int(_text(item_value, "value")) if _text(item_value, "value") else None
                if _text(item_value, "name") and value is not None:
                    values[_text(item_value, "name")] = value
            found.append((name, lsb, msb - lsb + 1, values))
        return found

    def members(self, block: ET.Element, size: int, owner: str) -> list[Member]:
        out: list[Member] = []
        for element in block:
            if element.tag not in ("register", "cluster"):
                continue
            name = _text(element, "name")
            where = f"{owner}.{name}"
            offset = self.integer(element, "addressOffset", where)
            dim = self.integer(element, "dim", where, 1)
            step = self.integer(element, "dimIncrement", where, 0)
            own_size = self.integer(element, "size", where, size)
            if element.tag == "cluster":
                children = self.members(element, own_size, where)
                array = name.endswith("[%s]")
                names = [name[:-4]] if array else dim_names(name, dim, _text(element, "dimIndex"))
                for i, label in enumerate(names):
                    out.append(Member(label, offset + i * step, count=dim if array else 1, stride=step if array else 0,
                                      children=children))
                continue
            access, fields = _text(element, "access"), self.fields(element, where)
            if name.endswith("[%s]") and step == own_size // 8:
                out.append(Member(name[:-4], offset, own_size, access, dim, fields=fields))
            else:
                for i, label in enumerate(dim_names(name.replace("[%s]", "%s"), dim, _text(element, "dimIndex"))):
                    out.append(Member(label, offset + i * step, own_size, access, fields=fields))
        return sorted(out, key=lambda m: (m.offset, m.name))


@dataclass
class _Peripheral:
    name: str
    base: int
    group: str
    members: list[Member]
    interrupts: list[tuple[str, int]]
    type_name: str = ""


def _compatible(a: list[Member], b: list[Member]) -> bool:
    """True when the two register lists agree at every offset both use."""
    names_a: dict[int, set[str]] = {}
    for m in a:
        names_a.setdefault(m.offset, set()).add(m.name)
    return all(m.name in names_a[m.offset] or not names_a.get(m.offset) for m in b if m.offset in names_a)


def _merge(a: list[Member], b: list[Member]) -> list[Member]:
    seen = {(m.offset, m.name) for m in a}
    names = {m.name for m in a}
    return sorted(a + [m for m in b if (m.offset, m.name) not in seen and m.name not in names],
                  key=lambda m: (m.offset, m.name))


def read_svd(path: Path) -> tuple[str, list[_Peripheral]]:
    """The device name and its peripherals (``derivedFrom`` resolved)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DocumentError(f"{path}: cannot read a CMSIS-SVD file ({exc})") from None
    reader = _Reader(Path(path))
    size = reader.integer(root, "size", "device", 32)
    elements = {_text(p, "name"): p for p in root.iterfind("peripherals/peripheral")}
    peripherals = []
    for name, element in elements.items():
        source = element
        while source.find("registers") is None and source.get("derivedFrom") in elements:
            source = elements[source.get("derivedFrom")]
        group = _text(element, "groupName") or _text(source, "groupName") or name
        own_size = reader.integer(source, "size", name, size)
        registers = source.find("registers")
        members = reader.members(registers, own_size, name) if registers is not None else []
        interrupts = [(re.sub(r"_IRQ$", "", _text(i, "name")), reader.integer(i, "value", f"{name} interrupt"))
                      for i in element.iterfind("interrupt")]
        peripherals.append(_Peripheral(name, reader.integer(element, "baseAddress", name), group, members, interrupts))
    return _text(root, "name") or Path(path).stem, peripherals


def _declare(member: Member, indent: str, lines: list[str]) -> None:
    suffix = f"[{member.count}]" if member.count > 1 else ""
    if member.children is None:
        qualifier = _ACCESS.get(member.access, "__IO")
        lines.append(f"{indent}{qualifier} {_C_TYPES.get(member.size, 'uint32_t')} {member.name}{suffix};")
        return
    lines.append(f"{indent}struct {{")
    _layout(member.children, indent + "    ", lines, member.stride or None)
    lines.append(f"{indent}}} {member.name}{suffix};")


def _reserve(start: int, end: int, indent: str, lines: list[str], counter: list[int]) -> None:
    gap = end - start
    if gap <= 0:
        return
    kind, unit = ("uint32_t", 4) if gap % 4 == 0 and start % 4 == 0 else ("uint8_t", 1)
    lines.append(f"{indent}{kind} RESERVED{counter[0]}[{gap // unit}];")
    counter[0] += 1


def _common_name(names: list[str]) -> str:
    """The ``_``-separated words all ``names`` start with (``CCMR1`` of ``CCMR1_Input``, ``CCMR1_Output``)."""
    words = [n.split("_") for n in names]
    common = []
    for parts in zip(*words):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    return "_".join(common)


def _layout(members: list[Member], indent: str, lines: list[str], total: int | None = None) -> None:
    """Struct members in offset order: gaps as RESERVEDn arrays, registers sharing an offset as a union."""
    position, counter = 0, [0]
    names = {m.name for m in members}
    by_offset: dict[int, list[Member]] = {}
    for m in members:
        by_offset.setdefault(m.offset, []).append(m)
    for offset in sorted(by_offset):
        group = by_offset[offset]
        if offset < position:
            lines.append(f"{indent}/* skipped, overlaps the member before: {', '.join(m.name for m in group)} */")
            continue
        _reserve(position, offset, indent, lines, counter)
        if len(group) == 1:
            _declare(group[0], indent, lines)
        else:
            lines.append(f"{indent}union {{")
            alias = _common_name([m.name for m in group])
            if alias and alias not in names and group[0].children is None:
                _declare(Member(alias, offset, group[0].size, group[0].access, group[0].count), indent + "    ", lines)
            for m in group:
                _declare(m, indent + "    ", lines)
            lines.append(f"{indent}}};")
        position = offset + max(m.bytes for m in group)
    if total is not None:
        _reserve(position, total, indent, lines, counter)


def _field_macros(prefix: str, members: list[Member], style: HeaderStyle, macros: dict[str, str]) -> None:
    for m in members:
        if m.children is not None:
            _field_macros(f"{prefix}{m.name}_", m.children, style, macros)
            continue
        for name, lsb, width, values in m.fields:
            for register in dict.fromkeys([m.name, _VARIANT.sub("", m.name)]):  # CCMR1_Output also as CCMR1
                base = f"{prefix}{register}_{name}"
                mask = (1 << width) - 1
                entries = {f"{base}_Pos": f"{lsb}U", f"{base}_Msk": f"(0x{mask:X}UL << {base}_Pos)"}
                if style.bare_masks:
                    entries[base] = f"{base}_Msk"
                    if width > 1:
                        entries.update({f"{base}_{bit}": f"(0x1UL << ({base}_Pos + {bit}U))" for bit in range(width)})
                entries.update({f"{base}_{label}": f"(0x{value:X}UL)" for label, value in values.items()
                                if re.fullmatch(r"\w+", label)})  # Nordic's UART_ENABLE_ENABLE_Enabled
                for key, value in entries.items():
                    macros.setdefault(key, value)  # the first definition of a name wins


def render_header(path: Path, style: HeaderStyle, source: str) -> tuple[str, str]:
    """(the device header, the vectors.h for the startup code) of the SVD file at ``path``."""
    device, peripherals = read_svd(path)
    peripherals = [p for p in peripherals if p.group not in style.skip_groups]
    types: dict[str, list[Member]] = {}
    prefixes: dict[str, str] = {}
    for p in peripherals:
        if not p.members:
            continue
        candidate = style.type_name.format(group=p.group)
        if candidate in types and not _compatible(types[candidate], p.members):
            candidate = style.type_name.format(group=p.name)
        types[candidate] = _merge(types.get(candidate, []), p.members)
        prefixes.setdefault(candidate, p.group if candidate == style.type_name.format(group=p.group) else p.name)
        p.type_name = candidate
    guard = re.sub(r"\W", "_", style.file_name.upper())
    lines = [f"/* {style.file_name}: {device} registers for firmlm exec tasks, generated by firmlm.exec.device_header",
             f" * from {source}. Do not edit; regenerate with `python -m firmlm.exec.device_header`. */",
             f"#ifndef FIRMLM_{guard}", f"#define FIRMLM_{guard}", "", "#include <stdint.h>", ""]
    irqs = sorted({(n, v) for p in peripherals for n, v in p.interrupts}, key=lambda item: item[1])
    irqs = [(n, v) for i, (n, v) in enumerate(irqs) if all(n != m for m, _ in irqs[:i])]
    lines.append("typedef enum {")
    lines += [f"    {n}_IRQn = {v}," for n, v in _CORE_IRQS[style.core] + irqs]
    lines += ["} IRQn_Type;", "#define FIRMLM_DEVICE_IRQN 1", f"#define __NVIC_PRIO_BITS {style.priority_bits}U", "",
              '#include "core_cm.h"', "",
              "/* The core clock after reset, in Hz (the startup code defines it). */",
              "extern uint32_t SystemCoreClock;", ""]
    for name, members in types.items():
        lines.append("typedef struct {")
        _layout(members, "    ", lines)
        lines += [f"}} {name};", ""]
    for p in peripherals:
        if p.type_name:
            instance = style.instance_prefix + p.name
            lines += [f"#define {instance}_BASE 0x{p.base:08X}UL",
                      f"#define {instance} (({p.type_name} *){instance}_BASE)"]
    lines.append("")
    macros: dict[str, str] = {}
    for name, members in types.items():
        _field_macros(prefixes[name] + "_", members, style, macros)
    lines += [f"#define {k} {v}" for k, v in macros.items()]
    lines += ["", f"#endif /* FIRMLM_{guard} */", ""]
    return "\n".join(lines), render_vectors([(f"{n}_IRQHandler", v) for n, v in irqs], f"{device} ({source})",
                                             style.core_clock_hz)


def render_vectors(handlers: list[tuple[str, int]], origin: str, core_clock_hz: int) -> str:
    """The interrupt handlers' names by number, as an X-macro for ``cortex_m_startup.c``, and the core clock."""
    count = max((v for _, v in handlers), default=-1) + 1
    lines = [f"/* vectors.h: interrupt handlers of {origin}, generated by firmlm.exec.device_header. */",
             f"#define FIRMLM_CORE_CLOCK_HZ {core_clock_hz}u", f"#define FIRMLM_IRQ_COUNT {count}",
             "#define FIRMLM_IRQS(X) \\"]
    lines += [f"    X({v}, {n}) \\" for n, v in handlers]
    return "\n".join(lines + ["    /* end of FIRMLM_IRQS */", ""])


GENERIC_IRQS = 64
GENERIC_CORE_CLOCK_HZ = 25_000_000  # ARM's MPS2 FPGA images


STYLES = {
    "STMicro/STM32F40x.svd": HeaderStyle("stm32f4xx.h", "cortex-m4", 4, 16_000_000),  # HSI after reset
    "Nordic/nrf51.svd": HeaderStyle("nrf51.h", "cortex-m0", 2, 16_000_000, type_name="NRF_{group}_Type", instance_prefix="NRF_",
                                    bare_masks=False),
}


def fetch_cmsis_svd(member: str, cache: Path) -> Path:
    """``cmsis_svd/data/<member>`` from the cmsis-svd source distribution on PyPI, downloaded once into ``cache``."""
    target = cache / Path(member).name
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        CMSIS_SVD_SDIST, "-d", tmp], check=True)
        [sdist] = Path(tmp).glob("cmsis-svd-*.tar.gz")
        with tarfile.open(sdist) as archive:
            found = next(m for m in archive.getmembers() if m.name.endswith("/cmsis_svd/data/" + member))
            data = archive.extractfile(found).read()
        partial = target.with_suffix(".tmp")
        partial.write_bytes(data)
        partial.replace(target)
    return target


def generate_bundled(out_dir: Path, cache: Path) -> list[Path]:
    """Write every bundled device header and its ``<header stem>_vectors.h`` into ``out_dir``, and
    ``generic_vectors.h`` (``IRQ<n>_Handler``) for boards without one."""
    generic = out_dir / "generic_vectors.h"
    generic.write_text(render_vectors([(f"IRQ{n}_Handler", n) for n in range(GENERIC_IRQS)], "a board without an SVD",
                                      GENERIC_CORE_CLOCK_HZ), encoding="utf-8")
    written = [generic]
    for member, style in STYLES.items():
        header, vectors = render_header(fetch_cmsis_svd(member, cache), style, f"{member} ({CMSIS_SVD_SDIST})")
        for name, text in ((style.file_name, header), (f"{Path(style.file_name).stem}_vectors.h", vectors)):
            (out_dir / name).write_text(text, encoding="utf-8")
            written.append(out_dir / name)
    return written


if __name__ == "__main__":
    from firmlm.models.references import cache_dir

    runtime = Path(__file__).resolve().parent / "runtime"
    for written_path in generate_bundled(runtime, cache_dir() / "svd"):
        print(written_path)
