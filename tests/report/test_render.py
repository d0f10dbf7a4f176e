import json

from firmlm.report.render import headline
from firmlm.stages import run_stages


def test_report_is_rebuilt_from_artifacts_alone(tiny_config):
    cfg = tiny_config()
    run_stages(cfg, ["corpus", "train", "eval", "report"])
    report = cfg.run_dir / "report"
    md = (report / "report.md").read_text()
    results = json.loads((cfg.run_dir / "eval" / "results.json").read_text())
    for split, figs in results["models"]["base"]["perplexity"].items():
        assert f"### {split}" in md
        for cat, f in figs["per_category"].items():
            assert f"| {cat} | {f['docs']} | {f['tokens']} | {f['ppl']:.3f} |" in md
    for fig in ("training.png", "ppl_heldout.png", "completion_heldout.png"):
        assert (report / "figures" / fig).stat().st_size > 1000
    assert "## Failures" in md
    top1 = results["models"]["final"]["perplexity"]["heldout"]["overall"]["completion"]["top1"]
    assert "## Teacher-forced completion" in md and f"{100 * top1:.1f}%" in md
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    summary = json.loads((report / "summary.json").read_text())
    assert {r["split"] for r in summary["headline"]} == set(results["models"]["base"]["perplexity"])


def test_headline_counts_improved_categories():
    results = {
        "models": {"base": {"perplexity": {"heldout": {"overall": {"ppl": 10.0}, "per_category": {"a": {}, "b": {}}}}},
                   "final": {"perplexity": {"heldout": {"overall": {"ppl": 9.0}, "per_category": {}}}}},
        "reference": "base", "target": "final",
        "reduction_pct": {"heldout": {"overall": 10.0, "per_category": {"a": 12.0, "b": -1.0}}},
    }
    assert headline(results) == [{"split": "heldout", "reference": "base", "target": "final", "base_top1": None, "adapted_top1": None, "base_ppl": 10.0,
                                  "adapted_ppl": 9.0, "reduction_pct": 10.0, "categories_improved": 1, "categories": 2}]

