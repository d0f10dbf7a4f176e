"""A small, realistic run directory built by hand: a corpus manifest, a train summary and metrics, and eval
results with intervals, a control margin and contamination (``legacy=True``: results as written before those
existed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from firmlm.report.render import render_report
from firmlm.runs import StageOutput

CATEGORIES = {  # category: (base ppl, final ppl, files, tokens)
    "bootloader": (3.912, 3.301, 9, 14_208),
    "drivers": (4.207, 3.688, 14, 22_016),
    "networking": (3.544, 3.497, 7, 10_240),
    "rtos": (3.871, 3.402, 8, 12_672),
    "crypto": (3.322, 3.015, 10, 15_360),
}
CONTROL = ["crypto"]


def _ppl_split(model: str, scale: float) -> dict:
    per_category = {}
    for k, (base, final, files, tokens) in CATEGORIES.items():
        ppl = (base if model == "base" else final if model == "final" else (base + final) / 2) * scale
        top1 = 0.41 + (0.06 if model == "final" else 0.0) + 0.01 * len(k) / 10
        per_category[k] = {"ppl": ppl, "bpb": math.log2(ppl) / 2.3, "tokens": tokens, "docs": files * 2, "files": files,
                           "bytes": int(tokens * 2.3),
                           "completion": {"top1": top1, "top5": top1 + 0.2, "suffix_loss": math.log(ppl) * 0.9,
                                          "suffix_tokens": tokens // 4}}
    tokens = sum(c["tokens"] for c in per_category.values())
    ppl = math.exp(sum(math.log(c["ppl"]) * c["tokens"] for c in per_category.values()) / tokens)
    overall = {"ppl": ppl, "bpb": math.log2(ppl) / 2.3, "tokens": tokens, "docs": 96, "files": 48,
               "bytes": int(tokens * 2.3),
               "completion": {"top1": 0.43 + (0.06 if model == "final" else 0.0), "top5": 0.64, "suffix_loss": 1.2,
                              "suffix_tokens": tokens // 4}}
    return {"per_category": per_category, "overall": overall}


def _generation(model: str) -> dict:
    acc = 0.31 if model == "base" else 0.36
    cat = {"samples": 1, "weighted": {"token_accuracy": acc, "bleu4_corpus": 21.4 if model == "base" else 25.9},
           "unweighted": {"token_accuracy": acc, "bleu4_mean_sentence": 20.1}, "empty_generations": 0}
    split = {"per_category": {k: dict(cat) for k in CATEGORIES}, "overall": {**cat, "samples": len(CATEGORIES)}}
    return {"heldout": split, "indomain": split, "failures": {"failed_requests": 0, "empty_generations": 0,
                                                               "prompt_truncated": 1}}


def _comparison(scale: float) -> dict:
    per_category = {}
    for k, (base, final, files, tokens) in CATEGORIES.items():
        red = 100 * (1 - final / base) * scale
        ci = [round(red - 2.1 - files / 10, 3), round(red + 1.9 + files / 10, 3)]
        per_category[k] = {"reduction_pct": round(red, 3), "ci95": ci, "top1_delta_pts": 6.0, "top1_ci95": [3.1, 8.7],
                           "files": files, "tokens": tokens, "improved": ci[0] > 0}
    return {"per_category": per_category,
            "overall": {"reduction_pct": 12.346 * scale, "ci95": [10.512 * scale, 14.034 * scale],
                        "top1_delta_pts": 5.972, "top1_ci95": [4.1, 7.84], "files": 48, "tokens": 74_496, "improved": True},
            "categories_improved": sum(f["improved"] for f in per_category.values()), "categories": len(per_category),
            "reference": "base", "target": "final", "metric": "perplexity"}


def results(legacy: bool = False) -> dict:
    models = {m: {"perplexity": {"heldout": _ppl_split(m, 1.0), "indomain": _ppl_split(m, 0.8)},
                  "truncated_to_context": 0} for m in ("base", "step-32", "final")}
    models["step-32"]["step"], models["final"]["step"], models["base"]["step"] = 32, 64, 0
    for m in ("base", "final"):
        models[m]["generation"] = _generation(m)
    red = {s: {"per_category": {k: round(100 * (1 - f / b), 2) for k, (b, f, _, _) in CATEGORIES.items()},
               "overall": 12.35} for s in ("heldout", "indomain")}
    out = {"models": models, "reference": "base", "target": "final", "samples": 96, "generation_samples": 5,
           "splits": ["heldout", "indomain"], "skipped_models": [], "reduction_pct": red,
           "winners": {"perplexity": {"heldout": {"overall": {"model": "final", "value": 3.41}}}},
           "checkpoints": [{"model": "base", "step": 0, "heldout": 3.81, "indomain": 3.05},
                           {"model": "step-32", "step": 32, "heldout": 3.6, "indomain": 2.88},
                           {"model": "final", "step": 64, "heldout": 3.41, "indomain": 2.7}]}
    if legacy:
        for m in models.values():
            for split in m["perplexity"].values():
                for f in [*split["per_category"].values(), split["overall"]]:
                    del f["files"]
        return out
    out["files"] = 48
    out["comparison"] = {"heldout": _comparison(1.0), "indomain": _comparison(1.3)}
    out["control_margin"] = {s: {"control_categories": CONTROL, "embedded_reduction_pct": 12.9 * k,
                                 "control_reduction_pct": 9.241 * k, "margin_pts": 3.659 * k,
                                 "ci95": [0.812 * k, 6.431 * k], "embedded_files": 38, "control_files": 10,
                                 "embedded_tokens": 59_136, "control_tokens": 15_360}
                             for s, k in (("heldout", 1.0), ("indomain", 1.2))}
    out["contamination"] = {s: {k: {"shared_13gram_share": 0.012 * (i + 1) * k2, "windows": 12}
                                for i, k in enumerate(CATEGORIES)} for s, k2 in (("heldout", 1), ("indomain", 8))}
    return out


TRAIN = {"model": "bundled:smollm2-135m", "steps": 64, "max_steps": 64, "train_tokens": 1_310_720,
         "train_seconds": 612.4, "tokens_per_s": 2140.2618, "tokens_per_s_per_device": 2140.2618, "mfu": None,
         "first_loss": 2.4729530811309814, "final_loss": 1.5991559028625488, "world_size": 1,
         "stopped_for_time": False,
         "lora": {"rank": 64, "alpha": 128, "rslora": True,
                  "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}}

MANIFEST = {"counts": {"documents": 1204, "files_read": 1530},
            "inputs": [{"name": "u-boot", "role": "train", "origin": "debian:u-boot 2023.01", "files_kept": 812,
                        "documents": 640},
                       {"name": "mbedtls", "role": "heldout", "origin": "debian:mbedtls 2.28.3", "files_kept": 402,
                        "documents": 310}],
            "per_split": {"train": 894, "indomain": 120, "heldout": 190},
            "drops": {"binary": 12, "too_large": 3}, "leakage_guard_removed": 4}


def write_run(root: Path, legacy: bool = False) -> Path:
    """The artifacts the report stage reads, under ``root``."""
    for stage in ("corpus", "train", "eval"):
        (root / stage).mkdir(parents=True, exist_ok=True)
    (root / "corpus" / "manifest.json").write_text(json.dumps(MANIFEST))
    (root / "train" / "summary.json").write_text(json.dumps(TRAIN))
    (root / "train" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i, "loss": 2.47 - 0.013 * i, "grad_norm": 0.8, "lr": 2e-4, "lr_embed": None,
                    "tokens": 20_480 * i, "tokens_per_s": 2140.0}) + "\n" for i in range(1, 65)))
    (root / "eval" / "results.json").write_text(json.dumps(results(legacy)))
    return root


def render_run(root: Path, legacy: bool = False) -> tuple[Path, dict]:
    """Write the run under ``root`` and render its report; returns the report folder and the stage summary."""
    write_run(root, legacy)
    out = StageOutput("report", root / "report", "fp")
    out.path.mkdir()
    render_report(root, out)
    return out.path, out.summary
