from firmlm.evaluate.samples import select_samples
from firmlm.stages import run_stages


def test_samples_are_seeded_capped_and_stable(tiny_config):
    cfg = tiny_config()
    run_stages(cfg, ["corpus"])
    corpus = cfg.run_dir / "corpus"
    a = select_samples(corpus, ["indomain", "heldout"], 1, 50, seed=1)
    assert a == select_samples(corpus, ["indomain", "heldout"], 1, 50, seed=1)
    groups = [(s.split, s.category) for s in a]
    assert len(groups) == len(set(groups))
    assert all(len(s.text) <= 50 and s.split in {"indomain", "heldout"} for s in a)
    more = select_samples(corpus, ["heldout"], 10, 10_000, seed=1)
    assert {s.repo for s in more} == {"crypto_lib"}

