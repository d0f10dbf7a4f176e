import random

from firmlm.corpus.dedup import DedupSettings, find_duplicates, jaccard
from firmlm.stages import run_stages


def _c_source(seed: int, n: int = 60) -> str:
    rng = random.Random(seed)
    return "".join(f"static int reg_{rng.randrange(10**6)}(void) {{ return REG_{rng.randrange(999)} | 0x{rng.randrange(4096):03x}; }}\n"
                   for _ in range(n))


def _doc(text: str, split: str, path: str) -> dict:
    return {"text": f"// File: r/{path}\n{text}", "split": split}


def test_exact_near_and_leakage():
    a, b, c = _c_source(1), _c_source(2), _c_source(3)
    lines = b.splitlines(keepends=True)
    b_near = "".join(lines[:-2]) + "static int extra(void) { return 0; }\n" * 2  # ~97% similar
    assert jaccard(b, b_near) > 0.9
    docs = [
        _doc(a, "train", "a.c"),
        _doc("  " + a.replace("\n", "\n\n"), "train", "a_copy.c"),  # same up to whitespace
        _doc(b_near, "train", "b_fork.c"),  # near-copy of an evaluation document
        _doc(c, "train", "c.c"),
        _doc(b, "heldout", "b.c"),
        _doc(c, "heldout", "c_again.c"),  # exact copy of a train document: the train copy goes
    ]
    drops = find_duplicates(docs, DedupSettings(threshold=0.8))
    assert drops == {1: "exact-duplicate", 2: "leakage", 3: "leakage"}


def test_distinct_documents_all_survive():
    docs = [_doc(_c_source(i), "train", f"f{i}.c") for i in range(30)]
    assert find_duplicates(docs, DedupSettings()) == {}
    assert find_duplicates(docs + [docs[4]], DedupSettings(near=False)) == {30: "exact-duplicate"}


def test_manifest_reports_leakage_guard(tiny_config, tmp_path):
    repos = tmp_path / "repos"
    (repos / "fw" / "dts").mkdir(parents=True)
    (repos / "kernel" / "dts").mkdir(parents=True)
    shared = _c_source(42)
    (repos / "fw" / "dts" / "board.c").write_text(shared)
    (repos / "fw" / "main.c").write_text(_c_source(7))
    (repos / "kernel" / "dts" / "board.c").write_text(shared)
    cfg = tiny_config(f"corpus.sources=[{{name: fw, kind: local, path: {repos / 'fw'}}}, "
                      f"{{name: kernel, kind: local, path: {repos / 'kernel'}, role: heldout}}]",
                      "corpus.indomain_fraction=0.0")
    run_stages(cfg, ["corpus"])
    import json

    manifest = json.loads((cfg.run_dir / "corpus" / "manifest.json").read_text())
    assert manifest["leakage_guard_removed"] == 1 and manifest["drops"]["leakage"] == 1
    assert manifest["per_split"] == {"train": 1, "heldout": 1}


def test_leakage_uses_its_own_lower_threshold():
    import random

    from firmlm.corpus.dedup import DedupSettings, find_duplicates, jaccard

    rng = random.Random(0)
    lines = [f"reg_{i} = read32(base + 0x{rng.randrange(4096):03x});" for i in range(120)]
    heldout = "\n".join(lines)
    overlap = "\n".join(lines[:80] + [f"other_{i}();" for i in range(60)])  # shares a good part, no duplicate
    similarity = jaccard(heldout, overlap)
    assert 0.4 < similarity < 0.85
    docs = [{"text": heldout, "split": "heldout"}, {"text": overlap, "split": "train"},
            {"text": overlap.replace("other", "more"), "split": "train"}]
    assert find_duplicates(docs, DedupSettings(leakage_threshold=0.85)) == {}
    drops = find_duplicates(docs, DedupSettings(leakage_threshold=0.3))
    assert drops == {1: "leakage", 2: "leakage"}
