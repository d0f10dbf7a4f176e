"""The map stage end to end on the fixture documents and firmware tree: mapping.json, the training rendering,
skips with reasons, and clear errors for repositories that cannot be mapped."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from firmlm.errors import ConfigError, SourceError, StageError
from firmlm.specmap.mapping import STATUSES, SectionMapping
from firmlm.specmap.render import RULE
from firmlm.stages import run_stages

DOCUMENTS = Path(__file__).parents[1] / "fixtures" / "specmap" / "documents"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FIRMLM_CACHE", str(tmp_path / "cache"))


def _config(tiny_config, documents: Path, repository: Path | str, *extra: str):
    return tiny_config("map.enabled=true", f"map.documents=[{{path: '{documents}', repository: '{repository}'}}]",
                       *extra)


def _mapping(cfg) -> dict:
    return json.loads((Path(cfg.run_dir) / "map" / "mapping.json").read_text())


def _sections(cfg, name: str) -> list[SectionMapping]:
    doc = next(d for d in _mapping(cfg)["documents"] if Path(d["document"]).name == name)
    return [SectionMapping.from_dict(s) for s in doc["sections"]]


def test_maps_documents_to_files_and_symbols(tiny_config, firmware):
    cfg = _config(tiny_config, DOCUMENTS, firmware)
    [result] = run_stages(cfg, ["map"])
    svd = {m.title: m for m in _sections(cfg, "stm32f4_mini.svd")}
    usart = svd["USART1"]
    assert usart.files[0][0].startswith("drivers/serial/stm32_usart")
    assert any(s.name.startswith("USART_CR1") and s.path.startswith("drivers/serial/") and s.line > 0
               for s in usart.symbols)
    assert usart.status in ("implemented", "partially_implemented") and usart.coverage > 0
    assert svd["TIM2"].status == "not_implemented"  # no timer code in the tree: CR1 alone does not count
    every = [m for d in _mapping(cfg)["documents"] for m in d["sections"]]
    assert {m["status"] for m in every} <= set(STATUSES)
    assert all(m["files"] == sorted(m["files"], key=lambda f: -f[1]) for m in every)  # best first
    assert result.summary["sections"] == len(every)


def test_section_context_and_most_specific_folder(tiny_config, firmware):
    cfg = _config(tiny_config, DOCUMENTS / "usart_overview.rst", firmware)
    run_stages(cfg, ["map"])
    for mapping in _sections(cfg, "usart_overview.rst"):
        folders = [f for f, _ in mapping.folders]
        assert not any(a != b and b.startswith(a.rstrip("/") + "/") for a in folders for b in folders)
        assert all(f.split("/")[:-1] and "/".join(f.split("/")[:-1]) in folders for f, _ in mapping.files)


def test_training_rendering_pairs_section_text_with_code(tiny_config, firmware):
    cfg = _config(tiny_config, DOCUMENTS, firmware)
    run_stages(cfg, ["map"])
    rows = pq.read_table(Path(cfg.run_dir) / "map" / "documents.parquet").to_pylist()
    assert rows and all(r["status"] != "not_applicable" for r in rows)
    row = next(r for r in rows if r["section"] == "USART1")
    lines = row["text"].splitlines()
    assert lines[0] == RULE and len(RULE) == 82 and RULE in lines[1:]
    files = [ln for ln in lines if ln.startswith("// File: ")]
    assert files and all(ln.removeprefix("// File: ").split("/", 1)[1] in row["files"] for ln in files)
    assert "USART_CR1_UE" in row["text"].split(RULE)[-1]  # the code part holds the mapped macro


def test_unreadable_documents_are_skipped_with_their_reason(tiny_config, firmware):
    cfg = _config(tiny_config, DOCUMENTS, firmware)
    [result] = run_stages(cfg, ["map"])
    reasons = {Path(s["document"]).name: s["reason"] for s in result.summary["skipped"]}
    assert set(reasons) == {"broken_peripheral.svd", "not_a_binding.yaml"}
    assert all(name in reason for name, reason in reasons.items())


def test_compatible_strings_stay_out_of_the_query(tiny_config, firmware):
    cfg = _config(tiny_config, DOCUMENTS / "st,stm32-uart.yaml", firmware)
    run_stages(cfg, ["map"])
    [binding] = _sections(cfg, "st,stm32-uart.yaml")
    assert not any("stm32-uart" in t or "st," in t for t in binding.key_terms)


def test_repository_errors_are_clear(tiny_config, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="empty"):
        run_stages(_config(tiny_config, DOCUMENTS / "usart_overview.rst", empty), ["map"])
    docs_only = tmp_path / "docs_only"
    docs_only.mkdir()
    (docs_only / "README.md").write_text("# Nothing to parse\n")
    with pytest.raises(StageError, match="docs_only.*no C"):
        run_stages(_config(tiny_config, DOCUMENTS / "usart_overview.rst", docs_only), ["map"])
    with pytest.raises(ConfigError, match="neither a corpus source"):
        run_stages(_config(tiny_config, DOCUMENTS / "usart_overview.rst", "no-such-source"), ["map"])


def test_unchanged_inputs_skip_and_a_changed_document_reruns(tiny_config, firmware, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# USART\n\nThe USART_CR1 register holds the UE bit that enables the USART.\n")
    cfg = _config(tiny_config, doc, firmware)
    assert not run_stages(cfg, ["map"])[0].skipped
    assert run_stages(cfg, ["map"])[0].skipped
    doc.write_text(doc.read_text() + "\n## Baud rate\n\nUSART_BRR sets the baud rate divider.\n")
    assert not run_stages(cfg, ["map"])[0].skipped


def test_a_vocabulary_file_reaches_the_queries_and_reruns_the_stage(tiny_config, firmware, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Falcon\n\nFalcon.\n")
    vocabulary = tmp_path / "ours.yaml"
    vocabulary.write_text("groups:\n  - [nothing, here]\n")
    cfg = _config(tiny_config, doc, firmware, f"map.vocabulary=['{vocabulary}']")
    run_stages(cfg, ["map"])
    assert not _sections(cfg, "doc.md")[0].files  # "falcon" is nowhere in the tree
    vocabulary.write_text("groups:\n  - [falcon, usart]\n")  # our code name for the USART
    assert not run_stages(cfg, ["map"])[0].skipped
    assert _sections(cfg, "doc.md")[0].files[0][0].startswith("drivers/serial/stm32_usart")


def test_cli_map_with_ground_truth_compares_with_flat_bm25(tmp_path, firmware):
    import os
    import subprocess
    import sys

    truth = tmp_path / "truth.json"
    serial = ["drivers/serial/stm32_usart.c", "drivers/serial/stm32_usart.h"]
    truth.write_text(json.dumps({"documents": [{"document": str(DOCUMENTS / "stm32f4_mini.svd"), "sections": {
        "USART1": {"files": serial, "symbols": ["USART_CR1_UE"]},
        "USART2": {"files": serial, "symbols": ["USART2_BASE"]}}}]}))
    config = Path(__file__).parents[1] / "fixtures" / "tiny.yaml"
    env = {**os.environ, "FIRMLM_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "firmlm", "map", "-c", str(config), "--set", f"run_dir={tmp_path / 'run'}",
            "--set", f"map.documents=[{{path: '{DOCUMENTS / 'stm32f4_mini.svd'}', repository: '{firmware}'}}]",
            "--eval", str(truth)]
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "run" / "map" / "eval.json").read_text())
    for method in ("hierarchical", "flat_bm25"):
        assert result[method]["sections"] == 2 and not result[method]["missed"]
        assert 0 < result[method]["macro"]["accuracy"] <= 1
    assert result["hierarchical"]["macro"]["accuracy"] == 1.0  # both USART files found for both sections
    assert "flat" in done.stdout.lower() and "hierarchical" in done.stdout.lower()


def test_fusion_scorer_runs_through_the_stage(tiny_config, firmware):
    cfg = _config(tiny_config, DOCUMENTS / "stm32f4_mini.svd", firmware, "map.scorer=fusion")
    run_stages(cfg, ["map"])
    assert _mapping(cfg)["scorer"] == "fusion"
    usart = next(m for m in _sections(cfg, "stm32f4_mini.svd") if m.title == "USART1")
    assert usart.files and usart.files[0][0].startswith("drivers/serial/")


def test_documents_from_a_debian_package(tiny_config, firmware):
    """Fetches the micro:bit MicroPython source package (~12 MB) from the machine's Debian archive and maps its
    UART page to the fixture tree."""
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.models.references import cache_dir

    if not AptSourceFetcher(cache_dir()).archives:
        pytest.skip("no apt archives configured on this machine")
    entry = {"package": "firmware-microbit-micropython", "include": ["docs/uart.rst"], "repository": str(firmware)}
    cfg = tiny_config("map.enabled=true", f"map.documents={json.dumps([entry])}")
    [result] = run_stages(cfg, ["map"])
    [doc] = _mapping(cfg)["documents"]
    assert doc["document"].endswith("/docs/uart.rst") and Path(doc["document"]).is_file()
    assert any(f.startswith("drivers/serial/") for s in doc["sections"] for f, _ in s["files"])
    assert result.summary["sections"] == len(doc["sections"]) >= 2


def test_a_documents_entry_needs_one_origin(tiny_config, firmware):
    with pytest.raises(ConfigError, match="either `path`.*or `package`"):
        tiny_config(f"map.documents=[{{repository: '{firmware}'}}]")
    with pytest.raises(ConfigError, match="either `path`.*or `package`"):
        tiny_config(f"map.documents=[{{path: '{DOCUMENTS}', package: lwip, repository: '{firmware}'}}]")
