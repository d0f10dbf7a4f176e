from firmlm.evaluate.samples import select_samples
from firmlm.stages import run_stages


def test_samples_are_seeded_capped_and_stable(tiny_config):
    cfg = tiny_config()
    run_stages(cfg, ["corpus"])
    corpus = cfg.run_dir / "corpus"
    a = select_samples(corpus, ["indomain", "heldout"], 1, 50, seed=1)
    assert a == select_samples(corpus, ["indomain", "heldout"], 1, 50, seed=1)
    groups = [(s.split, s.category) for s in a]
    assert len(groups) == len(set(groups))
    assert all(len(s.text) <= 50 and s.split in {"indomain", "heldout"} for s in a)
    more = select_samples(corpus, ["heldout"], 10, 10_000, seed=1)
    assert {s.repo for s in more} == {"crypto_lib"}


def test_eval_stage_with_generation_reports_both_models(tiny_config):
    import json

    cfg = tiny_config("eval.generation.enabled=true", "eval.generation.max_new_tokens=8",
                      "eval.generation.samples_per_category=1")
    run_stages(cfg, ["corpus", "train", "eval", "report"])
    results = json.loads((cfg.run_dir / "eval" / "results.json").read_text())
    for name in ("base", "adapted"):
        gen = results["models"][name]["generation"]
        for split in ("indomain", "heldout"):
            overall = gen[split]["overall"]
            assert overall["samples"] == len(gen[split]["per_category"])
            assert 0.0 <= overall["weighted"]["token_accuracy"] <= 1.0
            assert set(overall["unweighted"]) == {"token_accuracy", "edit_distance", "bleu4_mean_sentence", "exact_match"}
    md = (cfg.run_dir / "report" / "report.md").read_text()
    assert "## Generative completion" in md and "base token acc" in md and "adapted BLEU-4" in md
