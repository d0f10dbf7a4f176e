from firmlm.report.figures import checkpoint_figure, smooth, training_figure


def test_smooth_skips_nan():
    assert smooth([1.0, float("nan"), 3.0], alpha=0.5) == [1.0, 1.0, 2.0]


def test_figures_are_written(tmp_path):
    metrics = [{"step": i, "loss": 2.0 - 0.1 * i, "lr": 1e-4, "lr_embed": 5e-5, "grad_norm": 1.0 + i,
                "tokens_per_s": 100.0 + i} for i in range(1, 6)]
    training_figure(metrics, tmp_path / "t.png")
    checkpoint_figure([{"model": "base", "step": 0, "heldout": 5.0}, {"model": "final", "step": 5, "heldout": 4.0}],
                      ["heldout", "indomain"], tmp_path / "c.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "c.png").stat().st_size > 1000


def test_reduction_figure_needs_intervals(tmp_path):
    from report_run import results

    from firmlm.report.figures import reduction_figure

    assert reduction_figure(results(), tmp_path / "r.png") is True
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "r.png").stat().st_size > 10_000
    assert reduction_figure(results(legacy=True), tmp_path / "legacy.png") is False
    assert not (tmp_path / "legacy.png").exists()
