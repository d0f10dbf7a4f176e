"""The search space: keys, axes and values checked before any trial, named in the error."""

from __future__ import annotations

import pytest

from firmlm.errors import ConfigError
from firmlm.sweep.space import check_space, configurations, grid, space_size


@pytest.mark.parametrize("axis, message", [
    ({"train.lora.rnak": {"type": "categorical", "choices": [4, 8]}}, r"sweep.space.train.lora.rnak: not a config key"),
    ({"train.lr": {"type": "log_float", "low": 1e-3, "high": 1e-4}}, r"sweep.space.train.lr: empty range"),
    ({"train.lora.rank": {"type": "categorical", "choices": []}}, r"sweep.space.train.lora.rank: a categorical axis"),
    ({"train.lora.rank": {"type": "int", "low": 0, "high": 8}}, r"sweep.space.train.lora.rank: value 0 is not valid"),
    ({"train.lora.targets": {"type": "categorical", "choices": ["attn_only", "mlp"]}},
     r"sweep.space.train.lora.targets: value 'mlp' is not valid"),
    ({"train.lr": {"type": "log_float", "low": 0, "high": 1e-3}}, r"sweep.space.train.lr: a log_float axis needs low"),
    ({"run_dir": {"type": "categorical", "choices": ["a"]}}, r"sweep.space.run_dir: the sweep sets this itself"),
    ({}, r"sweep.space: empty"),
])
def test_bad_spaces_name_the_key(tiny_config, axis, message):
    import json

    cfg = tiny_config(f"sweep.space={json.dumps(axis)}")
    with pytest.raises(ConfigError, match=message):
        check_space(cfg)


def test_grid_needs_a_finite_space(tiny_config):
    cfg = tiny_config('sweep.space={"train.lr": {"type": "float", "low": 0.001, "high": 0.002}}', "sweep.sampler=grid")
    with pytest.raises(ConfigError, match="sweep.space.train.lr: sampler grid needs categorical or stepped axes"):
        check_space(cfg)


def test_finite_spaces_are_enumerated(tiny_config):
    cfg = tiny_config('sweep.space={"train.lora.rank": {"type": "int", "low": 4, "high": 12, "step": 4}, '
                      '"train.lora.targets": {"type": "categorical", "choices": ["attn_only", "full"]}}')
    check_space(cfg)
    assert grid(cfg.sweep.space) == {"train.lora.rank": [4, 8, 12], "train.lora.targets": ["attn_only", "full"]}
    assert space_size(cfg.sweep.space) == 6 == len(configurations(cfg.sweep.space))
    assert space_size(tiny_config('sweep.space={"train.lr": {"type": "log_float", "low": 1e-4, "high": 1e-3}}')
                      .sweep.space) is None


def test_a_data_mixture_axis_names_a_group(tiny_config):
    """The paper's domain-only vs general-code study: the share of one source is an axis."""
    cfg = tiny_config('sweep.space={"train.mixture.weights.usb_lib": {"type": "categorical", "choices": [0, 0.3]}}')
    check_space(cfg)
    bad = tiny_config('sweep.space={"train.mixture.weights.usb_lib": {"type": "categorical", "choices": [1.5]}}')
    with pytest.raises(ConfigError, match="sweep.space.train.mixture.weights.usb_lib: value 1.5 is not valid"):
        check_space(bad)
