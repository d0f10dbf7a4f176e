"""Regenerate the README's config reference from the typed config (everything after its heading marker)."""

from pathlib import Path

from firmlm.config_reference import render

MARKER = "Generated from the typed config (`firmlm config reference`); unknown keys are errors.\n"
readme = Path(__file__).parents[1] / "README.md"
text = readme.read_text()
head = text[: text.index(MARKER) + len(MARKER)]
readme.write_text(head + "\n" + render().rstrip() + "\n")
