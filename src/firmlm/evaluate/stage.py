"""The eval stage: every model of `eval.models` on the same samples. Perplexity and teacher-forced completion
(local models), greedy generative completion (local, vLLM or API models), then the comparisons: reductions
against the reference, the winner per category, and perplexity across checkpoints."""

from __future__ import annotations

import gc
import logging
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from firmlm import models
from firmlm.config import EvalConfig, GenerationConfig
from firmlm.errors import StageError
from firmlm.evaluate.backends import CompletionBackend
from firmlm.progress import bar
from firmlm.evaluate.backends.api import ApiBackend
from firmlm.evaluate.backends.local import LocalBackend
from firmlm.evaluate.compare import checkpoint_series, reductions, winners
from firmlm.evaluate.contamination import measure as measure_contamination
from firmlm.evaluate.generation import aggregate_generation, score_generation
from firmlm.evaluate.intervals import compare, weighted_mean_interval
from firmlm.evaluate.model_specs import ModelSpec, resolve_models
from firmlm.evaluate.perplexity import aggregate, gpu_token_budget, score_texts, split_point
from firmlm.evaluate.samples import Sample, select_samples
from firmlm.runs import StageOutput, atomic_write_json

log = logging.getLogger(__name__)


def generation_samples(samples: list[Sample], per_category: int) -> list[Sample]:
    """The first ``per_category`` samples of each (split, category): the same for every model."""
    chosen, per_group = [], defaultdict(int)
    for s in samples:
        if per_group[(s.split, s.category)] < per_category:
            per_group[(s.split, s.category)] += 1
            chosen.append(s)
    return chosen


