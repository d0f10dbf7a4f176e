from __future__ import annotations

import json
import shutil

import pytest

from firmlm.errors import ConfigError
from firmlm.specmap.evaluation import evaluate_mapping, flat_bm25_baseline, load_ground_truth, render_comparison
from firmlm.specmap.groundtruth import match_sections
from firmlm.specmap.mapping import SectionMapping, SymbolHit
from firmlm.specmap.metrics import (average_precision, bootstrap_mean_interval, existing, precision_recall_f1,
                                    recall_at_k, share_found)
from firmlm.specmap.repository import RepositoryIndex
from firmlm.specmap.sections import Section

requires_ctags = pytest.mark.skipif(shutil.which("ctags") is None, reason="universal-ctags is not installed")

DOC = "docs/usart.md"


def mapping(title, files, ranked, symbols, path=None, tokens=0, seconds=0.0, document=DOC):
    return SectionMapping(document=document, title=title, path=path or [title], span=[1, 2], span_unit="line",
                          files=[(f, 1.0) for f in files], ranked_files=[(f, 1.0) for f in ranked],
                          symbols=[SymbolHit(s, "function", files[0], 1, None, 1.0) for s in symbols],
                          tokens_used=tokens, seconds=seconds)


def write_truth(tmp_path, data, name="truth.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def scenario(tmp_path):
    """Three ground-truth sections: a plain one, one split into two parts, one with no mapping."""
    mappings = [
        mapping("USART overview", ["a.c", "b.h", "x.c"], ["a.c", "x.c", "b.h", "c.c"], ["init", "putc", "foo"],
                tokens=100, seconds=0.5),
        mapping("Baud rate (part 1/2)", ["d.c"], ["d.c", "e.c"], ["baud"], path=["Baud rate"], tokens=50,
                seconds=0.25),
        mapping("Baud rate (part 2/2)", ["e.c"], ["e.c", "f.c"], ["brr"], path=["Baud rate"]),
        mapping("Elsewhere", ["a.c"], ["a.c"], [], document="docs/other.md", tokens=1000, seconds=9.0),
    ]
    truth = load_ground_truth(write_truth(tmp_path, {"documents": [{"document": "./docs/usart.md", "sections": {
        "USART overview": {"files": ["a.c", "b.h", "./c.c"], "symbols": ["init", "putc"]},
        "Baud rate": {"files": ["d.c", "e.c"], "symbols": ["baud", "brr", "clk"]},
        "Interrupts": {"files": ["g.c"], "symbols": ["irq"]},
    }}]}))
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("a.c", "b.h", "d.c", "e.c"):  # x.c (chosen) does not exist
        (root / name).write_text("int x;\n")
    return mappings, truth, root


def test_figures_computed_by_hand(scenario):
    mappings, truth, root = scenario
    result = evaluate_mapping(mappings, truth, roots={DOC: root})
    overview, baud, missed = result["per_section"]
    assert overview["matched"] == ["USART overview"]
    assert overview["accuracy"] == pytest.approx(2 / 3)
    assert (overview["file_precision"], overview["file_recall"], overview["file_f1"]) == pytest.approx((2 / 3,) * 3)
    assert (overview["symbol_precision"], overview["symbol_recall"], overview["symbol_f1"]) == \
        pytest.approx((2 / 3, 1.0, 0.8))
    # ranking a.c, x.c, b.h, c.c against {a.c, b.h, c.c}
    assert [overview[f"recall@{k}"] for k in (1, 3, 5, 10)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert overview["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert overview["existence_rate"] == pytest.approx(2 / 3)

    # the two parts pool: files {d.c, e.c}, symbols {baud, brr}; rankings fused to e.c, d.c, f.c
    assert baud["matched"] == ["Baud rate (part 1/2)", "Baud rate (part 2/2)"]
    assert baud["files"] == ["d.c", "e.c"]
    assert (baud["accuracy"], baud["file_precision"], baud["file_recall"], baud["file_f1"]) == (1.0, 1.0, 1.0, 1.0)
    assert (baud["symbol_precision"], baud["symbol_recall"], baud["symbol_f1"]) == pytest.approx((1.0, 2 / 3, 0.8))
    assert (baud["recall@1"], baud["recall@3"], baud["average_precision"]) == pytest.approx((0.5, 1.0, 1.0))

    assert missed["matched"] == [] and missed["existence_rate"] is None
    assert all(missed[k] == 0.0 for k in ("accuracy", "file_f1", "symbol_recall", "recall@10", "average_precision"))
    assert result["missed"] == [{"document": "./docs/usart.md", "title": "Interrupts"}]

    macro = result["macro"]
    assert macro["accuracy"] == pytest.approx(5 / 9)
    assert (macro["file_precision"], macro["file_recall"], macro["file_f1"]) == pytest.approx((5 / 9,) * 3)
    assert (macro["symbol_precision"], macro["symbol_recall"], macro["symbol_f1"]) == \
        pytest.approx((5 / 9, 5 / 9, 8 / 15))
    assert (macro["recall@1"], macro["recall@3"], macro["recall@5"]) == pytest.approx((5 / 18, 5 / 9, 2 / 3))
    assert macro["map"] == pytest.approx(65 / 108)
    micro = result["micro"]  # 4 hits of 5 chosen and 6 true, for files and for symbols
    assert (micro["file_precision"], micro["file_recall"], micro["file_f1"]) == pytest.approx((0.8, 2 / 3, 8 / 11))
    assert micro["symbol_f1"] == pytest.approx(8 / 11)
    # every chosen file of the document (a, b, x, d, e) against the root; the other document is not counted
    assert result["existence_rate"] == pytest.approx(0.8) and result["chosen_files"] == 5
    assert (result["tokens_used"], result["seconds"]) == (150, 0.75)
    assert result["sections"] == 3 and result["missed_documents"] == []
    lo, hi = result["intervals"]["accuracy"]
    assert 0.0 <= lo <= macro["accuracy"] <= hi <= 1.0
    assert result["intervals"] == evaluate_mapping(mappings, truth, roots={DOC: root})["intervals"]  # seeded
    json.dumps(result)


def test_missing_document_and_no_root(tmp_path):
    truth = load_ground_truth(write_truth(tmp_path, {"documents": [
        {"document": "gone.md", "sections": {"A": {"files": [], "symbols": ["x"]}}}]}))
    result = evaluate_mapping([mapping("A", ["a.c"], ["a.c"], ["x"])], truth)
    assert result["missed_documents"] == ["gone.md"] and result["existence_rate"] is None
    assert result["per_section"][0]["accuracy"] is None and result["macro"]["accuracy"] is None
    assert result["macro"]["symbol_f1"] == 0.0 and result["intervals"]["accuracy"] is None


def test_title_matching_rules():
    mappings = [mapping("Status register", ["a.c"], [], [], path=["USART", "Registers", "USART_SR"]),
                mapping("Bit 13  UE (part 1/3)", ["b.c"], [], []),
                mapping("Word length + Parity", ["c.c"], [], [], path=["USART", "Word length + Parity"]),
                mapping("Registers", ["d.c"], [], [], path=["USART", "Registers"])]
    titles = lambda title: [m.title for m in match_sections(mappings, title)]  # noqa: E731
    assert titles("USART_SR") == ["Status register"]  # last element of the path
    assert titles("status REGISTER") == ["Status register"]  # case and white space ignored
    assert titles("Bit 13 UE") == ["Bit 13  UE (part 1/3)"]  # chunking suffix
    assert titles("Bit 13 UE (part 1/3)") == ["Bit 13  UE (part 1/3)"]
    assert titles("Parity") == ["Word length + Parity"]  # merged siblings
    assert titles("Registers") == ["Registers"] and titles("USART") == []


def test_metric_conventions(tmp_path):
    assert precision_recall_f1([], []) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert precision_recall_f1(["a"], []) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert precision_recall_f1([], ["a"]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert share_found(["a"], []) is None and recall_at_k(["a"], [], 1) is None
    assert average_precision(["x", "a", "a", "b"], ["a", "b"]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert average_precision([], ["a"]) == 0.0
    (tmp_path / "in.c").write_text("")
    (tmp_path / "dir").mkdir()
    (tmp_path.parent / "outside.c").write_text("")
    assert existing(["in.c", "./in.c", "dir", "../outside.c", "/etc/passwd", "nope.c"], tmp_path) == \
        [True, True, False, False, False, False]
    assert bootstrap_mean_interval([1.0, None, 0.0]) is None
    assert bootstrap_mean_interval([0.5] * 4) == [0.5, 0.5]


@pytest.mark.parametrize("data, expected", [
    ("{not json", "not valid JSON (line 1"),
    ([], "expected a JSON object"),
    ({}, "missing 'documents'"),
    ({"documents": [], "notes": 1}, "unknown 'notes'"),
    ({"documents": {}}, "documents: expected a list of documents, got an object"),
    ({"documents": ["a.md"]}, "documents[0]: expected an object"),
    ({"documents": [{"document": "a.md"}]},
     "documents[0]: expected the keys 'document', 'sections'; missing 'sections'"),
    ({"documents": [{"document": 3, "sections": {}}]}, "documents[0].document: expected the datasheet's path"),
    ({"documents": [{"document": "a.md", "sections": []}]}, "documents[0].sections: expected an object"),
    ({"documents": [{"document": "a.md", "sections": {"USART": []}}]}, 'documents[0].sections["USART"]: expected'),
    ({"documents": [{"document": "a.md", "sections": {"USART": {"files": []}}}]},
     'documents[0].sections["USART"]: expected the keys \'files\', \'symbols\'; missing \'symbols\''),
    ({"documents": [{"document": "a.md", "sections": {"USART": {"files": "a.c", "symbols": []}}}]},
     'documents[0].sections["USART"].files: expected a list of strings, got a string'),
    ({"documents": [{"document": "a.md", "sections": {"USART": {"files": ["a.c", 3], "symbols": []}}}]},
     'documents[0].sections["USART"].files[1]: expected a non-empty string, got a number'),
    ({"documents": [{"document": "a.md", "sections": {"USART": {"files": ["../a.c"], "symbols": []}}}]},
     'documents[0].sections["USART"].files[0]: expected a path relative to the repository root'),
    ({"documents": [{"document": "a.md", "sections": {"USART": {"files": [], "symbols": [None]}}}]},
     'documents[0].sections["USART"].symbols[0]: expected a non-empty string, got null'),
    ({"documents": [{"document": "a.md", "sections": {"USART": {"files": [], "symbols": []},
                                                      "usart ": {"files": [], "symbols": []}}}]},
     'documents[0].sections["usart "]: the same title as "USART"'),
    ({"documents": [{"document": "a.md", "sections": {}}, {"document": "./a.md", "sections": {}}]},
     "documents[1].document: './a.md' is already documents[0]"),
])
def test_malformed_ground_truth(tmp_path, data, expected):
    path = write_truth(tmp_path, data, "gt.json")
    with pytest.raises(ConfigError) as info:
        load_ground_truth(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


def test_ground_truth_not_found(tmp_path):
    with pytest.raises(ConfigError, match="gone.json: ground-truth file not found"):
        load_ground_truth(tmp_path / "gone.json")


@requires_ctags
def test_flat_bm25_baseline_on_fixture_firmware(firmware, tmp_path):
    index = RepositoryIndex.build(firmware, tmp_path / "cache")
    usart = Section(document=DOC, title="Control register 1 (USART_CR1)", path=("USART", "USART registers"),
                    text="Bit 13 UE: USART enable. Bit 3 TE: transmitter enable. Bit 2 RE: receiver enable. "
                         "The baud rate is programmed in the USART_BRR register.", span=(10, 20))
    i2c = Section(document=DOC, title="I2C control register 1 (I2C_CR1)", path=("I2C",),
                  text="Bit 8 START: start generation. Bit 0 PE: peripheral enable.", span=(21, 30))
    result = flat_bm25_baseline([usart, i2c], index, k=2, symbols_k=4)
    first, second = result
    assert [f for f, _ in first.files] == ["drivers/serial/stm32_usart.c", "drivers/serial/stm32_usart.h"]
    assert first.ranked_files[:2] == first.files and len(first.ranked_files) <= 20
    assert [s for _, s in first.ranked_files] == sorted((s for _, s in first.ranked_files), reverse=True)
    assert 0 < len(first.symbols) <= 4 and "USART_CR1_UE" in {s.name for s in first.symbols}
    assert all(s.path.startswith("drivers/serial/") for s in first.symbols)
    assert first.status == "not_implemented" and first.tokens_used == 0 and first.seconds >= 0
    assert first.title == usart.title and first.path == list(usart.path) and first.folders == []
    assert second.files[0][0].startswith("drivers/i2c/")

    truth = load_ground_truth(write_truth(tmp_path, {"documents": [{"document": DOC, "sections": {
        "control register 1 (USART_CR1)": {"files": ["drivers/serial/stm32_usart.c", "drivers/serial/stm32_usart.h"],
                      "symbols": ["USART_CR1_UE", "stm32_usart_init"]}}}]}))
    flat = evaluate_mapping(result, truth, roots={DOC: firmware})
    assert flat["per_section"][0]["matched"] == [usart.title]
    assert flat["macro"]["accuracy"] == 1.0 and flat["existence_rate"] == 1.0
    hier = evaluate_mapping([], truth, roots={DOC: firmware})
    table = render_comparison(hier, flat)
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["Metric", "Hierarchical", "Flat BM25"]
    assert set(lines[1]) <= {"|", "-"} and len({len(line) for line in lines}) == 1
    row = next(line for line in lines if line.startswith("| File mapping accuracy"))
    assert [c.strip() for c in row.strip("|").split("|")] == ["File mapping accuracy", "0.000", "1.000"]
    assert any(line.startswith("| Recall@3 (ranked files)") for line in lines)
    assert any(line.startswith("| Sections (missed)") and "1 (1)" in line for line in lines)
    assert any(line.startswith("| File F1 (micro)") for line in lines)
