from firmlm.evaluate.compare import checkpoint_series, reductions, winners


def _ppl(overall: float, **cats: float) -> dict:
    return {"heldout": {"overall": {"ppl": overall, "completion": {"top1": 1 / overall}},
                        "per_category": {c: {"ppl": v, "completion": {"top1": 1 / v}} for c, v in cats.items()}}}


def test_winners_pick_the_lowest_perplexity_and_highest_accuracy_per_category():
    models = {
        "base": {"step": 0, "perplexity": _ppl(5.0, usb=6.0, dts=4.0)},
        "step-2": {"step": 2, "perplexity": _ppl(4.5, usb=5.0, dts=4.1)},
        "final": {"step": 4, "perplexity": _ppl(4.4, usb=5.5, dts=3.9),
                  "generation": {"heldout": {"overall": {"weighted": {"token_accuracy": 0.3, "bleu4_corpus": 20.0}},
                                             "per_category": {"usb": {"weighted": {"token_accuracy": 0.3, "bleu4_corpus": 20.0}}}}}},
        "api:other": {"step": None, "generation": {"heldout": {
            "overall": {"weighted": {"token_accuracy": 0.5, "bleu4_corpus": 10.0}},
            "per_category": {"usb": {"weighted": {"token_accuracy": 0.5, "bleu4_corpus": 10.0}}}}}},
    }
    win = winners(models)
    assert win["perplexity"]["heldout"]["usb"] == {"model": "step-2", "value": 5.0}
    assert win["perplexity"]["heldout"]["dts"]["model"] == "final"
    assert win["perplexity"]["heldout"]["overall"]["model"] == "final"
    assert win["top1"]["heldout"]["usb"]["model"] == "step-2"
    assert win["token_accuracy"]["heldout"]["usb"]["model"] == "api:other"
    assert win["bleu4"]["heldout"]["usb"]["model"] == "final"


def test_checkpoint_series_is_in_step_order_and_skips_unrelated_models():
    models = {"final": {"step": 4, "perplexity": _ppl(4.4)}, "base": {"step": 0, "perplexity": _ppl(5.0)},
              "step-2": {"step": 2, "perplexity": _ppl(4.5)}, "other": {"step": None, "perplexity": _ppl(3.0)}}
    assert [(r["model"], r["heldout"]) for r in checkpoint_series(models)] == [("base", 5.0), ("step-2", 4.5), ("final", 4.4)]
    assert checkpoint_series({"base": models["base"]}) == []


def test_reductions_are_relative_to_the_reference():
    red = reductions(_ppl(5.0, usb=4.0), _ppl(4.0, usb=5.0))
    assert red == {"heldout": {"per_category": {"usb": -25.0}, "overall": 20.0}}


def test_tokenizer_mismatch_ranks_and_reduces_by_bits_per_byte():
    from firmlm.evaluate.compare import reductions, winners

    def figs(ppl, bpb):
        cat = {"ppl": ppl, "bpb": bpb, "completion": {}}
        return {"heldout": {"per_category": {"usb": cat}, "overall": cat}}

    # "other" has the lower perplexity only because its tokenizer cuts text into more, easier tokens
    models = {"base": {"tokenizer": "a", "perplexity": figs(6.0, 0.9)},
              "other": {"tokenizer": "b", "perplexity": figs(3.0, 1.1)}}
    won = winners(models)
    assert "perplexity" not in won and won["bpb"]["heldout"]["usb"]["model"] == "base"
    assert reductions(models["base"]["perplexity"], models["other"]["perplexity"], "bpb")["heldout"]["overall"] < 0
    assert reductions(models["base"]["perplexity"], models["other"]["perplexity"])["heldout"]["overall"] == 50.0
