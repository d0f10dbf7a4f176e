"""Fixtures for SpecMap tests: a writable copy of the fixture firmware tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).parents[1] / "fixtures" / "specmap" / "firmware"


@pytest.fixture
def firmware(tmp_path) -> Path:
    """The fixture firmware tree copied to tmp_path/firmware (tests may edit it)."""
    return Path(shutil.copytree(FIRMWARE, tmp_path / "firmware"))