def reference_window(suffix: str, tokenizer, max_new_tokens: int) -> str:
    """The true continuation cut to as many tokens as the model may generate (the same length budget)."""
    if tokenizer is None:
        return suffix
    enc = tokenizer(suffix, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    return suffix if len(offsets) <= max_new_tokens else suffix[: offsets[max_new_tokens - 1][1]]


def generation_results(backend: CompletionBackend, chosen: list[Sample], cfg: GenerationConfig, tokenizer=None,
                       reference_tokenizer=None) -> dict:
    """Greedy completions of the 75% prefixes (after the file header), scored per split and category against
    the reference window of the same token budget, with failure counts."""
    cuts = [split_point(s.text) for s in chosen]
    prompts = [s.context + s.text[:c] for s, c in zip(chosen, cuts)]
    ref_tok = reference_tokenizer or tokenizer
    refs = [reference_window(s.text[c:], ref_tok, cfg.max_new_tokens) for s, c in zip(chosen, cuts)]
    t0 = time.perf_counter()
    outputs: list[str | None] = []
    step = max(1, cfg.batch_size)
    with bar(f"generation {getattr(backend, 'name', '')}".strip(), total=len(prompts), unit="samples") as advance:
        for start in range(0, len(prompts), step):
            outputs.extend(backend.complete(prompts[start:start + step], cfg.max_new_tokens))
            advance(len(prompts[start:start + step]))
    seconds = time.perf_counter() - t0
    failures = {
        "failed_requests": sum(o is None for o in outputs),
        "empty_generations": sum(o is not None and not o.strip() for o in outputs),
        "prompt_truncated": None if tokenizer is None else sum(
            len(tokenizer(p, add_special_tokens=False)["input_ids"]) + 1 > cfg.max_prompt_tokens for p in prompts),
    }
    groups: dict = defaultdict(lambda: defaultdict(list))
    for s, out, ref in zip(chosen, outputs, refs):
        groups[s.split][s.category].append((out or "", ref))  # a failed request scores as an empty output
    result_pairs = groups
    result: dict = {"seconds": round(seconds, 2), "samples": len(chosen), "failures": failures,
                    "samples_per_s": round(len(chosen) / seconds, 3) if seconds else None}
    for split, cats in sorted(result_pairs.items()):
        every = [pair for pairs in cats.values() for pair in pairs]
        result[split] = {
            "per_category": {c: _aggregate_pairs(pairs) for c, pairs in sorted(cats.items())},
            "overall": _aggregate_pairs(every),
        }
    return result


def _aggregate_pairs(pairs: list[tuple[str, str]]) -> dict:
    gens, refs = [g for g, _ in pairs], [r for _, r in pairs]
    scores = [score_generation(g, r) for g, r in pairs]
    figures = aggregate_generation(scores, gens, refs)
    if scores:
        figures["weighted"]["token_accuracy_ci95"] = weighted_mean_interval(
            [x.token_accuracy for x in scores], [x.ref_tokens for x in scores])
    return figures


def _evaluate_local(spec: ModelSpec, cfg: EvalConfig, samples: list[Sample], chosen: list[Sample],
                    precision: models.Precision, reference_tokenizer) -> dict:
    placement = models.placement_for(spec.ref, precision)
    result: dict = {"ref": spec.label, "step": spec.step, "placement": asdict(placement)}
    model, tokenizer = models.load_with_adapter(spec.ref, spec.adapter, placement)
    result["tokenizer"] = models.tokenizer_fingerprint(tokenizer)
    if "perplexity" in spec.tasks:
        budget = (cfg.gpu_batch_tokens or gpu_token_budget(model)) if placement.device == "cuda" else None
        t0 = time.perf_counter()
        with bar(f"perplexity {spec.name}", total=len(samples), unit="windows") as advance:
            scores = score_texts(model, tokenizer, [s.text for s in samples], cfg.batch_size, placement.autocast_bf16,
                                 max_batch_tokens=budget, contexts=[s.context for s in samples], progress=advance)
        seconds = time.perf_counter() - t0
        tokens = sum(s.tokens for s in scores)
        result["_scores"] = scores  # for the paired comparison; not written to results.json
        result.update({"perplexity": aggregate(samples, scores), "seconds": round(seconds, 2),
                       "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
                       "truncated_to_context": sum(s.truncated for s in scores)})
        log.info("%s: perplexity over %d tokens in %.1fs", spec.name, tokens, seconds)
    if chosen and "generation" in spec.tasks:
        from firmlm.evaluate.backends.vllm import VllmBackend, use_vllm

        if use_vllm(cfg.generation.engine, "eval.generation.engine"):

            del model
            _release_gpu_memory()  # vLLM takes its share of the GPU when it starts
            backend = VllmBackend(spec.ref, spec.adapter, spec.name, cfg.generation.max_prompt_tokens)
            try:
                result["generation"] = {"engine": "vllm", **generation_results(backend, chosen, cfg.generation, tokenizer,
                                                                                reference_tokenizer)}
            finally:
                backend.close()
        else:
            backend = LocalBackend(model, tokenizer, spec.name, cfg.generation.batch_size, cfg.generation.max_prompt_tokens)
            result["generation"] = {"engine": "transformers",
                                    **generation_results(backend, chosen, cfg.generation, tokenizer, reference_tokenizer)}
        log.info("%s: generation in %.1fs", spec.name, result["generation"]["seconds"])
    return result


def _release_gpu_memory() -> None:
    """Hand a dropped model's GPU memory back (the next model, or vLLM, sizes itself from free memory)."""
    import torch

    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _evaluate_api(spec: ModelSpec, cfg: EvalConfig, chosen: list[Sample], cache_dir: Path, reference_tokenizer) -> dict:
    api = spec.api
    backend = ApiBackend.from_config(api, cache_dir / "api-requests.sqlite")
    result: dict = {"ref": spec.label, "step": None}
    if chosen and "generation" in spec.tasks:
        result["generation"] = {"engine": "api", **generation_results(backend, chosen, cfg.generation, None,
                                                                      reference_tokenizer)}
    s = backend.stats
    result["api"] = {"requests": s.requests, "cache_hits": s.cache_hits, "retries": s.retries, "failures": dict(s.failures)}
    return result


def pick_target(cfg: EvalConfig, results: dict) -> str | None:
    """The model the headline compares with the reference: `final` if scored, else the last scored other model."""
    scored = [n for n, r in results.items() if "perplexity" in r and n != cfg.reference]
    return "final" if "final" in scored else (scored[-1] if scored else None)


def run_eval(cfg: EvalConfig, model_ref: str, corpus_dir: Path, train_dir: Path | None, seed: int, bf16: bool,
             out: StageOutput, cache_dir: Path) -> None:
    """Evaluate every model of ``cfg.models``. ``bf16`` (the train stage's resolved precision): True asks for
    bf16 (GPU weights, or autocast on a CPU), False for fp32; ``models.placement`` decides device and dtype.
    ``seed`` is the run's seed, used for sampling unless ``eval.seed`` is set."""
    precision: models.Precision = "bf16" if bf16 else "fp32"
    sample_seed = seed if cfg.seed is None else cfg.seed
    reference_tokenizer = models.load_tokenizer(model_ref)
    samples = select_samples(corpus_dir, list(cfg.splits), cfg.tokens_per_category, cfg.window_tokens, sample_seed,
                             reference_tokenizer, cfg.max_windows_per_file)
    if not samples:
        raise StageError(f"{corpus_dir}: no evaluation files in splits {list(cfg.splits)} (eval_files.parquet)")
    specs, skipped = resolve_models(cfg.models, model_ref, train_dir)
    chosen = generation_samples(samples, cfg.generation.samples_per_category) if cfg.generation.enabled else []
    log.info("evaluating %d models on %d windows of %d files (%d for generation) over %d (split, category) groups",
             len(specs), len(samples), len({s.file for s in samples}), len(chosen),
             len({(s.split, s.category) for s in samples}))
    per_model: dict = {}
    for spec in specs:
        if spec.api is not None:
            per_model[spec.name] = _evaluate_api(spec, cfg, chosen, cache_dir, reference_tokenizer)
        else:
            per_model[spec.name] = _evaluate_local(spec, cfg, samples, chosen, precision, reference_tokenizer)
            _release_gpu_memory()
    reference = per_model.get(cfg.reference, {}).get("perplexity")
    if reference is None:
        raise StageError(f"eval.reference {cfg.reference!r}: that model was skipped or has no perplexity task")
    ref_tokenizer = per_model[cfg.reference].get("tokenizer")
    for name, r in per_model.items():
        if name != cfg.reference and "perplexity" in r:
            r["reduction_metric"] = "perplexity" if r.get("tokenizer") == ref_tokenizer else "bpb"
            r["reduction_pct"] = reductions(reference, r["perplexity"], r["reduction_metric"])
    target = pick_target(cfg, per_model)
    comparison, margins = {}, {}
    if target:
        t = per_model[target]
        comparison, margins = compare(samples, per_model[cfg.reference]["_scores"], t["_scores"], t["reduction_metric"],
                                      cfg.control_categories, cfg.bootstrap_replicates, sample_seed)
        for figs in comparison.values():
            figs.update({"reference": cfg.reference, "target": target})
    scores = {name: r.pop("_scores") for name, r in per_model.items() if "_scores" in r}
    results: dict = {
        "models": per_model, "reference": cfg.reference, "target": target, "samples": len(samples),
        "files": len({s.file for s in samples}), "generation_samples": len(chosen), "splits": list(cfg.splits),
        "skipped_models": skipped, "reduction_pct": per_model[target]["reduction_pct"] if target else {},
        "comparison": comparison, "control_margin": margins,
        "contamination": measure_contamination(corpus_dir, samples) if cfg.contamination else {},
        "winners": winners(per_model), "checkpoints": checkpoint_series(per_model),
        "sampling": {"seed": sample_seed, "tokens_per_category": cfg.tokens_per_category,
                     "window_tokens": cfg.window_tokens, "bootstrap_replicates": cfg.bootstrap_replicates},
    }
    atomic_write_json(out.path / "results.json", results)
    generated = {s.doc_id for s in chosen}
    atomic_write_json(
        out.path / "samples.json",
        [{"doc_id": s.doc_id, "split": s.split, "category": s.category, "repo": s.repo, "path": s.path,
          "chars": len(s.text), "generation": s.doc_id in generated,
          "tokens": {name: sc[i].tokens for name, sc in scores.items()}} for i, s in enumerate(samples)],
    )
    out.summary.update(
        {
            "samples": len(samples),
            "models": list(per_model),
            "target": target,
            "overall_ppl": {
                m: {split: v["overall"]["ppl"] for split, v in r["perplexity"].items()}
                for m, r in per_model.items() if "perplexity" in r
            },
            "reduction_pct": {s: v["overall"] for s, v in results["reduction_pct"].items()},
            "reduction_ci95": {s: v["overall"]["ci95"] for s, v in comparison.items()},
            "categories_improved": {s: f"{v['categories_improved']}/{v['categories']}" for s, v in comparison.items()},
            "control_margin_pts": {s: [v["margin_pts"], v["ci95"]] for s, v in margins.items()},
            "generation_token_accuracy": {
                m: {split: r["generation"][split]["overall"]["weighted"]["token_accuracy"] for split in cfg.splits
                    if split in r["generation"]}
                for m, r in per_model.items() if "generation" in r
            },
        }
    )
