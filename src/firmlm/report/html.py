"""Markdown → one self-contained HTML page (CommonMark + tables via markdown-it-py; images inlined)."""

from __future__ import annotations

import base64
import html
import mimetypes
from collections.abc import Sequence
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:2px 8px}td{white-space:nowrap}th{background:#f3f3f3}
code{font-family:ui-monospace,monospace;background:#f3f3f3;padding:0 3px;border-radius:3px}
img{max-width:100%}section.headline{background:#f4f8fc;border:1px solid #9bb3cc;border-radius:6px;padding:0 1.2em .4em}
"""


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML in text is escaped


def _inline_images(tokens, root: Path) -> None:
    """Replace the ``src`` of images that exist under ``root`` by a data URI."""
    for token in tokens:
        for child in token.children or []:
            if child.type != "image":
                continue
            path = root / str(child.attrs.get("src", ""))
            if path.is_file():
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                child.attrs["src"] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def render_markdown(text: str, root: Path) -> str:
    """HTML of one Markdown document; image paths are relative to ``root``."""
    md = _parser()
    tokens = md.parse(text)
    _inline_images(tokens, root)
    return md.renderer.render(tokens, md.options, {})


def page(sections: Sequence[tuple[str | None, Sequence[str]]], root: Path, title: str = "firmlm report") -> str:
    """A page from Markdown sections; a section with a class name is wrapped in ``<section class=...>``."""
    body = []
    for css_class, lines in sections:
        inner = render_markdown("\n".join(lines), root)
        body.append(f'<section class="{html.escape(css_class)}">\n{inner}</section>\n' if css_class else inner)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{''.join(body)}</body></html>\n")
