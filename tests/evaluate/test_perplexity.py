import math

import pytest
import torch

from firmlm import models
from firmlm.evaluate.perplexity import DocScore, aggregate, score_texts
from firmlm.evaluate.samples import Sample


def test_scores_match_a_manual_loss_and_batching_does_not_change_them():
    model, tok = models.load("tiny:llama")
    texts = ["int main(void) { return 0; }", "#define X 1", "void f(void);\n" * 5]
    batched = score_texts(model, tok, texts, batch_size=3, bf16=False)
    single = score_texts(model, tok, texts, batch_size=1, bf16=False)
    for b, s, t in zip(batched, single, texts):
        assert b.tokens == s.tokens and b.bytes == len(t.encode())
        assert b.nll == pytest.approx(s.nll, rel=1e-4)
    ids = torch.tensor([[tok.eos_token_id, *tok(texts[1], add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert batched[1].nll == pytest.approx(loss * (ids.shape[1] - 1), rel=1e-4)


def test_aggregate_is_token_weighted():
    samples = [Sample(str(i), "heldout", c, "r", "p", "t") for i, c in enumerate(["a", "a", "b"])]
    scores = [DocScore(10.0, 10, 20), DocScore(30.0, 10, 20), DocScore(1.0, 100, 200)]
    out = aggregate(samples, scores)["heldout"]
    assert out["per_category"]["a"]["ppl"] == pytest.approx(math.exp(2.0), rel=1e-4)
    assert out["overall"]["ppl"] == pytest.approx(math.exp(41 / 120), rel=1e-4)
    assert out["overall"]["bpb"] == pytest.approx(41 / math.log(2) / 240, rel=1e-3)
    assert out["unweighted_mean_ppl"] == pytest.approx((math.exp(2.0) + math.exp(0.01)) / 2, rel=1e-3)
