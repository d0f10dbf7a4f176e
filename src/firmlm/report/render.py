"""The report stage: report.md, report.html and figures/ from artifacts alone (SpecMap mapping, corpus manifest,
train summary and metrics, eval results, exec summary). It opens with the headline block; every section is skipped when its
artifact is missing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmlm.config import MAPPING_CATEGORY
from firmlm.report import fmt
from firmlm.report.figures import (
    checkpoint_figure,
    completion_figure,
    generation_figure,
    ppl_figure,
    reduction_figure,
    training_figure,
)
from firmlm.report.headline import headline, headline_lines, trained
from firmlm.report.execution import execution_lines
from firmlm.report.sweep import sweep_lines
from firmlm.report.html import page
from firmlm.report.specmap import mapping_lines
from firmlm.report.tables import (
    checkpoint_table,
    comparison_table,
    completion_table,
    failure_lines,
    generation_table,
    ppl_table,
    scored,
    winners_table,
)
from firmlm.runs import StageOutput, atomic_write_text


def _read_json(path: Path) -> Any | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def corpus_lines(manifest: dict[str, Any]) -> list[str]:
    c = manifest["counts"]
    md = ["## Corpus", "", f"{fmt.count(c['documents'])} documents from {len(manifest['inputs'])} sources "
          f"({fmt.count(c['files_read'])} files read).", "",
          "| source | role | origin | files | documents |", "|---|---|---|---:|---:|"]
    md += [f"| {i['name']} | {i['role']} | {i['origin']} | {fmt.count(i['files_kept'])} | {fmt.count(i['documents'])} |"
           for i in manifest["inputs"]]
    md += ["", "| split | documents |", "|---|---:|"] + [f"| {k} | {fmt.count(v)} |" for k, v in manifest["per_split"].items()]
    spec = manifest.get("per_category", {}).get(MAPPING_CATEGORY)
    if spec:
        md += ["", f"SpecMap documents (category `{MAPPING_CATEGORY}`, spec text with the code that implements it): "
               f"{fmt.count(sum(spec.values()))} in the training split (those quoting a file of an evaluation split "
               "are dropped as `mapping-quotes-evaluation-file`)."]
    if manifest.get("drops"):
        md += ["", "Dropped (files and documents) by reason: " + ", ".join(f"{k} {v}" for k, v in manifest["drops"].items())
               + f". The leakage guard removed {manifest.get('leakage_guard_removed', 0)} training documents "
               "that duplicated in-domain or held-out ones."]
    if manifest.get("secrets_replaced"):
        md += ["", "Secrets and PII replaced by placeholders: "
               + ", ".join(f"{k} {v}" for k, v in manifest["secrets_replaced"].items()) + "."]
    if manifest.get("cleaning_changes"):
        md += ["", "Cleaning (places changed): " + ", ".join(f"{k} {v}" for k, v in manifest["cleaning_changes"].items()) + "."]
    if manifest.get("forks"):
        md += ["", "Forks: " + ", ".join(f"{k} of {v['of']} ({100 * v['share']:.0f}% duplicated)"
                                        for k, v in manifest["forks"].items()) + "."]
    return md + [""]


def training_lines(train: dict[str, Any]) -> list[str]:
    devices = train.get("world_size") or 1
    per_device = train.get("tokens_per_s_per_device")
    speed = (f"{train['tokens_per_s']:,.0f} tokens/s" if train.get("tokens_per_s") is not None else "speed unknown") + (
        f" on {devices} processes, {per_device:,.0f} per device" if devices > 1 and per_device else "")
    if train.get("mfu") is not None:
        speed += f", MFU {100 * train['mfu']:.1f}%"
    seconds = train.get("train_seconds")
    took = f"{seconds:,.0f} s ({fmt.minutes(seconds)})" if seconds is not None else fmt.MISSING
    return ["## Training", "", f"{trained(train)}", "",
            f"{fmt.count(train.get('steps'))} optimizer steps, {fmt.count(train.get('train_tokens'))} tokens in {took} "
            f"at {speed}; loss {fmt.digits(train.get('first_loss'))} → {fmt.digits(train.get('final_loss'))} "
            "(first → last step).", ""]


def render_report(run_root: Path, out: StageOutput) -> None:
    """Write report.md, report.html and figures/ from the run's artifacts."""
    results = _read_json(run_root / "eval" / "results.json")
    manifest = _read_json(run_root / "corpus" / "manifest.json")
    train = _read_json(run_root / "train" / "summary.json")
    metrics = read_metrics(run_root / "train" / "metrics.jsonl")
    mapping = _read_json(run_root / "map" / "mapping.json")
    (out.path / "figures").mkdir(parents=True, exist_ok=True)
    figures: list[str] = []

    def figure(md: list[str], name: str, caption: str, draw: Callable[[Path], Any]) -> None:
        if draw(out.path / name) is not False:
            figures.append(name)
            md.extend([f"![{caption}]({name})", ""])

    top = headline_lines(results, train)
    if results:
        figure(top, "figures/reductions.png", "Reduction per category with 95% intervals",
               lambda path: reduction_figure(results, path))
    md: list[str] = []
    if mapping:
        md += mapping_lines(mapping, _read_json(run_root / "map" / "summary.json"),
                            _read_json(run_root / "map" / "eval.json"))
    if manifest:
        md += corpus_lines(manifest)
    if train:
        md += training_lines(train)
    if metrics:
        figure(md, "figures/training.png", "Training loss, LR schedule, gradient norm and throughput",
               lambda path: training_figure(metrics, path))
    if results:
        md += evaluation_lines(results, figure)
    execution = _read_json(run_root / "exec" / "summary.json")
    if execution and execution.get("models"):
        md += execution_lines(execution, figure)
    sweep = _read_json(run_root / "sweep" / "summary.json")
    if sweep and sweep.get("trials"):
        md += sweep_lines(sweep, figure)
    sections = [(None, ["# firmlm report", ""]), ("headline", top), (None, md)]
    atomic_write_text(out.path / "report.md", "\n".join(line for _, lines in sections for line in lines) + "\n")
    atomic_write_text(out.path / "report.html", page(sections, out.path))
    out.summary.update({"report": "report.md", "html": "report.html", "figures": figures,
                        "headline": headline(results) if results else [], "trained": trained(train, code="")})


