import pytest

from firmlm.train.selection import evenly_spaced, select_for_budget, thin_to_budget


def test_evenly_spaced_covers_the_whole_range_in_order():
    assert evenly_spaced(range(5), 10) == [0, 1, 2, 3, 4]
    picked = evenly_spaced(range(100), 4)
    assert picked == [12, 37, 62, 87]
    assert evenly_spaced(range(10), 0) == []


def test_budget_selection_spans_the_split_and_just_covers_the_budget():
    sizes = [100] * 300  # characters; 1 token per 2 characters, so 50 tokens a document
    calls = []

    def count(indices):
        calls.append(len(indices))
        return {i: sizes[i] // 2 for i in indices}

    picked = select_for_budget(sizes, needed_tokens=2_000, chars_per_token=4.0, count_tokens=count)  # estimate 2x off
    assert picked == sorted(picked)
    assert picked[0] < 30 and picked[-1] > 270  # the first and the last tenth contribute
    total = 50 * len(picked)
    assert 2_000 <= total < 2_000 + 3 * 50
    assert sum(calls) <= len(sizes)  # no document counted twice
    assert len(calls) <= 3


def test_whole_split_when_the_budget_exceeds_it():
    picked = select_for_budget([10] * 7, needed_tokens=10_000, chars_per_token=1.0,
                               count_tokens=lambda idx: {i: 10 for i in idx})
    assert picked == list(range(7))


def test_thinning_keeps_the_budget_covered():
    tokens = {i: 10 + (i % 3) for i in range(40)}
    kept = thin_to_budget(list(range(40)), tokens, 200)
    assert sum(tokens[i] for i in kept) >= 200 and len(kept) < 40 and kept[0] == 0


def test_mixture_budgets_give_named_shares_and_the_rest_by_size():
    from firmlm.train.selection import mixture_budgets

    groups = ["uboot", "uboot", "linux", "general-c"]
    budgets = mixture_budgets(groups, [300, 100, 200, 1000], 1000, {"general-c": 0.3})
    assert budgets == {"uboot": round(0.7 * 400 / 600 * 1000), "linux": round(0.7 * 200 / 600 * 1000),
                       "general-c": 300}
    assert mixture_budgets(groups, [1, 1, 1, 1], 100, {"general-c": 0.0})["general-c"] == 0  # domain only
    with pytest.raises(ValueError, match="no train documents in group.s. vendor; the corpus has general-c, linux"):
        mixture_budgets(groups, [1, 1, 1, 1], 100, {"vendor": 0.5})


def test_a_mixture_sets_the_token_shares_of_the_sources(tiny_config):
    import json
    from pathlib import Path

    from firmlm.stages import run_stages

    cfg = tiny_config("train.max_steps=2", 'train.mixture={"by": "source", "weights": {"mcu_fw": 0.0}}')
    run_stages(cfg, ["corpus", "train"])
    realized = json.loads((Path(cfg.run_dir) / "train" / "data.json").read_text())["mixture"]
    assert list(realized) == ["usb_lib"] and realized["usb_lib"]["share"] == 1.0  # a source left out entirely
    with pytest.raises(Exception, match="train.mixture.weights: no train documents in group.s. nowhere"):
        run_stages(tiny_config("train.max_steps=2", 'train.mixture={"weights": {"nowhere": 0.5}}'), ["train"],
                   force=True)
