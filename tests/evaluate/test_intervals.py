"""Paired bootstrap intervals on synthetic scores with a known true reduction."""

import math

import numpy as np

from firmlm.evaluate.intervals import compare, weighted_mean_interval
from firmlm.evaluate.perplexity import DocScore
from firmlm.evaluate.samples import Sample


def synthetic(files_per_category: int, true_reduction: dict[str, float], seed: int = 0):
    """Per file, the reference's mean NLL varies a lot between files; the target's is the reference's
    shifted so that its perplexity is lower by ``true_reduction`` (plus a little per-file noise)."""
    rng = np.random.default_rng(seed)
    samples, ref, tgt = [], [], []
    for cat, red in true_reduction.items():
        shift = math.log(1 - red / 100)
        for f in range(files_per_category):
            tokens = 512
            mean_r = rng.uniform(0.8, 2.2)
            mean_t = mean_r + shift + rng.normal(0, 0.02)
            samples.append(Sample(f"{cat}/{f}@0", "heldout", cat, "repo", f"{cat}/{f}.c", "x" * 1000, ""))
            ref.append(DocScore(nll=mean_r * tokens, tokens=tokens, bytes=1000, suffix_tokens=128, top1=60))
            tgt.append(DocScore(nll=mean_t * tokens, tokens=tokens, bytes=1000, suffix_tokens=128, top1=64))
    return samples, ref, tgt


def test_interval_contains_the_true_reduction_and_shrinks_with_more_files():
    widths = []
    for n in (8, 32, 128):
        comparison, _ = compare(*synthetic(n, {"usb_stack": 12.0}), "perplexity", [], replicates=1000, seed=1)
        fig = comparison["heldout"]["per_category"]["usb_stack"]
        lo, hi = fig["ci95"]
        assert lo <= 12.0 <= hi, (n, fig)
        assert fig["files"] == n and fig["tokens"] == 512 * n and fig["improved"]
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] > 1.5 * widths[2]


def test_no_change_is_not_counted_as_improved():
    comparison, _ = compare(*synthetic(16, {"usb_stack": 0.0, "crypto": 10.0}), "perplexity", [], replicates=500)
    assert not comparison["heldout"]["per_category"]["usb_stack"]["improved"]
    assert comparison["heldout"]["per_category"]["crypto"]["improved"]
    assert comparison["heldout"]["categories_improved"] == 1 and comparison["heldout"]["categories"] == 2


def test_control_margin_and_top1_delta():
    data = synthetic(40, {"usb_stack": 20.0, "stm32_hal": 20.0, "crypto": 10.0})
    comparison, margins = compare(*data, "perplexity", ["crypto"], replicates=1000, seed=2)
    m = margins["heldout"]
    assert m["control_categories"] == ["crypto"] and m["embedded_files"] == 80 and m["control_files"] == 40
    assert abs(m["embedded_reduction_pct"] - 20.0) < 1.0 and abs(m["control_reduction_pct"] - 10.0) < 1.0
    assert m["ci95"][0] <= m["margin_pts"] <= m["ci95"][1] and m["ci95"][0] > 5.0
    top1 = comparison["heldout"]["overall"]
    assert abs(top1["top1_delta_pts"] - 100 * (64 - 60) / 128) < 1e-6


def test_bits_per_byte_reduction_when_tokenizers_differ():
    samples, ref, tgt = synthetic(8, {"usb_stack": 12.0})
    # the target tokenizes into twice as many tokens: perplexities are not comparable, bytes are
    tgt = [DocScore(nll=t.nll, tokens=2 * t.tokens, bytes=t.bytes, suffix_tokens=128, top1=64) for t in tgt]
    by_ppl, _ = compare(samples, ref, tgt, "perplexity", [], replicates=200)
    by_bpb, _ = compare(samples, ref, tgt, "bpb", [], replicates=200)
    true_bpb = 100 * (1 - sum(t.nll for t in tgt) / sum(r.nll for r in ref))
    assert abs(by_bpb["heldout"]["overall"]["reduction_pct"] - true_bpb) < 1e-3
    assert by_ppl["heldout"]["overall"]["reduction_pct"] > by_bpb["heldout"]["overall"]["reduction_pct"] + 20


def test_weighted_mean_interval():
    assert weighted_mean_interval([0.5], [10]) is None
    lo, hi = weighted_mean_interval([0.2, 0.4, 0.6, 0.8] * 5, [10, 20, 30, 40] * 5)
    assert lo < 0.6 < hi


def test_too_few_files_give_no_interval_and_no_improvement():
    comparison, margins = compare(*synthetic(2, {"usb_stack": 30.0, "crypto": 1.0}), "perplexity", ["crypto"],
                                  replicates=200)
    fig = comparison["heldout"]["per_category"]["usb_stack"]
    assert fig["ci95"] is None and not fig["improved"] and fig["reduction_pct"] > 25
    assert comparison["heldout"]["overall"]["ci95"] is not None  # 4 files together
    assert margins["heldout"]["ci95"] is None
