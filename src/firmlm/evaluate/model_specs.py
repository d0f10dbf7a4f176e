"""Which models an evaluation compares: `eval.models` entries resolved against the run directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from firmlm.config import ApiModelConfig, EvalModelConfig
from firmlm.errors import StageError
from firmlm.runs import STEP_DIR, is_complete, list_complete, read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """A model ready to load: a reference plus an optional adapter folder, or an API endpoint."""

    name: str
    ref: str | None
    adapter: Path | None
    api: ApiModelConfig | None
    tasks: tuple[str, ...]
    step: int | None  # training step of the weights (0: the base model; None: unrelated model)

    @property
    def label(self) -> str:
        if self.api is not None:
            return f"api:{self.api.model} @ {self.api.base_url}"
        return f"{self.ref} + {self.adapter}" if self.adapter else str(self.ref)


def _final_step(train_dir: Path) -> int | None:
    summary = read_json(train_dir / "summary.json") if (train_dir / "summary.json").is_file() else {}
    return summary.get("steps")


def resolve_models(entries: list[EvalModelConfig], model_ref: str, train_dir: Path | None) -> tuple[list[ModelSpec], list[dict]]:
    """(models to evaluate, skipped entries with reasons). Adapter entries need a train stage."""
    specs: list[ModelSpec] = []
    skipped: list[dict] = []
    for e in entries:
        tasks = tuple(e.tasks)
        if e.api is not None:
            specs.append(ModelSpec(e.name, None, None, e.api, tuple(t for t in tasks if t == "generation"), None))
            continue
        ref = e.ref or model_ref
        if e.adapter is None:
            specs.append(ModelSpec(e.name, ref, None, None, tasks, 0 if ref == model_ref else None))
            continue
        if e.adapter in ("final", "checkpoints") or STEP_DIR.match(e.adapter):
            if train_dir is None:
                skipped.append({"model": e.name, "reason": "train stage disabled"})
                continue
            if e.adapter == "final":
                specs.append(ModelSpec(e.name, ref, train_dir / "final", None, tasks, _final_step(train_dir)))
            elif e.adapter == "checkpoints":
                found = list_complete(train_dir / "checkpoints")
                if not found:
                    skipped.append({"model": e.name, "reason": "no complete checkpoint kept"})
                specs += [ModelSpec(f"step-{step}", ref, folder, None, tasks, step) for step, folder in found]
            else:
                folder = train_dir / "checkpoints" / e.adapter
                if not is_complete(folder):
                    skipped.append({"model": e.name, "reason": f"{folder} is not a complete checkpoint (rotated away?)"})
                    continue
                specs.append(ModelSpec(e.name, ref, folder, None, tasks, int(e.adapter.split("-")[1])))
            continue
        folder = Path(e.adapter)
        if not (folder / "adapter_config.json").is_file():
            raise StageError(f"eval.models[{e.name}].adapter: {folder} has no adapter_config.json")
        specs.append(ModelSpec(e.name, ref, folder, None, tasks, None))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StageError(f"eval.models: names {duplicates} occur twice after expanding `checkpoints`")
    for s in skipped:
        log.warning("eval: skipping model %s (%s)", s["model"], s["reason"])
    return specs, skipped
