"""firmlm's own task suite: one YAML file per task (format: :mod:`firmlm.exec.tasks`)."""

from pathlib import Path


def suite_dir() -> Path:
    """The folder holding the bundled task files."""
    return Path(__file__).parent
