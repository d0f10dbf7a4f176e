"""The exec stage: every model answers every task, each answer is built and run in the sandbox, and pass@1 and the
failure classes are counted per model and level.

Models are ``exec.models`` entries in ``eval.models``' format, through firmlm's existing backends: local models
(base, base + adapter merged) continue the task's ``prompt`` greedily; API models answer its ``instruction`` when
they are chat models, else continue the prompt (responses cached in ``RUN/cache``). Writes ``RUN/exec/results.jsonl``
(one line per model × task: stage reached, failure class, detail, the build or run log's tail, the answer's head)
and the summary (per model: pass@1 overall and per level, failures by class; task files that could not be read;
models skipped; the sandbox's isolation).
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from firmlm.config import ExecConfig
from firmlm.errors import StageError
from firmlm.exec.runner import Outcome, evaluate_solution
from firmlm.exec.sandbox import isolation
from firmlm.exec.scoring import chat_solution, completion_solution, summarize, veriscope_score
from firmlm.exec.suite import suite_dir
from firmlm.exec.tasks import ExecTask, load_tasks
from firmlm.runs import StageOutput, atomic_write_text

log = logging.getLogger(__name__)
RESULTS_FILE = "results.jsonl"
ANSWER_CHARS = 2000


def _answers(spec, tasks: list[ExecTask], cfg: ExecConfig, bf16: bool, cache_dir: Path) -> tuple[list, bool]:
    """(one answer per task, None where the request failed; whether they are chat answers)."""
    if spec.api is not None:
        from firmlm.evaluate.backends.api import ApiBackend

        api = spec.api
        backend = ApiBackend.from_config(api, cache_dir / "api-requests.sqlite")
        prompts = [t.instruction if api.chat else t.prompt for t in tasks]
        return backend.complete(prompts, cfg.max_new_tokens), bool(api.chat)
    from firmlm import models
    from firmlm.evaluate.backends.local import LocalBackend

    placement = models.placement_for(spec.ref, "bf16" if bf16 else "fp32")
    model, tokenizer = models.load_with_adapter(spec.ref, spec.adapter, placement)
    backend = LocalBackend(model, tokenizer, spec.name, cfg.batch_size, cfg.max_prompt_tokens)
    return backend.complete([t.prompt for t in tasks], cfg.max_new_tokens), False


def _solution(task: ExecTask, answer: str | None, chat: bool) -> str | None:
    if answer is None:
        return None
    return chat_solution(answer) if chat else completion_solution(task.prompt, answer)


def _record(model: str, task: ExecTask, answer: str | None, outcome: Outcome) -> dict[str, Any]:
    return {"model": model, "task": task.id, "level": task.level, "target": task.target, "sample": 0,
            "stage": outcome.stage, "detail": outcome.detail, "log": outcome.log,
            "answer": None if answer is None else answer[:ANSWER_CHARS], "build_s": outcome.build_s,
            "run_s": outcome.run_s}


def run_exec(cfg: ExecConfig, model_ref: str, train_dir: Path | None, bf16: bool, out: StageOutput,
             cache_dir: Path) -> None:
    """Score every model of ``cfg.models`` on the tasks; write the results into ``out.path``."""
    from firmlm.evaluate.model_specs import resolve_models

    tasks, task_errors = load_tasks(Path(cfg.tasks) if cfg.tasks else suite_dir())
    if cfg.targets:
        tasks = [t for t in tasks if t.target in cfg.targets]
    if not tasks:
        raise StageError(f"exec: no tasks to run (tasks {cfg.tasks or suite_dir()}, targets {cfg.targets or 'all'}; "
                         f"{len(task_errors)} task files unreadable)")
    specs, skipped = resolve_models(cfg.models, model_ref, train_dir)
    records: list[dict[str, Any]] = []
    per_model: dict[str, Any] = {}
    for spec in specs:
        started = time.perf_counter()
        answers, chat = _answers(spec, tasks, cfg, bf16, cache_dir)
        generated = time.perf_counter() - started
        solutions = [_solution(t, a, chat) for t, a in zip(tasks, answers)]
        with ThreadPoolExecutor(cfg.workers or os.cpu_count() or 1) as pool:
            outcomes = list(pool.map(evaluate_solution, tasks, solutions))
        records += [_record(spec.name, t, a, o) for t, a, o in zip(tasks, answers, outcomes)]
        rtl = [o.stage for t, o in zip(tasks, outcomes) if t.target == "rtl-iverilog"]
        per_model[spec.name] = {"ref": spec.label, "step": spec.step, "mode": "chat" if chat else "completion",
                                **summarize([(t.id, t.level, o.stage) for t, o in zip(tasks, outcomes)]),
                                "rtl_score": veriscope_score(rtl) if rtl else None,
                                "generation_s": round(generated, 2),
                                "build_run_s": round(time.perf_counter() - started - generated, 2)}
        log.info("exec %s: pass@1 %s over %d tasks", spec.name, per_model[spec.name]["pass_at"].get("1"), len(tasks))
    atomic_write_text(out.path / RESULTS_FILE, "".join(json.dumps(r) + "\n" for r in records))
    out.summary.update({"models": per_model, "tasks": len(tasks), "task_errors": task_errors,
                        "skipped_models": skipped, "isolation": isolation().summary,
                        "levels": sorted({t.level for t in tasks}), "targets": sorted({t.target for t in tasks})})
