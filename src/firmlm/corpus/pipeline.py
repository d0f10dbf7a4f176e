"""Running the corpus blocks on a datatrove executor: local processes, a Slurm array, or a Ray cluster.

Task outputs and datatrove's completion markers live in a work folder keyed by the inputs, outside the
stage's temporary folder, so a rerun after a crash (or a Slurm job that finished later) picks up every
completed task and runs only the rest.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from firmlm.config import ExecutorConfig
from firmlm.errors import StageError

log = logging.getLogger(__name__)


def make_executor(cfg: ExecutorConfig, steps: list, work_dir: Path):
    """The datatrove executor the config names, logging and completion markers under ``work_dir/logs``."""
    logs = str(work_dir / "logs")
    if cfg.kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        workers = cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)
        return LocalPipelineExecutor(steps, tasks=cfg.tasks, workers=min(workers, cfg.tasks), logging_dir=logs,
                                     skip_completed=True)
    if cfg.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not cfg.partition:
            raise StageError("corpus.executor.partition: required for kind=slurm")
        return SlurmPipelineExecutor(steps, tasks=cfg.tasks, time=cfg.time, partition=cfg.partition,
                                     cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=int(max(1, cfg.mem_per_cpu_gb)),
                                     workers=cfg.workers, logging_dir=logs, job_name="firmlm-corpus",
                                     sbatch_args=cfg.sbatch_args or None, skip_completed=True)
    from datatrove.executor import RayPipelineExecutor

    return RayPipelineExecutor(steps, tasks=cfg.tasks, workers=cfg.workers, logging_dir=logs, skip_completed=True,
                               cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=cfg.mem_per_cpu_gb)


def completed_tasks(work_dir: Path, tasks: int) -> int:
    return sum((work_dir / "logs" / "completions" / f"{r:05d}").is_file() for r in range(tasks))


def run_pipeline(cfg: ExecutorConfig, steps: list, work_dir: Path) -> dict:
    """Run (or resume) every task; returns {tasks, resumed}. A Slurm submission that has not finished yet
    stops the stage with instructions to rerun it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    before = completed_tasks(work_dir, cfg.tasks)
    if before:
        log.info("corpus: resuming, %d of %d tasks already complete", before, cfg.tasks)
    executor = make_executor(cfg, steps, work_dir)
    executor.run()
    done = completed_tasks(work_dir, cfg.tasks)
    if done < cfg.tasks:
        if cfg.kind == "slurm":
            raise StageError(f"corpus: {cfg.tasks - done} of {cfg.tasks} tasks submitted to Slurm; run `firmlm corpus` "
                             "again when the jobs have finished (finished tasks are kept)")
        raise StageError(f"corpus: {cfg.tasks - done} of {cfg.tasks} tasks failed; see {work_dir / 'logs'} and rerun "
                         "(finished tasks are kept)")
    return {"tasks": cfg.tasks, "resumed": before}
