"""The exec stage: every model answers every task, each answer is built and run in the sandbox, and pass@k and
the failure classes are counted per model and level.

Models are ``exec.models`` entries in ``eval.models``' format, through firmlm's existing backends: local models
(base, base + adapter merged; transformers, or vLLM on a GPU) continue the task's ``prompt``; API models answer its
``instruction`` when they are chat models, else continue the prompt (responses cached in ``RUN/cache``). One sample
is greedy; ``exec.samples`` > 1 are sampled (pass@k). With ``exec.repair_rounds`` a failed answer goes back to the
model with its build or run output (:mod:`firmlm.exec.repair`). Tasks of ``kind: general`` (the forgetting check)
are scored apart from the firmware tasks. Writes ``RUN/exec/results.jsonl`` (one line per model × task × sample:
the first attempt's and the final stage, failure detail, the log's tail, the answer's head) and the summary.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from firmlm.config import ExecConfig
from firmlm.errors import StageError
from firmlm.evaluate.backends import Sampling
from firmlm.exec.repair import repair_prompt
from firmlm.exec.runner import Outcome, evaluate_solution
from firmlm.exec.sandbox import isolation
from firmlm.exec.scoring import (
    BUILD_FAILURES,
    chat_solution,
    completion_solution,
    summarize,
    veriscope_score,
)
from firmlm.exec.suite import suite_dir
from firmlm.exec.tasks import ExecTask, load_tasks
from firmlm.progress import bar
from firmlm.runs import StageOutput, atomic_write_text

log = logging.getLogger(__name__)
RESULTS_FILE = "results.jsonl"
ANSWER_CHARS = 2000
SYSTEM_MESSAGE = ("You write embedded C firmware, C and C++ programs and Verilog modules. Answer with the complete "
                  "source file in one fenced code block (```c, ```cpp or ```verilog); no other code blocks.")


@dataclass
class Attempt:
    """One sample of one task: its answers and outcomes, first attempt first."""

    task: ExecTask
    sample: int
    answers: list[str | None] = field(default_factory=list)
    solutions: list[str | None] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def last(self) -> Outcome:
        return self.outcomes[-1]

    def record(self, model: str) -> dict[str, Any]:
        first, last = self.outcomes[0], self.last
        answer = self.answers[-1]
        return {"model": model, "task": self.task.id, "level": self.task.level, "target": self.task.target,
                "kind": self.task.kind, "sample": self.sample, "first_stage": first.stage, "stage": last.stage,
                "attempts": [o.stage for o in self.outcomes],
                "repaired_in": len(self.outcomes) - 1 if last.passed and len(self.outcomes) > 1 else None,
                "detail": last.detail, "log": last.log,
                "answer": None if answer is None else answer[:ANSWER_CHARS],
                "build_s": round(sum(o.build_s for o in self.outcomes), 3),
                "run_s": round(sum(o.run_s for o in self.outcomes), 3)}


class _Answerer:
    """Prompts to answers for one model, through its backend; knows whether answers are chat answers."""

    def __init__(self, spec, cfg: ExecConfig, bf16: bool, cache_dir: Path):
        self.cfg = cfg
        self.close = lambda: None
        if spec.api is not None:
            from firmlm.evaluate.backends.api import ApiBackend

            self.backend = ApiBackend.from_config(spec.api, cache_dir / "api-requests.sqlite", SYSTEM_MESSAGE)
            self.chat, self.engine = bool(spec.api.chat), "api"
            return
        self.chat = False
        from firmlm.evaluate.backends.vllm import VllmBackend, use_vllm

        if use_vllm(cfg.engine, "exec.engine"):
            self.backend = VllmBackend(spec.ref, spec.adapter, spec.name, cfg.max_prompt_tokens)
            self.close, self.engine = self.backend.close, "vllm"
            return
        from firmlm import models
        from firmlm.evaluate.backends.local import LocalBackend

        placement = models.placement_for(spec.ref, "bf16" if bf16 else "fp32")
        model, tokenizer = models.load_with_adapter(spec.ref, spec.adapter, placement)
        self.backend = LocalBackend(model, tokenizer, spec.name, cfg.batch_size, cfg.max_prompt_tokens)
        self.engine = "transformers"

    def first_prompt(self, task: ExecTask) -> str:
        return task.instruction if self.chat else task.prompt

    def answer(self, prompts: list[str], seed: int) -> list[str | None]:
        if self.cfg.samples == 1:  # greedy: the backends' two-argument call
            return self.backend.complete(prompts, self.cfg.max_new_tokens)
        return self.backend.complete(prompts, self.cfg.max_new_tokens,
                                     Sampling(self.cfg.temperature, self.cfg.top_p, seed))

    def solution(self, task: ExecTask, answer: str | None) -> str | None:
        if answer is None:
            return None
        if self.chat:
            return chat_solution(answer, verilog=task.target == "rtl-iverilog")
        return completion_solution(task.prompt, answer)


def _evaluate(attempts: list[Attempt], workers: int, description: str) -> None:
    """Build and run every attempt's latest solution in parallel, with a progress bar."""
    with bar(description, total=len(attempts), unit="answers") as advance, ThreadPoolExecutor(workers) as pool:
        def one(attempt: Attempt) -> Outcome:
            outcome = evaluate_solution(attempt.task, attempt.solutions[-1])
            advance(1)
            return outcome

        for attempt, outcome in zip(attempts, pool.map(one, attempts)):
            attempt.outcomes.append(outcome)


