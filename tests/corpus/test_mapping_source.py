"""Corpus source kind `mapping`: SpecMap's training documents in the corpus, with their own counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from firmlm.config import MAPPING_CATEGORY, SourceConfig
from firmlm.corpus.shards import read_documents
from firmlm.corpus.splits import split_of
from firmlm.errors import SourceError
from firmlm.specmap.render import RULE
from firmlm.stages import fingerprints, run_stages

FIXTURES = Path(__file__).parents[1] / "fixtures" / "specmap"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FIRMLM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def mapped_config(tiny_config, tmp_path):
    firmware = shutil.copytree(FIXTURES / "firmware", tmp_path / "firmware")

    def make(fw_role: str = "train", *extra: str):
        sources = [{"name": "fw", "kind": "local", "path": str(firmware), "role": fw_role},
                   {"name": "spec", "kind": "mapping"}]
        documents = [{"path": str(FIXTURES / "documents"), "repository": "fw"}]
        return tiny_config("map.enabled=true", f"map.documents={json.dumps(documents)}",
                           f"corpus.sources={json.dumps(sources)}", *extra)

    return make


def test_mapping_documents_join_the_corpus_with_their_own_counts(mapped_config):
    cfg = mapped_config("train", "corpus.indomain_fraction=0.0")
    run_stages(cfg, ["map", "corpus"])
    docs = list(read_documents(Path(cfg.run_dir) / "corpus"))
    spec = [d for d in docs if d["repo"] == "spec"]
    assert spec and all(d["category"] == MAPPING_CATEGORY and d["split"] == "train" for d in spec)
    assert all(d["text"].startswith(RULE) and "// File: fw/" not in d["text"].splitlines()[0] for d in spec)
    assert any("// File: " in d["text"] for d in spec)  # the mapped code follows the section text
    assert {d["repo"] for d in docs} == {"fw", "spec"}
    manifest = json.loads((Path(cfg.run_dir) / "corpus" / "manifest.json").read_text())
    assert manifest["per_category"][MAPPING_CATEGORY] == {"train": len(spec)}
    [entry] = [i for i in manifest["inputs"] if i["name"] == "spec"]
    assert entry["kind"] == "mapping" and entry["sha256"] and entry["documents"] == len(spec)


def test_mapping_documents_quoting_evaluation_files_are_dropped(mapped_config):
    cfg = mapped_config("heldout")  # every file of the mapped repository is evaluation data
    run_stages(cfg, ["map", "corpus"])
    docs = list(read_documents(Path(cfg.run_dir) / "corpus"))
    assert not [d for d in docs if d["repo"] == "spec"]
    manifest = json.loads((Path(cfg.run_dir) / "corpus" / "manifest.json").read_text())
    assert manifest["drops"]["mapping-quotes-evaluation-file"] >= 1


def test_indomain_files_decide_per_document(mapped_config):
    cfg = mapped_config("train", "corpus.indomain_fraction=0.5")
    run_stages(cfg, ["map", "corpus"])
    mapping = json.loads((Path(cfg.run_dir) / "map" / "mapping.json").read_text())
    held = {f for d in mapping["documents"] for s in d["sections"] for f, _ in s["files"]
            if split_of("train", "fw", f, cfg.seed, 0.5) != "train"}
    docs = [d for d in read_documents(Path(cfg.run_dir) / "corpus") if d["repo"] == "spec"]
    assert held  # the fixture's seed holds some mapped files back
    assert not any(f"// File: fw/{f}" in d["text"] for d in docs for f in held)


def test_missing_map_output_is_a_clear_error(mapped_config):
    cfg = mapped_config("train", "map.enabled=false")
    with pytest.raises(SourceError, match=r"corpus.sources\['spec'\].*documents.parquet.*map stage first"):
        run_stages(cfg, ["corpus"])


def test_corpus_follows_the_map_stage(mapped_config):
    cfg = mapped_config()
    before = fingerprints(cfg)["corpus"]
    assert fingerprints(mapped_config("train", "map.files_k=2"))["corpus"] != before
    plain = mapped_config().model_copy(deep=True)
    plain.corpus.sources = plain.corpus.sources[:1]
    assert fingerprints(plain)["corpus"] == fingerprints(plain.model_copy(update={"map": cfg.map.model_copy(
        update={"files_k": 2})}))["corpus"]  # without a mapping source the corpus ignores the map stage


def test_mapping_sources_are_training_data():
    with pytest.raises(ValidationError, match="role must be `train`"):
        SourceConfig(name="spec", kind="mapping", role="heldout")


@pytest.mark.parametrize("content, expected", [(b"not parquet at all", "not a readable parquet file"),
                                               (None, "missing columns .*status")])
def test_a_bad_documents_file_is_named(tiny_config, tmp_path, content, expected):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "documents.parquet"
    if content is None:
        pq.write_table(pa.table({"text": ["x"], "document": ["d"], "section": ["s"], "repository": ["r"],
                                 "files": [["a.c"]]}), path)
    else:
        path.write_bytes(content)
    cfg = tiny_config(f"corpus.sources={json.dumps([{'name': 'spec', 'kind': 'mapping', 'path': str(path)}])}")
    with pytest.raises(SourceError, match=rf"corpus.sources\['spec'\]: {path}: {expected}"):
        run_stages(cfg, ["corpus"])
