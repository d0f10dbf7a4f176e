"""Shared fixtures: an isolated firmlm cache, the fixture repositories and test config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def firmlm_cache(tmp_path_factory):
    """Each session gets its own cache unless FIRMLM_CACHE is set (tiny models build in milliseconds)."""
    if not os.environ.get("FIRMLM_CACHE"):
        os.environ["FIRMLM_CACHE"] = str(tmp_path_factory.mktemp("firmlm-cache"))
    return Path(os.environ["FIRMLM_CACHE"])


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def tiny_config(tmp_path):
    """The fixture config with its run directory inside tmp_path."""
    from firmlm.config import load_config

    def make(*overrides: str):
        return load_config(FIXTURES / "tiny.yaml", [f"run_dir={tmp_path / 'run'}", *overrides])

    return make
