"""The eval stage end to end on the tiny model: several models, checkpoints, an API model over loopback."""

import json

import pytest

from firmlm.config import EvalConfig
from firmlm.errors import StageError
from firmlm.evaluate.model_specs import resolve_models
from firmlm.serve import CompletionServer, load_backend
from firmlm.stages import run_stages


@pytest.fixture
def served_base():
    server = CompletionServer(load_backend("tiny:llama", None, max_prompt_tokens=64), "tiny-base", port=0).start()
    yield server.url
    server.stop()


def test_models_checkpoints_and_an_api_model_in_one_evaluation(tiny_config, served_base):
    api = json.dumps({"name": "served-base", "api": {"base_url": served_base, "model": "tiny-base"}})
    down = json.dumps({"name": "down", "api": {"base_url": "http://127.0.0.1:9", "model": "m", "max_retries": 0}})
    cfg = tiny_config(
        "train.save_steps=1", "train.keep_checkpoints=2",
        f"eval.models=[base, final, checkpoints, step-1, {api}, {down}]",
        "eval.generation.enabled=true", "eval.generation.max_new_tokens=6", "eval.generation.samples_per_category=1",
        "eval.generation.batch_size=1", "eval.generation.max_prompt_tokens=64",
    )
    run_stages(cfg, ["corpus", "train", "eval", "report"])
    results = json.loads((cfg.run_dir / "eval" / "results.json").read_text())
    assert list(results["models"]) == ["base", "final", "step-2", "step-3", "served-base", "down"]
    assert results["skipped_models"] == [{"model": "step-1", "reason": results["skipped_models"][0]["reason"]}]
    assert "rotated" in results["skipped_models"][0]["reason"]
    assert results["target"] == "final" and results["reduction_pct"] == results["models"]["final"]["reduction_pct"]
    for split, comparison in results["comparison"].items():  # paired bootstrap figures with their evidence
        overall = comparison["overall"]
        if overall["files"] >= 3:
            assert overall["ci95"][0] <= overall["reduction_pct"] <= overall["ci95"][1]
        else:
            assert overall["ci95"] is None and not overall["improved"]
        assert overall["files"] == results["models"]["base"]["perplexity"][split]["overall"]["files"] > 0
        assert comparison["metric"] == "perplexity" and comparison["target"] == "final"
    assert set(results["contamination"]) == set(results["comparison"]) == {"indomain", "heldout"}
    assert all(0 <= c["shared_13gram_share"] <= 1 for cats in results["contamination"].values() for c in cats.values())
    assert [(r["model"], r["step"]) for r in results["checkpoints"]] == [("base", 0), ("step-2", 2), ("step-3", 3), ("final", 3)]
    # the served copy of the base model gives the same greedy outputs, so the same metrics
    base, served = results["models"]["base"]["generation"], results["models"]["served-base"]["generation"]
    for split in ("indomain", "heldout"):
        assert served[split] == base[split]
    assert results["models"]["served-base"]["api"]["requests"] == results["generation_samples"]
    assert "perplexity" not in results["models"]["served-base"]
    assert set(results["winners"]) == {"perplexity", "top1", "token_accuracy", "bleu4"}
    assert results["models"]["base"]["generation"]["failures"]["failed_requests"] == 0
    assert results["models"]["final"]["placement"]["device"] == "cpu"  # no GPU here: fp32 weights
    assert results["models"]["final"]["placement"]["dtype"] == "float32"
    n = results["generation_samples"]
    assert results["models"]["down"]["generation"]["failures"]["failed_requests"] == n
    assert results["models"]["down"]["api"]["failures"] == {"connection": n}
    md = (cfg.run_dir / "report" / "report.md").read_text()
    for heading in ("## Perplexity across checkpoints", "## Winner per category", "## Generative completion", "## Failures"):
        assert heading in md
    assert "| served-base | – | 0 |" in md and "step-1 (" in md and f"connection {n} |" in md
    figures = {p.name for p in (cfg.run_dir / "report" / "figures").iterdir()}
    assert {"ppl_checkpoints.png", "generation_heldout.png", "completion_indomain.png", "training.png"} <= figures
    # a rerun of the eval (forced) sends no request again: the API cache lives outside the stage folder
    run_stages(cfg, ["eval"], force=True)
    again = json.loads((cfg.run_dir / "eval" / "results.json").read_text())["models"]["served-base"]["api"]
    assert again["requests"] == 0 and again["cache_hits"] == results["generation_samples"]


def test_model_entries_resolve_against_the_run(tmp_path):
    cfg = EvalConfig(models=["base", "final", "step-5", "tiny:qwen2"])
    specs, skipped = resolve_models(cfg.models, "tiny:llama", None)
    assert [(s.name, s.ref, s.step) for s in specs] == [("base", "tiny:llama", 0), ("tiny:qwen2", "tiny:qwen2", None)]
    assert {s["model"] for s in skipped} == {"final", "step-5"}
    bad = EvalConfig(models=["base", {"name": "x", "adapter": str(tmp_path)}])
    with pytest.raises(StageError, match="adapter_config.json"):
        resolve_models(bad.models, "tiny:llama", tmp_path)
