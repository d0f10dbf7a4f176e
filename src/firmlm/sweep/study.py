"""The Optuna study behind a sweep: its database, sampler and pruner, checked before any trial starts.

Storage is SQLite in ``RUN/sweep/study.db`` by default, or any SQLAlchemy URL (PostgreSQL for workers on several
machines). Workers write heartbeats while a trial runs; a trial whose heartbeat is older than ``grace_s`` (its
worker was killed) is failed by the next worker to start or finish a trial, and its parameters are queued again
(``max_retries`` times) so a rerun finishes the study.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from firmlm.config import SweepConfig
from firmlm.errors import ConfigError
from firmlm.sweep.space import grid

STUDY_FILE = "study.db"
OPEN_ATTEMPTS = 5


def storage_url(sweep: SweepConfig, sweep_dir: Path) -> str:
    """The configured database URL, or SQLite in the sweep folder."""
    return sweep.storage or f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"


def _redacted(url: str) -> str:
    """A URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def check_storage(url: str) -> None:
    """Connect once; a ConfigError naming the (redacted) URL when the database cannot be reached."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

    try:
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"sweep.storage {_redacted(url)}: not a usable database URL ({exc})") from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ConfigError(f"sweep.storage {_redacted(url)}: cannot connect ({reason})") from None
    finally:
        engine.dispose()


def make_sampler(sweep: SweepConfig):
    import optuna

    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler(grid(sweep.space), seed=sweep.seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=sweep.seed)
    if sweep.sampler == "gp":
        return optuna.samplers.GPSampler(seed=sweep.seed, n_startup_trials=min(4, sweep.n_trials))
    return optuna.samplers.TPESampler(seed=sweep.seed, n_startup_trials=min(4, sweep.n_trials))


def make_pruner(sweep: SweepConfig):
    import optuna

    rule = sweep.pruning
    if not (rule.enabled and rule.median):
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=rule.startup_trials, n_warmup_steps=rule.warmup_steps)


def open_study(sweep: SweepConfig, sweep_dir: Path):
    """Create or load the study (every worker of a sweep calls this with the same config)."""
    import optuna

    url = storage_url(sweep, sweep_dir)
    if sweep.storage is not None:
        check_storage(url)  # before anything is written
    sweep_dir.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(OPEN_ATTEMPTS):
        try:  # workers starting together race to create the schema; the loser finds it made on its next try
            storage = optuna.storages.RDBStorage(
                url, heartbeat_interval=sweep.heartbeat_s, grace_period=sweep.grace_s,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=sweep.max_retries),
                engine_kwargs={"pool_pre_ping": True})
            return optuna.create_study(storage=storage, study_name=sweep.study_name, sampler=make_sampler(sweep),
                                       pruner=make_pruner(sweep), direction="minimize", load_if_exists=True)
        except (IntegrityError, OperationalError):
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")
