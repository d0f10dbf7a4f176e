from __future__ import annotations

import shutil

import pytest

from firmlm.specmap.identifiers import analyze
from firmlm.specmap.repository import RepositoryIndex
from firmlm.specmap.scorers import BM25Scorer, Candidate, Scorer, reciprocal_rank_fusion

requires_ctags = pytest.mark.skipif(shutil.which("ctags") is None, reason="universal-ctags is not installed")

PERIPHERALS = [
    Candidate("usart", "USART driver: USART_CR1_UE enable bit, USART_SR_TXE, baud rate register USART_BRR"),
    Candidate("i2c", "I2C master: I2C_CR1_START, I2C_SR1_SB start bit, 7-bit address, I2C_CR1_PE enable"),
    Candidate("gpio", "GPIO port mode register GPIOx_MODER, output data register GPIOx_ODR"),
    Candidate("empty", ""),
]


def test_bm25_is_a_scorer():
    assert isinstance(BM25Scorer(), Scorer)


def test_bm25_ranks_by_shared_tokens():
    ranked = BM25Scorer().rank("USART control register 1 (USART_CR1): bit 13 UE USART enable", PERIPHERALS, k=3)
    assert ranked[0][0] == "usart"
    assert all(score > 0 for _, score in ranked) and "empty" not in dict(ranked)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_bm25_k_and_no_overlap():
    scorer = BM25Scorer()
    assert len(scorer.rank("enable bit register", PERIPHERALS, k=1)) == 1
    assert scorer.rank("ethernet MAC descriptor", PERIPHERALS, k=5) == []
    assert scorer.rank("", PERIPHERALS, k=5) == []
    assert scorer.rank("USART", [], k=5) == []
    assert scorer.rank("USART", [Candidate("a", ""), Candidate("b", "the of")], k=5) == []


def test_bm25_ties_keep_candidate_order():
    same = [Candidate("b", "USART enable"), Candidate("a", "USART enable")]
    assert [cid for cid, _ in BM25Scorer().rank("USART", same, k=2)] == ["b", "a"]


def test_bm25_indexes_a_candidate_set_once():
    calls = []

    def counting(text):
        calls.append(text)
        return analyze(text)

    scorer = BM25Scorer(analyzer=counting, query_analyzer=counting)
    for query in ("USART enable", "I2C start", "GPIO output"):
        scorer.rank(query, PERIPHERALS, k=2)
    assert len(calls) == len(PERIPHERALS) + 3
    scorer.rank("USART", PERIPHERALS[:2], k=2)  # another set: indexed on its own
    assert len(calls) == len(PERIPHERALS) + 3 + 2 + 1


def test_bm25_cache_is_bounded():
    scorer = BM25Scorer(cache_size=2)
    for n in range(4):
        scorer.rank("USART", PERIPHERALS[: n + 1], k=1)
    assert len(scorer._indexes) == 2


def test_bm25_rejects_duplicate_ids():
    with pytest.raises(ValueError, match="repeated: x"):
        BM25Scorer().rank("USART", [Candidate("x", "USART"), Candidate("x", "I2C")], k=2)


@requires_ctags
def test_bm25_finds_the_usart_driver_in_the_fixture_repository(firmware, tmp_path):
    index = RepositoryIndex.build(firmware, tmp_path / "cache")
    scorer = BM25Scorer()
    query = "USART control register 1 UE bit enable"
    assert scorer.rank(query, index.folder_candidates(), k=3)[0][0] == "drivers/serial"
    top_file = scorer.rank(query, index.file_candidates(), k=3)[0][0]
    assert top_file in {"drivers/serial/stm32_usart.c", "drivers/serial/stm32_usart.h"}
    top_symbol = scorer.rank("USART_CR1.UE: USART enable", index.symbol_candidates(), k=3)[0][0]
    assert top_symbol.endswith(":USART_CR1_UE") and top_symbol.startswith("drivers/serial/stm32_usart.h:")
    i2c = scorer.rank("I2C start condition and address flag", index.folder_candidates(), k=3)
    assert i2c[0][0] == "drivers/i2c"


def test_reciprocal_rank_fusion():
    lexical = [("a", 9.0), ("b", 5.0), ("c", 1.0)]
    dense = ["b", "c", "d"]
    fused = reciprocal_rank_fusion([lexical, dense], k=60)
    assert [cid for cid, _ in fused] == ["b", "c", "a", "d"]  # agreement beats one first place
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert dict(fused)["d"] == pytest.approx(1 / 63)


def test_reciprocal_rank_fusion_weights_ties_and_repeats():
    assert [c for c, _ in reciprocal_rank_fusion([["a"], ["b"]])] == ["a", "b"]  # tie: first seen first
    assert [c for c, _ in reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0, 2.0])] == ["b", "a"]
    assert dict(reciprocal_rank_fusion([["a", "a"]], k=0))["a"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 1.0])
    assert reciprocal_rank_fusion([]) == []
