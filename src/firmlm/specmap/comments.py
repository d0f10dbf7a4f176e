"""Short descriptive text from source files: header comments, Kconfig prompts and help, Makefile comments, READMEs.

License and copyright text is dropped: it says nothing about what a file does.
"""

from __future__ import annotations

import re
from pathlib import Path

HEAD_BYTES = 8192
LINE_MARKERS = {"c": ("//",), "cpp": ("//",), "dts": ("//",), "ld": ("//",), "asm": ("//", "@", ";"),
                "kconfig": ("#",), "make": ("#",)}
_LICENSE = re.compile(r"licen[cs]|warrant|free software|permission (?:is hereby|notice)|distribut|merchantab|\bl?gpl"
                      r"|terms of the|the software\b|\"as is\"|liab(?:le|ilit)|damages|endorse|released under", re.I)
_NOTICE = re.compile(r"spdx-|copyright|\(c\)|all rights reserved|\bauthors?\b|\S+@\S+\.\w|https?://", re.I)
_DOXYGEN = re.compile(r"[@\\](?:file|brief|details|note|defgroup|addtogroup|ingroup)\b")
_DECORATION = re.compile(r"^[\s*!/#@;=\-]+|[\s*=\-]+$")
_KCONFIG_ENTRY = re.compile(r"^\s*(?:config|menuconfig|choice)\s+(\w+)")
_KCONFIG_PROMPT = re.compile(r'^\s*(?:bool|tristate|string|int|hex|prompt|menu|comment|mainmenu)\s+"([^"]*)"')
_KCONFIG_HELP = re.compile(r"^(\s*)(?:---\s*help\s*---|help)\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKUP = re.compile(r"[`*>#]+")
_MD_SEPARATOR = re.compile(r"<[^>]+>|\|")


def read_head(path: Path, limit: int = HEAD_BYTES) -> str:
    """The first ``limit`` bytes of a file as text (undecodable bytes replaced)."""
    with open(path, "rb") as fh:
        return fh.read(limit).decode("utf-8", errors="replace")


def clip(text: str, limit: int) -> str:
    """Whitespace collapsed, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut if cut else text[:limit]


def clean_comment(lines: list[str]) -> str:
    """Comment body without markers, license paragraphs, copyright/author lines or doxygen tags."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        line = _DECORATION.sub("", _DOXYGEN.sub(" ", line))
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    kept = []
    for paragraph in paragraphs:
        if not _LICENSE.search(" ".join(paragraph)):
            kept.extend(line for line in paragraph if not _NOTICE.search(line))
    return " ".join(kept)


def comment_blocks(text: str, language: str) -> list[list[str]]:
    """Comment blocks before the first line of code (blank and preprocessor lines do not end the header)."""
    markers = LINE_MARKERS.get(language, ("//",))
    blocks: list[list[str]] = []
    in_block = previous_line_comment = False
    for raw in text.splitlines():
        line = raw.strip()
        if in_block:
            end = line.find("*/")
            blocks[-1].append(line if end < 0 else line[:end])
            in_block = end < 0
            continue
        marker = next((m for m in markers if line.startswith(m)), None)
        if line.startswith("/*"):
            body = line[2:]
            end = body.find("*/")
            blocks.append([body if end < 0 else body[:end]])
            in_block = end < 0
        elif marker:
            if not previous_line_comment:
                blocks.append([])
            blocks[-1].append(line[len(marker):])
        elif line and not (line.startswith("#") and language in ("c", "cpp", "asm", "dts")):
            break
        previous_line_comment = marker is not None and not line.startswith("/*")
    return blocks


def first_comment(text: str, language: str, limit: int = 300) -> str:
    """The first header comment that says more than a license or copyright notice."""
    for block in comment_blocks(text, language):
        cleaned = clean_comment(block)
        if len(cleaned) >= 8:
            return clip(cleaned, limit)
    return ""


def line_comments(text: str, limit: int = 300) -> str:
    """All ``#`` comments of a Makefile (license text dropped)."""
    lines = [line.strip()[1:] for line in text.splitlines() if line.strip().startswith("#")]
    return clip(clean_comment(lines), limit)


def kconfig_text(text: str, limit: int = 400) -> str:
    """Symbols, prompts and help text of a Kconfig file: ``STM32_SERIAL STM32 serial port support. Polled ...``."""
    parts: list[str] = []
    help_indent: int | None = None
    for raw in text.splitlines():
        indent = len(raw.expandtabs(8)) - len(raw.expandtabs(8).lstrip())
        if help_indent is not None:
            if not raw.strip() or indent > help_indent:
                parts.append(raw.strip())
                continue
            help_indent = None
        if m := _KCONFIG_HELP.match(raw):
            help_indent = len(m.group(1).expandtabs(8))
        elif m := _KCONFIG_ENTRY.match(raw):
            parts.append(m.group(1))
        elif m := _KCONFIG_PROMPT.match(raw):
            parts.append(m.group(1) + ".")
    return clip(" ".join(parts), limit)


def readme_text(text: str, limit: int = 400) -> str:
    """README prose without Markdown markup or code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            lines.append(_MD_MARKUP.sub("", _MD_SEPARATOR.sub(" ", _MD_LINK.sub(r"\1", line))))
    return clip(clean_comment(lines), limit)