def _ask(answerer: _Answerer, attempts: list[Attempt], prompts: list[str], seed_base: int) -> None:
    """Append one answer per attempt; attempts of one sample share a seed (sample i: seed_base + i)."""
    by_sample: dict[int, list[int]] = {}
    for i, attempt in enumerate(attempts):
        by_sample.setdefault(attempt.sample, []).append(i)
    for sample, indices in sorted(by_sample.items()):
        answers = answerer.answer([prompts[i] for i in indices], seed_base + sample)
        for i, answer in zip(indices, answers):
            attempts[i].answers.append(answer)
            attempts[i].solutions.append(answerer.solution(attempts[i].task, answer))


def _summary(attempts: list[Attempt], ks: list[int], repair_rounds: int) -> dict[str, Any]:
    """pass@k (first attempts) and the failure classes of the firmware tasks, the repair loop's pass@1, and the
    forgetting check's compile and pass rates."""
    firmware = [a for a in attempts if a.task.kind == "firmware"]
    general = [a for a in attempts if a.task.kind == "general"]
    first = [(a.task.id, a.task.level, a.outcomes[0].stage) for a in firmware]
    result: dict[str, Any] = summarize(first, ks)
    rtl = [a.outcomes[0].stage for a in firmware if a.task.target == "rtl-iverilog"]
    result["rtl_score"] = veriscope_score(rtl) if rtl else None
    if repair_rounds:
        repaired = summarize([(a.task.id, a.task.level, a.last.stage) for a in firmware], [1])
        result["repair"] = {"rounds": repair_rounds, "pass_at_1": repaired["pass_at"].get("1"),
                            "per_level": repaired["per_level"],
                            "fixed": sum(1 for a in firmware if a.last.passed and not a.outcomes[0].passed)}
    if general:
        ran = [a.outcomes[0].stage for a in general if a.outcomes[0].stage != "unsupported"]
        scored = summarize([(a.task.id, a.task.level, a.outcomes[0].stage) for a in general], [1])
        result["general"] = {"tasks": scored["tasks"], "samples": len(ran),
                             "compile_rate": sum(s not in BUILD_FAILURES for s in ran) / len(ran) if ran else None,
                             "pass_rate": scored["pass_at"].get("1"), "failures": scored["failures"]}
    return result


def run_exec(cfg: ExecConfig, model_ref: str, train_dir: Path | None, bf16: bool, out: StageOutput,
             cache_dir: Path) -> None:
    """Score every model of ``cfg.models`` on the tasks; write the results into ``out.path``."""
    from firmlm.evaluate.model_specs import resolve_models

    tasks, task_errors = load_tasks(Path(cfg.tasks) if cfg.tasks else suite_dir())
    if cfg.targets:
        tasks = [t for t in tasks if t.target in cfg.targets]
    if cfg.select:
        tasks = [t for t in tasks if any(fnmatchcase(t.id, pattern) for pattern in cfg.select)]
    if not tasks:
        raise StageError(f"exec: no tasks to run (tasks {cfg.tasks or suite_dir()}, targets {cfg.targets or 'all'}, "
                         f"select {cfg.select or 'all'}; {len(task_errors)} task files unreadable)")
    ks = sorted({k for k in cfg.pass_at if k <= cfg.samples} | {1})
    workers = cfg.workers or os.cpu_count() or 1
    specs, skipped = resolve_models(cfg.models, model_ref, train_dir)
    records: list[dict[str, Any]] = []
    per_model: dict[str, Any] = {}
    for spec in specs:
        started = time.perf_counter()
        answerer = _Answerer(spec, cfg, bf16, cache_dir)
        generation = building = 0.0
        try:
            attempts = [Attempt(t, s) for s in range(cfg.samples) for t in tasks]
            for round_ in range(cfg.repair_rounds + 1):
                todo = [a for a in attempts if not a.outcomes or (not a.last.passed and a.last.stage != "unsupported")]
                if not todo:
                    break
                prompts = [answerer.first_prompt(a.task) if not a.outcomes else
                           repair_prompt(a.task, answerer.chat, a.solutions[-1], a.last) for a in todo]
                t0 = time.perf_counter()
                _ask(answerer, todo, prompts, cfg.seed + 10_000 * round_)
                t1 = time.perf_counter()
                _evaluate(todo, workers, f"exec {spec.name}" + (f" repair {round_}" if round_ else ""))
                generation, building = generation + t1 - t0, building + time.perf_counter() - t1
        finally:
            answerer.close()
        records += [a.record(spec.name) for a in attempts]
        per_model[spec.name] = {"ref": spec.label, "step": spec.step, "mode": "chat" if answerer.chat else "completion",
                                "engine": answerer.engine, **_summary(attempts, ks, cfg.repair_rounds),
                                "load_s": round(time.perf_counter() - started - generation - building, 2),
                                "generation_s": round(generation, 2), "build_run_s": round(building, 2)}
        log.info("exec %s: pass@1 %s over %d tasks", spec.name, per_model[spec.name]["pass_at"].get("1"), len(tasks))
    atomic_write_text(out.path / RESULTS_FILE, "".join(json.dumps(r) + "\n" for r in records))
    firmware = [t for t in tasks if t.kind == "firmware"]
    out.summary.update({"models": per_model, "tasks": len(firmware), "general_tasks": len(tasks) - len(firmware),
                        "samples": cfg.samples, "pass_at": ks, "repair_rounds": cfg.repair_rounds,
                        "task_errors": task_errors, "skipped_models": skipped, "isolation": isolation().summary,
                        "levels": sorted({t.level for t in firmware}), "targets": sorted({t.target for t in tasks})})
