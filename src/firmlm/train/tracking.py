"""Experiment trackers across a resume: a resumed run continues the same W&B and MLflow run.

The run ids are kept in ``RUN/train/tracking.json``. W&B: the id is chosen before the first step and given to
the integration as ``WANDB_RUN_ID`` with ``WANDB_RESUME=allow``. MLflow: the id of the run the integration starts
is recorded at the first step, and a resume sets ``MLFLOW_RUN_ID`` so the integration reopens that run.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from firmlm.distributed import is_main_process
from firmlm.runs import atomic_write_json

TRACKING_FILE = "tracking.json"


def _read(train_dir: Path) -> dict[str, Any]:
    path = train_dir / TRACKING_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def prepare_trackers(report_to: list[str], train_dir: Path, resuming: bool) -> dict[str, Any]:
    """Set the trackers' environment for this run (the same ids as before on a resume); returns the ids."""
    ids = _read(train_dir) if resuming else {}
    if "wandb" in report_to:
        ids.setdefault("wandb_run_id", uuid.uuid4().hex[:12])
        os.environ["WANDB_RUN_ID"] = ids["wandb_run_id"]
        os.environ["WANDB_RESUME"] = "allow"
    if "mlflow" in report_to:
        if ids.get("mlflow_run_id"):
            os.environ["MLFLOW_RUN_ID"] = ids["mlflow_run_id"]
        else:
            os.environ.pop("MLFLOW_RUN_ID", None)
    if ids and is_main_process():
        atomic_write_json(train_dir / TRACKING_FILE, ids)
    return ids


class RecordTrackerIds(TrainerCallback):
    """At the start of training (after the integrations opened their runs), record MLflow's run id."""

    def __init__(self, report_to: list[str], train_dir: Path, ids: dict[str, Any]):
        self.report_to, self.train_dir, self.ids = report_to, train_dir, ids

    def on_train_begin(self, args, state, control, **kwargs):
        if "mlflow" not in self.report_to or not is_main_process():
            return
        import mlflow

        run = mlflow.active_run()
        if run is not None and self.ids.get("mlflow_run_id") != run.info.run_id:
            self.ids["mlflow_run_id"] = run.info.run_id
            atomic_write_json(self.train_dir / TRACKING_FILE, self.ids)
