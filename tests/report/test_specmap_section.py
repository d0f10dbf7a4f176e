"""The report's SpecMap section: coverage per document, not-implemented sections, the evaluation table."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from firmlm.models.references import cache_dir
from firmlm.report.specmap import LISTED_SECTIONS, mapping_lines
from firmlm.specmap.stage import run_map_eval
from firmlm.stages import run_stages

SPECMAP = Path(__file__).parents[1] / "fixtures" / "specmap"


@pytest.fixture
def mapped_run(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("FIRMLM_CACHE", str(tmp_path / "cache"))
    firmware = shutil.copytree(SPECMAP / "firmware", tmp_path / "firmware")
    svd = SPECMAP / "documents" / "stm32f4_mini.svd"
    cfg = tiny_config("map.enabled=true", f"map.documents=[{{path: '{svd}', repository: '{firmware}'}}]")
    run_stages(cfg, ["map"])
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"documents": [{"document": str(svd), "sections": {
        "USART1": {"files": ["drivers/serial/stm32_usart.c"], "symbols": ["USART_CR1_UE"]}}}]}))
    run_map_eval(cfg.map, cfg.corpus, cfg.run_dir / "map", truth, cache_dir() / "specmap")
    return cfg


def test_report_has_a_coverage_row_per_document_and_the_evaluation(mapped_run):
    run_stages(mapped_run, ["report"])
    md = (mapped_run.run_dir / "report" / "report.md").read_text()
    mapping = json.loads((mapped_run.run_dir / "map" / "mapping.json").read_text())
    [doc] = mapping["documents"]
    statuses = Counter(s["status"] for s in doc["sections"])
    assert "## Datasheet-to-code mapping (SpecMap)" in md
    row = next(line for line in md.splitlines() if line.startswith("| stm32f4_mini.svd |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == str(len(doc["sections"]))
    assert cells[3:7] == [str(statuses.get(k, 0)) for k in ("implemented", "partially_implemented",
                                                            "not_implemented", "not_applicable")]
    assert "TIM2" in md.split("Not implemented")[1]  # the fixture tree has no timer code
    assert "| file mapping accuracy | 1.000" in md and "| metric | hierarchical | flat BM25 |" in md
    assert "Datasheet-to-code mapping" in (mapped_run.run_dir / "report" / "report.html").read_text()


def test_long_not_implemented_lists_are_cut():
    sections = [{"title": f"S{i}", "path": ["RM", f"S{i}"], "status": "not_implemented", "files": [],
                 "symbols": []} for i in range(LISTED_SECTIONS + 4)]
    md = "\n".join(mapping_lines({"scorer": "bm25", "documents": [
        {"document": "/x/rm.pdf", "repository": "fw", "sections": sections}]}, None, None))
    assert f"RM > S{LISTED_SECTIONS - 1}" in md and f"RM > S{LISTED_SECTIONS}" not in md and "and 4 more" in md
    assert f"| rm.pdf | fw | {LISTED_SECTIONS + 4} | 0 | 0 | {LISTED_SECTIONS + 4} | 0 | 0 | 0 |" in md
