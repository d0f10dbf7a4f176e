"""A sweep's search space: config keys, their axes, and checks that fail before any trial starts.

Every key must name a config field (``train.lora.rank``), every axis must be non-empty, and every value it can take
must be valid for that field: a config with the axis's extremes (or each choice) applied is validated, so a typo,
an empty range or a rank of 0 is a :class:`~firmlm.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError

from firmlm.config import FirmlmConfig, SweepParamConfig
from firmlm.errors import ConfigError


def _field_exists(key: str) -> bool:
    """True when ``key`` names a config field, or an entry of a mapping field (``train.mixture.weights.NAME``)."""
    model: type[BaseModel] | None = FirmlmConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if get_origin(annotation) is dict:
            return i >= len(parts) - 2  # the mapping itself, or one entry of it by name
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return True


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in a nested config dict (creating sections)."""
    *sections, last = key.split(".")
    node = data
    for part in sections:
        node = node.setdefault(part, {})
    node[last] = value


def apply_params(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config dict with each dotted key of ``params`` set."""
    data = copy.deepcopy(data)
    for key, value in params.items():
        set_key(data, key, value)
    return data


def axis_values(key: str, axis: SweepParamConfig) -> list[Any]:
    """The values to validate an axis with: its choices, or its extremes (and, for a grid, every step)."""
    if axis.type == "categorical":
        if not axis.choices:
            raise ConfigError(f"sweep.space.{key}: a categorical axis needs a non-empty `choices` list")
        return list(axis.choices)
    if axis.choices is not None:
        raise ConfigError(f"sweep.space.{key}: `choices` is for categorical axes; {axis.type} takes low and high")
    if axis.low is None or axis.high is None:
        raise ConfigError(f"sweep.space.{key}: a {axis.type} axis needs `low` and `high`")
    if not axis.low < axis.high:
        raise ConfigError(f"sweep.space.{key}: empty range, low {axis.low:g} is not below high {axis.high:g}")
    if axis.type == "log_float" and axis.low <= 0:
        raise ConfigError(f"sweep.space.{key}: a log_float axis needs low > 0, got {axis.low:g}")
    if axis.type == "log_float" and axis.step is not None:
        raise ConfigError(f"sweep.space.{key}: a log_float axis has no `step`")
    if axis.type == "int":
        if axis.low != int(axis.low) or axis.high != int(axis.high):
            raise ConfigError(f"sweep.space.{key}: an int axis needs whole low and high")
        return [int(axis.low), int(axis.high)]
    return [axis.low, axis.high]


def grid(space: dict[str, SweepParamConfig]) -> dict[str, list[Any]] | None:
    """Every value of every axis when the space is finite (categorical or stepped axes), else None."""
    values: dict[str, list[Any]] = {}
    for key, axis in space.items():
        if axis.type == "categorical":
            values[key] = list(axis.choices or [])
        elif axis.step is not None or axis.type == "int":
            step = axis.step or 1
            count = int(math.floor((axis.high - axis.low) / step + 1e-9)) + 1
            points = [axis.low + i * step for i in range(count)]
            values[key] = [int(p) for p in points] if axis.type == "int" else points
        else:
            return None
    return values


def space_size(space: dict[str, SweepParamConfig]) -> int | None:
    """How many configurations a finite space holds (None: continuous)."""
    values = grid(space)
    return None if values is None else math.prod(len(v) for v in values.values())


def check_space(cfg: FirmlmConfig) -> None:
    """Raise a ConfigError naming the key when the space is empty, names an unknown key, has an empty axis, or can
    produce a value its config field rejects; ``grid`` needs a finite space."""
    space = cfg.sweep.space
    if not space:
        raise ConfigError("sweep.space: empty; give config keys and axes, e.g. train.lora.rank: {type: categorical, "
                          "choices: [8, 16, 32]}")
    base = cfg.model_dump(mode="json")
    for key, axis in space.items():
        if not _field_exists(key):
            raise ConfigError(f"sweep.space.{key}: not a config key (keys are dotted paths like train.lora.rank; "
                              "see `firmlm config reference`)")
        if key.split(".")[0] in ("run_dir", "sweep"):
            raise ConfigError(f"sweep.space.{key}: the sweep sets this itself; it cannot be searched")
        for value in axis_values(key, axis):
            try:
                FirmlmConfig.model_validate(apply_params(base, {key: value}))
            except ValidationError as exc:
                raise ConfigError(f"sweep.space.{key}: value {value!r} is not valid for this key "
                                  f"({exc.errors()[0]['msg']})") from None
    if cfg.sweep.sampler == "grid" and grid(space) is None:
        continuous = next(k for k, a in space.items() if a.type in ("float", "log_float") and a.step is None)
        raise ConfigError(f"sweep.space.{continuous}: sampler grid needs categorical or stepped axes")


def suggest(trial, space: dict[str, SweepParamConfig]) -> dict[str, Any]:
    """The trial's value for every axis (Optuna's suggest API; parameters are named by their config keys)."""
    params: dict[str, Any] = {}
    for key, axis in space.items():
        if axis.type == "categorical":
            params[key] = trial.suggest_categorical(key, axis.choices)
        elif axis.type == "int":
            params[key] = trial.suggest_int(key, int(axis.low), int(axis.high), step=int(axis.step or 1))
        else:
            params[key] = trial.suggest_float(key, axis.low, axis.high, step=axis.step,
                                              log=axis.type == "log_float")
    return params


def configurations(space: dict[str, SweepParamConfig]) -> list[dict[str, Any]]:
    """Every configuration of a finite space, in order; none for a continuous one."""
    values = grid(space)
    if values is None:
        return []
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
