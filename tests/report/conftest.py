"""The report tests' run directory (see report_run.py), rendered once per session: tests only read it."""

import pytest
from report_run import render_run


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """(report folder, stage summary) of the hand-built run."""
    return render_run(tmp_path_factory.mktemp("report-run"))


@pytest.fixture(scope="session")
def rendered_legacy(tmp_path_factory):
    """The same run with results written before intervals, margins and contamination existed."""
    return render_run(tmp_path_factory.mktemp("report-legacy"), legacy=True)
