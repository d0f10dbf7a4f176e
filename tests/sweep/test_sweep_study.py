"""Samplers, pruner and the live table on an in-memory study."""

from __future__ import annotations

import optuna
import pytest

from firmlm.sweep.live import trials_table
from firmlm.sweep.space import suggest
from firmlm.sweep.study import make_pruner, make_sampler


@pytest.mark.parametrize("sampler", ["tpe", "gp", "grid", "random"])
def test_every_sampler_proposes_values_of_the_space(tiny_config, sampler):
    cfg = tiny_config(f"sweep.sampler={sampler}", 'sweep.space={"train.lora.rank": {"type": "categorical", '
                      '"choices": [4, 8]}, "train.lr": {"type": "categorical", "choices": [0.001, 0.01]}}')
    study = optuna.create_study(sampler=make_sampler(cfg.sweep), pruner=make_pruner(cfg.sweep))
    seen = set()

    def objective(trial) -> float:
        params = suggest(trial, cfg.sweep.space)
        seen.add(tuple(params.values()))
        return params["train.lr"] * params["train.lora.rank"]

    study.optimize(objective, n_trials=4)
    assert seen <= {(r, lr) for r in (4, 8) for lr in (0.001, 0.01)}
    if sampler == "grid":
        assert len(seen) == 4  # the grid visits every point once


def test_the_live_table_shows_each_trial_and_the_running_ones_loss(tiny_config):
    from rich.console import Console

    cfg = tiny_config('sweep.space={"train.lora.rank": {"type": "categorical", "choices": [4, 8]}}')
    study = optuna.create_study()
    done = study.ask()
    suggest(done, cfg.sweep.space)
    study.tell(done, 1.25)
    running = study.ask()
    suggest(running, cfg.sweep.space)
    console = Console(width=120, record=True)
    console.print(trials_table(study, cfg.sweep, {"trial": running.number, "step": 7, "loss": 2.5}))
    text = console.export_text()
    assert "complete" in text and "1.2500" in text and "running" in text and "2.5000" in text and " 7 " in text
