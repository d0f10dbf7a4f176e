"""A live table of a sweep's trials (state, parameters, step and smoothed loss of the running one), redrawn
while the worker runs; off where progress bars are off (pipes, CI logs), where the log lines say the same."""

from __future__ import annotations

import threading
from typing import Any

from firmlm.config import SweepConfig
from firmlm.progress import console, enabled

REFRESH_S = 2.0
ROWS = 20


def trials_table(study, sweep: SweepConfig, live: dict[str, Any]):
    """A rich Table of the newest trials; the running trial of this worker shows its step and loss."""
    from rich.table import Table

    keys = list(sweep.space)
    table = Table(title=f"sweep {sweep.study_name}: {sweep.objective} (lower is better)")
    for column in ("trial", "state", *[k.split(".")[-1] for k in keys], "step", "loss / value"):
        table.add_column(column)
    for trial in study.get_trials(deepcopy=False)[-ROWS:]:
        mine = live.get("trial") == trial.number
        step = str(live.get("step", "")) if mine else str((trial.user_attrs.get("figures") or {}).get("steps", ""))
        if mine and live.get("loss") is not None:
            value = f"{live['loss']:.4f}"
        else:
            value = f"{trial.value:.4f}" if trial.value is not None else trial.user_attrs.get("prune_reason", "")[:40]
        table.add_row(str(trial.number), trial.state.name.lower(), *[str(trial.params.get(k, "")) for k in keys],
                      step, value)
    return table


class LiveTable:
    """Context manager: a thread redraws :func:`trials_table` every REFRESH_S seconds."""

    def __init__(self, study, sweep: SweepConfig, live: dict[str, Any]):
        self.study, self.sweep, self.live = study, sweep, live
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self, display) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                display.update(trials_table(self.study, self.sweep, self.live))
            except Exception:  # noqa: BLE001 - a database hiccup must not end the sweep
                continue

    def __enter__(self) -> LiveTable:
        if enabled():
            from rich.live import Live

            self._display = Live(trials_table(self.study, self.sweep, self.live), console=console, transient=True)
            self._display.start()
            self._thread = threading.Thread(target=self._loop, args=(self._display,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._display.stop()
