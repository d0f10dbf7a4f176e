"""Sweeps run for real: trials as child `firmlm run`s on a shared Optuna study, pruning, two workers, a killed
worker, SQLite and PostgreSQL, and the analysis in the run report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from firmlm.config import load_config
from firmlm.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GRID = {"train.lora.rank": {"type": "categorical", "choices": [2, 4]},
        "train.lr": {"type": "categorical", "choices": [1.0e-4, 1.0e-3]}}


def _config(tmp_path: Path, **sweep) -> Path:
    data = yaml.safe_load((FIXTURES / "tiny.yaml").read_text())
    for source in data["corpus"]["sources"]:
        source["path"] = str(FIXTURES / source["path"])
    data["run_dir"] = str(tmp_path / "run")
    data["sweep"] = {"space": GRID, "sampler": "grid", "n_trials": 4, "steps": 3, "heartbeat_s": 1, "grace_s": 3,
                     **sweep}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sweep(config: Path, *args: str, wait: bool = True):
    command = [sys.executable, "-m", "firmlm", "sweep", "-c", str(config), *args]
    env = {**os.environ, "TTY_INTERACTIVE": "0"}
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(command, capture_output=True, text=True, env=env)


def _study(config: Path):
    cfg = load_config(config)
    url = cfg.sweep.storage or f"sqlite:///{Path(cfg.run_dir) / 'sweep' / 'study.db'}"
    return optuna.load_study(study_name=cfg.sweep.study_name, storage=url)


def _counted(study) -> list:
    return [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED") and "duplicate_of" not in t.user_attrs]


def test_a_grid_sweep_runs_every_configuration_once_and_reports_it(tmp_path):
    config = _config(tmp_path)
    done = _sweep(config)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _counted(_study(config))
    assert sorted((t.params["train.lora.rank"], t.params["train.lr"]) for t in trials) == [
        (2, 1e-4), (2, 1e-3), (4, 1e-4), (4, 1e-3)]
    assert all(t.state.name == "COMPLETE" and t.user_attrs["figures"]["steps"] == 3 for t in trials)
    run = tmp_path / "run"
    assert (run / "sweep" / "trials" / "trial-0000" / "corpus").is_symlink()  # the parent's corpus, reused
    summary = json.loads((run / "sweep" / "summary.json").read_text())
    assert summary["states"] == {"complete": 4} and len(summary["marginal"]["train.lora.rank"]) == 2
    assert [p["rank"] for p in summary["lr_rank_fit"]["points"]] == [2.0, 4.0]
    assert "| trial | state | rank | lr | steps |" in done.stdout and "Marginal effect" in done.stdout
    assert (run / "sweep" / "figures" / "sweep_curves.png").stat().st_size > 1000
    again = _sweep(config)  # the study is finished: no trial runs, the analysis is printed again
    assert again.returncode == 0 and len(_study(config).get_trials()) == len(_study(config).get_trials())
    assert not (run / "sweep" / "trials" / "trial-0004").exists()
    from firmlm.stages import run_stages

    run_stages(load_config(config), ["report"])
    report = (run / "report" / "report.md").read_text()
    assert "## Sweep" in report and "figures/sweep_lr_rank.png" in report


def test_errors_come_before_any_trial(tmp_path):
    config = _config(tmp_path, space={"train.lora.rnak": {"type": "categorical", "choices": [2]}})
    done = _sweep(config)
    assert done.returncode != 0 and "sweep.space.train.lora.rnak: not a config key" in done.stderr
    config = _config(tmp_path, storage="postgresql+psycopg://firmlm:hunter2@127.0.0.1:9/nowhere")
    done = _sweep(config)
    assert done.returncode != 0 and "sweep.storage postgresql+psycopg://firmlm:***@127.0.0.1:9/nowhere: cannot " \
                                    "connect" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "run").exists()  # nothing written


def _two_workers(config: Path) -> None:
    workers = [_sweep(config, wait=False) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    study = _study(config)
    counted = _counted(study)
    params = [tuple(sorted(t.params.items())) for t in counted]
    assert len(params) == 4 and len(set(params)) == 4  # every configuration once
    assert {t.user_attrs["worker"] for t in counted} and all(t.state.name == "COMPLETE" for t in counted)
    for duplicate in (t for t in study.get_trials() if "duplicate_of" in t.user_attrs):
        assert duplicate.state.name == "PRUNED" and not (Path(duplicate.user_attrs.get("run_dir", "/none"))).exists()


def test_two_workers_share_a_sqlite_study(tmp_path):
    _two_workers(_config(tmp_path))


def test_two_workers_share_a_postgresql_study(tmp_path, postgres_url):
    _two_workers(_config(tmp_path, storage=postgres_url, study_name=f"two-workers-{os.getpid()}"))


def _children_of(config: Path) -> list[int]:
    """Processes still running a trial of this sweep (their command line names a trial config under it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(config.parent / "run" / "sweep" / "trials") in command:
            found.append(int(proc.name))
    return found


def test_a_killed_worker_leaves_a_consistent_study_that_a_rerun_finishes(tmp_path):
    config = _config(tmp_path, n_trials=1, steps=400, space={"train.lr": {"type": "categorical",
                                                                           "choices": [1.0e-4]}})
    worker = _sweep(config, wait=False)
    metrics = tmp_path / "run" / "sweep" / "trials" / "trial-0000" / "train" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        assert worker.poll() is None and time.time() < deadline, worker.communicate()[1][-3000:]
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.communicate()
    deadline = time.time() + 30
    while _children_of(config) and time.time() < deadline:
        time.sleep(0.5)
    assert not _children_of(config)  # the trial's training died with its worker
    [killed] = _study(config).get_trials()
    assert killed.state.name == "RUNNING"  # nobody has noticed yet
    time.sleep(4)  # past grace_s
    cfg = load_config(config, ["sweep.steps=3"])  # the rerun trains the queued copy briefly
    rerun = _sweep(config, "--set", "sweep.steps=3")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = _study(config).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].system_attrs.get("failed_trial") == 0 and trials[1].params == trials[0].params
    summary = json.loads((Path(cfg.run_dir) / "sweep" / "summary.json").read_text())
    assert "stopped sending heartbeats" in summary["trials"][0]["reason"]


