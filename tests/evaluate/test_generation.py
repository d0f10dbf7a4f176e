import pytest

from firmlm.evaluate.generation import aggregate_generation, code_tokens, edit_distance, score_generation


def test_code_tokens_and_edit_distance():
    assert code_tokens("GPIOA->BSRR = 1u << 5;") == ["GPIOA", "-", ">", "BSRR", "=", "1u", "<", "<", "5", ";"]
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance([], ["a"]) == 1


def test_perfect_partial_and_empty_generations():
    ref = "    USART2->CR1 |= USART_CR1_UE;\n    return 0;\n}\n"
    perfect = score_generation(ref + "\nint next(void);", ref)
    assert perfect.token_accuracy == 1.0 and perfect.exact_match and perfect.bleu4 == pytest.approx(100.0)
    assert perfect.edit_distance == 0.0
    partial = score_generation("    USART2->CR1 |= 0;\n", ref)
    assert 0 < partial.token_accuracy < 1 and not partial.exact_match and 0 < partial.edit_distance < 1
    empty = score_generation("", ref)
    assert empty.empty and empty.token_accuracy == 0.0 and empty.edit_distance == 1.0


def test_aggregates_are_labelled_weighted_and_unweighted():
    refs = ["a b c d e f g h i j", "x y"]
    gens = ["a b c d e f g h i j", ""]
    scores = [score_generation(g, r) for g, r in zip(gens, refs)]
    agg = aggregate_generation(scores, gens, refs)
    assert agg["weighted"]["token_accuracy"] == pytest.approx(10 / 12, rel=1e-4)
    assert agg["unweighted"]["token_accuracy"] == pytest.approx(0.5)
    assert agg["empty_generations"] == 1 and agg["unweighted"]["exact_match"] == 0.5
