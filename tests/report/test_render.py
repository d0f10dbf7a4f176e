import json

from firmlm.report import fmt
from firmlm.report.headline import headline
from firmlm.stages import run_stages


def test_report_is_rebuilt_from_artifacts_alone(tiny_config):
    cfg = tiny_config()
    run_stages(cfg, ["corpus", "train", "eval", "report"])
    report = cfg.run_dir / "report"
    md = (report / "report.md").read_text()
    results = json.loads((cfg.run_dir / "eval" / "results.json").read_text())
    assert md.startswith("# firmlm report\n\n## Headline")
    for split, figs in results["models"]["base"]["perplexity"].items():
        assert f"### {split}" in md
        for cat, f in figs["per_category"].items():
            files = f"{f['files']:,} | " if "files" in f else ""
            assert f"| {cat} | {files}{f['docs']:,} | {f['tokens']:,} | {f['ppl']:.3f} |" in md
    for fig in ("training.png", "ppl_heldout.png", "completion_heldout.png"):
        assert (report / "figures" / fig).stat().st_size > 1000
    assert "## Failures" in md
    top1 = results["models"]["final"]["perplexity"]["heldout"]["overall"]["completion"]["top1"]
    assert "## Teacher-forced completion" in md and f"{100 * top1:.1f}%" in md
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html and "`" not in html
    summary = json.loads((report / "summary.json").read_text())
    assert {r["split"] for r in summary["headline"]} == set(results["models"]["base"]["perplexity"])


def test_headline_block_opens_the_report_with_intervals_margin_and_training(rendered):
    folder, summary = rendered
    md = (folder / "report.md").read_text()
    block = md.split("## Headline", 1)[1].split("\n## ", 1)[0]
    assert "**Trained:** `bundled:smollm2-135m` with LoRA r=64 (alpha 128, rsLoRA) on q_proj, k_proj" in block
    assert "64 steps, 1.31M train tokens, 10.2 min." in block
    assert "| heldout | 3.806 | 3.392 | +12.3% [+10.5, +14.0] | 4 of 5 | +3.7 pts [+0.8, +6.4] | +6.0 [+4.1, +7.8] |" in block
    assert "positive means final predicts the code better" in block
    assert "control (crypto) +9.2% over 10 files" in block
    assert "![Reduction per category with 95% intervals](figures/reductions.png)" in block
    assert (folder / "figures" / "reductions.png").stat().st_size > 10_000
    assert "figures/reductions.png" in summary["figures"]
    assert summary["trained"].startswith("bundled:smollm2-135m with LoRA r=64")


def test_per_category_intervals_control_and_contamination_are_tabled(rendered):
    md = (rendered[0] / "report.md").read_text()
    assert "| networking | 7 | 10,240 | +1.3% [−1.5, +3.9] | no | +6.0 [+3.1, +8.7] | 3.6% |" in md
    assert "| crypto (control) | 10 | 15,360 | +9.2% [+6.1, +12.1] | yes |" in md
    assert "| bootloader | 9 | 18 | 14,208 | 3.912 | 3.607 | 3.301 | 0.856 | 0.749 |" in md


def test_figures_are_rounded_everywhere(rendered):
    md = (rendered[0] / "report.md").read_text()
    assert "loss 2.473 → 1.599" in md and "2,140 tokens/s" in md
    # no float printed with its full binary expansion (e.g. 2.4729530811309814 or 3.805528089506004)
    import re

    assert not re.search(r"\d\.\d{5,}", md), re.search(r".{30}\d\.\d{5,}.{10}", md).group(0)


def test_old_results_without_intervals_still_render(rendered_legacy):
    folder, summary = rendered_legacy
    md = (folder / "report.md").read_text()
    assert "| heldout | 3.806 | 3.392 | +12.3% | 5 of 5 |" in md
    assert "categories are counted by point estimate" in md
    assert "figures/reductions.png" not in md and not (folder / "figures" / "reductions.png").exists()
    assert "| bootloader | 18 | 14,208 | 3.912 |" in md  # no files column
    assert summary["headline"][0]["improved_by"] == "point estimate"
    assert summary["headline"][0]["reduction_ci95"] is None


def test_headline_rows_carry_interval_improved_categories_and_margin(rendered):
    rows = rendered[1]["headline"]
    held = next(r for r in rows if r["split"] == "heldout")
    assert held["reduction_pct"] == 12.346 and held["reduction_ci95"] == [10.512, 14.034]
    assert (held["categories_improved"], held["categories"], held["improved_by"]) == (4, 5, "interval")
    assert held["control_margin_pts"] == 3.659 and held["control_margin_ci95"] == [0.812, 6.431]
    assert held["control_categories"] == ["crypto"] and held["metric"] == "perplexity"


def test_headline_counts_improved_categories_by_point_estimate_without_intervals():
    results = {
        "models": {"base": {"perplexity": {"heldout": {"overall": {"ppl": 10.0}, "per_category": {"a": {}, "b": {}}}}},
                   "final": {"perplexity": {"heldout": {"overall": {"ppl": 9.0}, "per_category": {}}}}},
        "reference": "base", "target": "final",
        "reduction_pct": {"heldout": {"overall": 10.0, "per_category": {"a": 12.0, "b": -1.0}}},
    }
    [row] = headline(results)
    assert (row["reduction_pct"], row["categories_improved"], row["categories"]) == (10.0, 1, 2)
    assert row["improved_by"] == "point estimate" and row["control_margin_pts"] is None


def test_number_formats():
    assert fmt.change(-12.345, [-14.04, -10.5]) == "−12.3% [−14.0, −10.5]"
    assert fmt.change(3.66, [0.81, 6.43], unit="pts") == "+3.7 pts [+0.8, +6.4]"
    assert fmt.change(1.0, None) == "+1.0%" and fmt.change(None) == "–"
    assert [fmt.tokens(n) for n in (950, 12_345, 999_999, 1_310_720)] == ["950", "12.3k", "1M", "1.31M"]
    assert fmt.ppl(3.8055280895) == "3.806" and fmt.share(0.0123) == "1.2%"
    assert fmt.minutes(612.4) == "10.2 min" and fmt.minutes(42.4) == "42 s"
