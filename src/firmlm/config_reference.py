"""Markdown reference of every config key, generated from the pydantic models (so it stays true)."""

from __future__ import annotations

import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from firmlm.config import FirmlmConfig


def _type_name(annotation: typing.Any) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "").replace("<class '", "").replace("'>", "")
    return text.replace("firmlm.config.", "")


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(section)"
        return repr(value)
    if field.default is PydanticUndefined:
        return "required"
    return repr(field.default if not hasattr(field.default, "as_posix") else field.default.as_posix())


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    nested = []
    out += [f"### `{prefix or '(top level)'}`", "", (model.__doc__ or "").strip(), "",
            "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        ann = field.annotation
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((ann, key))
            out.append(f"| `{key}` | section | | see below |")
            continue
        args = typing.get_args(ann)
        item = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if item is not None:
            nested.append((item, f"{key}[]"))
        desc = (field.description or "").replace("|", "\\|")
        out.append(f"| `{key}` | {_type_name(ann).replace('|', 'or')} | {_default(field)} | {desc} |")
    out.append("")
    for sub, key in nested:
        _section(sub, key, out)


def render() -> str:
    out: list[str] = []
    _section(FirmlmConfig, "", out)
    return "\n".join(out)