def test_a_run_diverging_is_pruned_with_its_reason(tmp_path):
    """The bundled model at LR 1.0 leaves its loss far above where it started: the trial is stopped early."""
    config = _config(tmp_path, n_trials=1, steps=12, space={"train.lr": {"type": "categorical", "choices": [1.0]}})
    data = yaml.safe_load(config.read_text())
    data["model"] = "bundled:smollm2-135m"
    config.write_text(yaml.safe_dump(data))
    try:
        load_config(config)
        from firmlm import models

        models.parse_ref("bundled:smollm2-135m")
    except ConfigError as exc:
        pytest.skip(f"the bundled model is not installed: {exc}")
    done = _sweep(config)
    assert done.returncode == 0, done.stderr[-3000:]
    [trial] = _study(config).get_trials()
    assert trial.state.name == "PRUNED" and trial.user_attrs["prune_reason"].startswith("diverged at step ")
    assert trial.user_attrs["figures"]["steps"] < 12  # stopped before its budget


def test_a_trial_behind_the_median_is_pruned(tmp_path):
    """Two trials queued in order: a learning one, then one whose LR is too small to move; the second is behind
    the first's curve and is stopped."""
    config = _config(tmp_path, n_trials=2, steps=6, sampler="random",
                     space={"train.lr": {"type": "categorical", "choices": [3.0e-3, 1.0e-9]}},
                     pruning={"startup_trials": 1, "warmup_steps": 1, "divergence_ratio": 100})
    cfg = load_config(config)
    from firmlm.sweep.study import open_study

    study = open_study(cfg.sweep, Path(cfg.run_dir) / "sweep")
    study.enqueue_trial({"train.lr": 3.0e-3})
    study.enqueue_trial({"train.lr": 1.0e-9})
    done = _sweep(config)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _study(config).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert trials[1].user_attrs["prune_reason"].startswith("behind the median of earlier trials at step ")
