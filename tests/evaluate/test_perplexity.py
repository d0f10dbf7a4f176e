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


def test_split_point_is_a_line_boundary_near_75_percent():
    from firmlm.evaluate.perplexity import split_point

    text = "".join(f"line {i:02d}\n" for i in range(20))  # 8 chars per line
    cut = split_point(text)
    assert text[cut - 1] == "\n" and abs(cut - 0.75 * len(text)) <= 8
    assert split_point("no newline at all") == int(0.75 * len("no newline at all"))


def test_teacher_forced_completion_counts_match_a_manual_check():
    model, tok = models.load("tiny:llama")
    text = "int a = 1;\nint b = 2;\nint c = 3;\nint d = 4;\n"
    (score,) = score_texts(model, tok, [text], batch_size=1, bf16=False)
    from firmlm.evaluate.perplexity import split_point

    cut = split_point(text)
    suffix_ids = tok(text[cut:], add_special_tokens=False)["input_ids"]
    assert score.suffix_tokens == len(suffix_ids)  # byte-level: suffix tokens are exactly its bytes
    ids = torch.tensor([[tok.eos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
    start = ids.shape[1] - 1 - len(suffix_ids)
    preds = logits[start:].topk(5, dim=-1).indices
    target = ids[0, start + 1:]
    assert score.top1 == int((preds[:, 0] == target).sum())
    assert score.top5 == int((preds == target[:, None]).any(-1).sum())
    assert 0 <= score.top1 <= score.top5 <= score.suffix_tokens


def test_samples_longer_than_the_context_are_cut_and_flagged():
    model, tok = models.load("tiny:llama")
    text = "uint32_t reg = 0x40021000;\n" * 20
    full = score_texts(model, tok, [text], batch_size=1, bf16=False)
    cut = score_texts(model, tok, [text], batch_size=1, bf16=False, max_tokens=33)[0]
    assert not full[0].truncated and cut.truncated
    assert cut.tokens == 32 and cut.bytes < len(text) and cut.suffix_tokens > 0
    samples = [Sample("0", "heldout", "a", "r", "p", text)]
    assert aggregate(samples, [cut])["heldout"]["overall"]["truncated_docs"] == 1


def test_a_token_budget_batches_like_a_fixed_batch_and_halves_on_out_of_memory():
    from firmlm.evaluate.perplexity import gpu_token_budget

    model, tok = models.load("tiny:llama")
    texts = ["int main(void) { return 0; }", "#define X 1", "void f(void);\n" * 5, "x", "uint8_t buf[64];"]
    fixed = score_texts(model, tok, texts, batch_size=2, bf16=False)
    assert gpu_token_budget(model) is None  # on the CPU, eval.batch_size applies
    widths = []

    def forward(input_ids, attention_mask):  # a GPU that holds at most 2 documents of any width
        widths.append(tuple(input_ids.shape))
        if input_ids.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return model(input_ids=input_ids, attention_mask=attention_mask)

    class Fake(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.config = model, model.config

        def forward(self, input_ids, attention_mask):
            return forward(input_ids, attention_mask)

    budgeted = score_texts(Fake(), tok, texts, batch_size=1, bf16=False, max_batch_tokens=10_000)
    assert [s.nll for s in budgeted] == pytest.approx([s.nll for s in fixed], rel=1e-4)
    assert [s.top1 for s in budgeted] == [s.top1 for s in fixed]
    assert widths[0][0] == len(texts)  # the whole budget first, then halved after each out-of-memory
    assert all(after[0] <= failed[0] // 2 for failed, after in zip(widths, widths[1:]) if failed[0] > 2)
    assert sum(n for n, _ in widths if n <= 2) == len(texts)  # every document scored exactly once


def test_the_gpu_token_budget_grows_with_free_memory_and_shrinks_with_the_vocabulary():
    from transformers import LlamaConfig

    from firmlm.evaluate.perplexity import tokens_for_memory

    small = LlamaConfig(vocab_size=32_000, hidden_size=4096, intermediate_size=11008)
    large = LlamaConfig(vocab_size=152_000, hidden_size=4096, intermediate_size=11008)
    assert tokens_for_memory(small, 64 * 2**30, 2) == 2 * tokens_for_memory(small, 32 * 2**30, 2)
    assert tokens_for_memory(large, 64 * 2**30, 2) < tokens_for_memory(small, 64 * 2**30, 2)
    assert 10_000 < tokens_for_memory(small, 64 * 2**30, 2) < 1_000_000  # a 7B model on a free 64 GiB
    assert tokens_for_memory(small, 1, 2) == 1
