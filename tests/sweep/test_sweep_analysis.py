"""The rank-LR fit: brackets, censoring, and a slope recovered from synthetic trials."""

from __future__ import annotations

import math

import pytest

from firmlm.sweep.analysis import stable_lr_fit


def _row(rank: int, lr: float, stable: bool) -> dict:
    return {"params": {"train.lora.rank": rank, "train.lr": lr}, "state": "complete" if stable else "pruned",
            "stable": stable}


def test_limits_scaling_as_r_to_the_minus_half_give_that_slope():
    rows = []
    for rank in (8, 32, 128, 512):
        limit = 0.08 / math.sqrt(rank)
        rows += [_row(rank, limit / 1.5, True), _row(rank, limit * 1.5, False), _row(rank, limit * 4, False)]
    fit = stable_lr_fit(rows)
    assert fit["fitted_points"] == 4 and fit["censored_points"] == 0
    assert fit["slope"] == pytest.approx(-0.5, abs=1e-9) and fit["stderr"] == pytest.approx(0, abs=1e-9)
    assert fit["prediction_inside_ci95"]
    assert fit["points"][0]["limit"] == pytest.approx(0.08 / math.sqrt(8))


def test_a_rank_without_an_unstable_lr_above_is_censored_and_not_fitted():
    rows = [_row(8, 1e-3, True), _row(8, 1e-2, False), _row(16, 1e-3, True), _row(16, 1e-4, True),
            _row(32, 1e-4, True), _row(32, 1e-2, False)]
    fit = stable_lr_fit(rows)
    by_rank = {p["rank"]: p for p in fit["points"]}
    assert by_rank[16.0]["censored"] and by_rank[16.0]["limit"] is None
    assert by_rank[32.0]["limit"] == pytest.approx(1e-3)  # between 1e-4 (stable) and 1e-2 (unstable)
    assert fit["fitted_points"] == 2 and fit["stderr"] is None  # two points: a slope, no interval
    assert fit["slope"] == pytest.approx(math.log(1e-3 / math.sqrt(1e-5)) / math.log(32 / 8))


def test_no_fit_without_both_axes():
    assert stable_lr_fit([{"params": {"train.lr": 1e-3}, "state": "complete", "stable": True}]) is None
