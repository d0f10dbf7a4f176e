import json

import pyarrow.parquet as pq
import pytest

from firmlm.corpus.build import build_corpus, interleave
from firmlm.corpus.shards import COLUMNS, read_documents
from firmlm.corpus.splits import split_of
from firmlm.errors import SourceError
from firmlm.runs import RunDir


def test_corpus_from_local_repositories(tiny_config):
    cfg = tiny_config()
    run = RunDir(cfg.run_dir)
    with run.stage("corpus", "fp") as out:
        build_corpus(cfg.corpus, cfg.seed, out)
    folder = run.stage_path("corpus")
    table = pq.read_table(folder / "part-00000.parquet")
    assert tuple(table.column_names) == COLUMNS
    docs = list(read_documents(folder))
    assert all(d["text"].startswith(f"// File: {d['repo']}/{d['path']}\n") for d in docs)
    assert {d["repo"] for d in docs} == {"mcu_fw", "usb_lib", "crypto_lib"}
    assert {d["split"] for d in docs if d["repo"] == "crypto_lib"} == {"heldout"}
    assert {d["split"] for d in docs if d["repo"] != "crypto_lib"} <= {"train", "indomain"}
    by_path = {d["path"]: d for d in docs}
    assert by_path["include/stm32f4_regs.h"]["category"] in {"stm32_hal", "register_defines"}
    assert by_path["dts/board.dts"]["category"] == "device_tree"
    assert by_path["boot/startup.S"]["category"] == "arm_cortex_asm"
    assert by_path["core/usb_desc.c"]["category"] == "usb_stack"
    assert by_path["lib/sha_tiny.c"]["category"] == "crypto"
    assert by_path["boot/link.ld"]["kind"] == "linker_script"
    assert by_path["src/uart.c"]["license"] == "BSD-3-Clause"
    # round-robin: the first documents come from different repositories
    assert [d["repo"] for d in docs[:3]] == ["mcu_fw", "usb_lib", "crypto_lib"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == len(docs)
    assert sum(manifest["per_split"].values()) == len(docs)
    assert sum(sum(v.values()) for v in manifest["per_category"].values()) == len(docs)
    assert sum(manifest["rules_taken"].values()) == len(docs)


def test_missing_local_folder_is_an_error_before_writing(tiny_config, tmp_path):
    cfg = tiny_config(f"corpus.sources=[{{name: x, kind: local, path: {tmp_path / 'missing'}}}]")
    run = RunDir(cfg.run_dir)
    with pytest.raises(SourceError, match="missing"):
        with run.stage("corpus", "fp") as out:
            build_corpus(cfg.corpus, cfg.seed, out)
    assert not run.stage_path("corpus").exists()


def test_split_is_stable_and_respects_fraction():
    splits = [split_of("train", "r", f"f{i}.c", 1, 0.2) for i in range(2000)]
    assert splits == [split_of("train", "r", f"f{i}.c", 1, 0.2) for i in range(2000)]
    assert 0.15 < splits.count("indomain") / 2000 < 0.25
    assert split_of("heldout", "r", "a.c", 1, 0.2) == "heldout"


def test_interleave_round_robin():
    assert list(interleave([[1, 2, 3], ["a"], [10, 20]])) == [1, "a", 10, 2, 20, 3]
