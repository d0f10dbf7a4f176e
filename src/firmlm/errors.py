"""Errors that reach the user: each message names the file or key and what was expected."""

from __future__ import annotations


class FirmlmError(Exception):
    """Base class; the CLI prints the message on one line and exits with code 2."""

    exit_code = 2


class ConfigError(FirmlmError):
    """A config file, key or value is wrong."""


class SourceError(FirmlmError):
    """A corpus source cannot be found or fetched."""


class ModelError(FirmlmError):
    """A model reference is unknown or cannot be loaded."""


class StageError(FirmlmError):
    """A stage cannot run because an input artifact is missing or malformed."""


class DocumentError(FirmlmError):
    """A hardware document cannot be read or is not what its kind requires."""


class TrainingInterrupted(FirmlmError):
    """Training stopped on a signal or repeated NaN after saving an emergency checkpoint (exit 0)."""

    exit_code = 0