def evaluation_lines(results: dict[str, Any], figure: Callable[..., None]) -> list[str]:
    """Perplexity, checkpoints, completion, generation, winners and failures; ``figure(md, name, caption, draw)``
    draws a figure and appends its image line to ``md``."""
    md: list[str] = []
    add = md.extend

    ref, target = results.get("reference", "base"), results.get("target")
    splits = list(results["models"][ref]["perplexity"])
    files = f" from {fmt.count(results['files'])} files" if results.get("files") else ""
    add(["## Perplexity", "", f"Token-weighted perplexity over the same {fmt.count(results['samples'])} samples{files} "
         "for every model; bits per byte (bpb) compare models with different tokenizers."
         + (f" Reduction = ({ref} − {target}) / {ref}, positive when {target} is better." if target else ""), ""])
    for split in splits:
        add([f"### {split}", ""] + ppl_table(results, split) + [""])
        comp = comparison_table(results, split)
        if comp:
            add([f"Reduction of {target} against {ref}:", ""] + comp + [""])
        figure(md, f"figures/ppl_{split}.png", f"Per-category perplexity, {split}",
               lambda p, s=split: ppl_figure(results, s, p))
    if results.get("checkpoints"):
        add(["## Perplexity across checkpoints", "", "Overall perplexity of the base model (step 0), the kept "
             "checkpoints and the final adapter.", ""] + checkpoint_table(results) + [""])
        figure(md, "figures/ppl_checkpoints.png", "Perplexity across checkpoints",
               lambda p: checkpoint_figure(results["checkpoints"], splits, p))
    add(["## Teacher-forced completion", "", "Each sample is split at the line boundary nearest 75% of its length and "
         "fed whole once; on the suffix tokens: top-1 and top-5 next-token accuracy and the mean loss "
         "(token-weighted).", ""])
    for split in splits:
        add([f"### {split}", ""] + completion_table(results, split) + [""])
        figure(md, f"figures/completion_{split}.png", f"Teacher-forced top-1 and top-5, {split}",
               lambda p, s=split: completion_figure(results, s, p))
    generated = any("generation" in r for r in results["models"].values())
    if generated:
        add(["## Generative completion", "", f"Greedy continuation of the 75% prefix of {results.get('generation_samples')} "
             "samples, scored against the true suffix in one code tokenization for every model (words and single "
             "symbols): token accuracy is the position-wise match over the reference length; BLEU-4 is corpus BLEU "
             "on those tokens with the generation cut to the reference length. Table figures are weighted by "
             "reference tokens; the unweighted means over samples follow each table.", ""])
        for split in splits:
            if scored(results, split, "generation"):
                add([f"### {split}", ""] + generation_table(results, split) + [""])
                figure(md, f"figures/generation_{split}.png", f"Generative token accuracy and BLEU-4, {split}",
                       lambda p, s=split: generation_figure(results, s, p))
    if len(results["models"]) > 2 or generated:
        add(["## Winner per category", "", "The best model on each metric, per category (ties: the model listed first).", ""])
        for split in splits:
            table = winners_table(results, split)
            if table:
                add([f"### {split}", ""] + table + [""])
    add(["## Failures", "", "Samples cut to the model's context, failed or empty generations, prompts cut to the "
         "generation budget, and API traffic: counted here, never dropped silently.", ""] + failure_lines(results) + [""])
    return md
