"""The eval stage: perplexity, teacher-forced and (optionally) generative completion of the base and the
adapted model on indomain and heldout samples."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

from firmlm import models
from firmlm.config import EvalConfig, GenerationConfig
from firmlm.errors import StageError
from firmlm.evaluate.backends.local import LocalBackend
from firmlm.evaluate.generation import aggregate_generation, score_generation
from firmlm.evaluate.perplexity import aggregate, score_texts, split_point
from firmlm.evaluate.samples import Sample, select_samples
from firmlm.runs import StageOutput, atomic_write_json

log = logging.getLogger(__name__)


def reductions(base: dict, other: dict) -> dict:
    """Relative perplexity reduction (%) of ``other`` against ``base``, per split and category."""
    out = {}
    for split, figs in base.items():
        if split not in other:
            continue
        cats = {}
        for cat, f in figs["per_category"].items():
            o = other[split]["per_category"].get(cat)
            if o and f["ppl"]:
                cats[cat] = round(100.0 * (f["ppl"] - o["ppl"]) / f["ppl"], 2)
        overall = round(100.0 * (figs["overall"]["ppl"] - other[split]["overall"]["ppl"]) / figs["overall"]["ppl"], 2)
        out[split] = {"per_category": cats, "overall": overall}
    return out


def generation_results(model, tokenizer, name: str, samples: list[Sample], cfg: GenerationConfig) -> dict:
    """Greedy completions of the first samples of each (split, category), scored per split and category."""
    chosen, per_group = [], defaultdict(int)
    for s in samples:
        if per_group[(s.split, s.category)] < cfg.samples_per_category:
            per_group[(s.split, s.category)] += 1
            chosen.append(s)
    cuts = [split_point(s.text) for s in chosen]
    prompts = [s.text[:c] for s, c in zip(chosen, cuts)]
    refs = [s.text[c:] for s, c in zip(chosen, cuts)]
    backend = LocalBackend(model, tokenizer, name, cfg.batch_size, cfg.max_prompt_tokens)
    t0 = time.perf_counter()
    outputs = backend.complete(prompts, cfg.max_new_tokens)
    seconds = time.perf_counter() - t0
    groups: dict = defaultdict(lambda: defaultdict(list))
    for s, out, ref in zip(chosen, outputs, refs):
        groups[s.split][s.category].append((out or "", ref))
    result: dict = {"seconds": round(seconds, 2), "samples_per_s": round(len(chosen) / seconds, 3) if seconds else None}
    for split, cats in sorted(groups.items()):
        every = [pair for pairs in cats.values() for pair in pairs]
        result[split] = {
            "per_category": {c: _aggregate_pairs(pairs) for c, pairs in sorted(cats.items())},
            "overall": _aggregate_pairs(every),
        }
    return result


def _aggregate_pairs(pairs: list[tuple[str, str]]) -> dict:
    gens, refs = [g for g, _ in pairs], [r for _, r in pairs]
    return aggregate_generation([score_generation(g, r) for g, r in pairs], gens, refs)


def run_eval(cfg: EvalConfig, model_ref: str, corpus_dir: Path, train_dir: Path | None, seed: int, bf16: bool, out: StageOutput) -> None:
    samples = select_samples(corpus_dir, list(cfg.splits), cfg.docs_per_category, cfg.max_chars_per_doc, seed)
    if not samples:
        raise StageError(f"{corpus_dir}: no documents in splits {list(cfg.splits)} to evaluate")
    log.info("evaluating %d samples over %d (split, category) groups", len(samples), len({(s.split, s.category) for s in samples}))
    texts = [s.text for s in samples]
    loaders = {"base": lambda: models.load(model_ref)}
    if train_dir is not None:
        loaders["adapted"] = lambda: models.load_merged(model_ref, train_dir / "final")  # merged scores ~15% faster
    results: dict = {"models": {}, "samples": len(samples), "splits": list(cfg.splits)}
    for name, loader in loaders.items():
        model, tokenizer = loader()
        t0 = time.perf_counter()
        scores = score_texts(model, tokenizer, texts, cfg.batch_size, bf16)
        seconds = time.perf_counter() - t0
        tokens = sum(s.tokens for s in scores)
        results["models"][name] = {
            "ref": model_ref if name == "base" else f"{model_ref} + {train_dir / 'final'}",
            "perplexity": aggregate(samples, scores),
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        }
        log.info("%s: %d tokens in %.1fs", name, tokens, seconds)
        if cfg.generation.enabled:
            results["models"][name]["generation"] = generation_results(model, tokenizer, name, samples, cfg.generation)
            log.info("%s: generation in %.1fs", name, results["models"][name]["generation"]["seconds"])
        del model
    if "adapted" in results["models"]:
        results["reduction_pct"] = reductions(
            results["models"]["base"]["perplexity"], results["models"]["adapted"]["perplexity"]
        )
    atomic_write_json(out.path / "results.json", results)
    atomic_write_json(
        out.path / "samples.json",
        [{"doc_id": s.doc_id, "split": s.split, "category": s.category, "repo": s.repo, "path": s.path} for s in samples],
    )
    out.summary.update(
        {
            "samples": len(samples),
            "overall_ppl": {
                m: {split: v["overall"]["ppl"] for split, v in r["perplexity"].items()} for m, r in results["models"].items()
            },
            "reduction_pct": {s: v["overall"] for s, v in results.get("reduction_pct", {}).items()},
        }
    )
