"""The device/dtype policy: GPU bf16 with a device_map only when too large, CPU fp32 with bf16 autocast only
on native-bf16 CPUs. No GPU here: CUDA is faked through torch.cuda's functions."""

import json

import pytest
import torch

from firmlm import models
from firmlm.errors import ConfigError, ModelError
from firmlm.models import placement as policy

NATIVE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
GiB = 2**30


@pytest.fixture
def cpuinfo(tmp_path):
    def write(text: str):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def fake_gpu(monkeypatch):
    """A visible GPU with ``free`` bytes free and native bf16 unless ``bf16=False``."""

    def install(free: int, bf16: bool = True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * GiB))

    return install


def test_cpu_native_bf16_is_read_from_the_cpu_flags(cpuinfo, tmp_path):
    assert models.cpu_has_native_bf16(cpuinfo(NATIVE))
    assert not models.cpu_has_native_bf16(cpuinfo(AVX2))
    assert not models.cpu_has_native_bf16(tmp_path / "missing")
    from firmlm.models.placement import cpu_has_native_bf16  # the train stage imports it from here

    assert cpu_has_native_bf16 is models.cpu_has_native_bf16


@pytest.mark.parametrize(("flags", "precision", "autocast"), [
    (NATIVE, "auto", True), (AVX2, "auto", False), (NATIVE, "fp32", False), (AVX2, "bf16", True),
])
def test_cpu_keeps_fp32_weights_and_autocasts_only_with_native_bf16(flags, precision, autocast, cpuinfo, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    chosen = models.choose_placement(precision, models.prepare("tiny:llama"), cpuinfo=cpuinfo(flags))
    assert chosen == models.Placement("cpu", "float32", None, autocast)
    assert chosen.from_pretrained_kwargs() == {"dtype": torch.float32}  # no device_map: as before


def test_gpu_takes_bf16_weights_on_one_device_when_the_model_fits(fake_gpu, cpuinfo):
    fake_gpu(free=70 * GiB)
    chosen = models.choose_placement("auto", models.prepare("tiny:llama"), cpuinfo=cpuinfo(NATIVE))
    assert chosen == models.Placement("cuda", "bfloat16", None, False)
    assert chosen.from_pretrained_kwargs() == {"dtype": torch.bfloat16, "device_map": "cuda"}


def test_gpu_spreads_the_model_only_when_it_does_not_fit(fake_gpu):
    folder = models.prepare("tiny:llama")
    need = models.weights_nbytes(folder, "bfloat16")
    fake_gpu(free=int(need / models.FIT_FRACTION) + 1)
    assert models.choose_placement("auto", folder).device_map is None
    fake_gpu(free=int(need / models.FIT_FRACTION) - 1)
    chosen = models.choose_placement("auto", folder)
    assert chosen.device_map == "auto" and chosen.from_pretrained_kwargs()["device_map"] == "auto"
    assert models.choose_placement("auto", None).device_map == "auto"  # size unknown: let accelerate decide


@pytest.mark.parametrize(("bf16_gpu", "precision", "dtype"), [
    (True, "fp32", "float32"), (False, "auto", "float32"), (False, "bf16", "float32"), (True, "bf16", "bfloat16"),
])
def test_gpu_dtype_follows_precision_and_native_bf16(bf16_gpu, precision, dtype, fake_gpu):
    fake_gpu(free=70 * GiB, bf16=bf16_gpu)
    chosen = models.choose_placement(precision, models.prepare("tiny:llama"))
    assert (chosen.device, chosen.dtype, chosen.autocast_bf16) == ("cuda", dtype, False)


def test_fp32_needs_twice_the_bytes_of_bf16_so_it_spreads_sooner(fake_gpu):
    folder = models.prepare("tiny:llama")
    fake_gpu(free=int(models.weights_nbytes(folder, "bfloat16") / models.FIT_FRACTION) + 1)
    assert models.choose_placement("bf16", folder).device_map is None
    assert models.choose_placement("fp32", folder).device_map == "auto"


def test_parameters_are_counted_from_safetensors_headers_and_estimated_from_config(tmp_path):
    folder = models.prepare("tiny:qwen2")
    model, _ = models.load("tiny:qwen2")
    assert models.parameter_count(folder) == sum(p.numel() for p in model.parameters())
    assert models.weights_nbytes(folder, "bfloat16") == 2 * models.parameter_count(folder)
    llama2_7b = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False}
    assert models.config_parameter_count(llama2_7b) == pytest.approx(6_738_415_616, rel=0.005)
    (tmp_path / "config.json").write_text(json.dumps(llama2_7b))  # a folder with a config but no weights yet
    assert models.parameter_count(tmp_path) == models.config_parameter_count(llama2_7b)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)  # corrupt header: falls back to the config
    assert models.parameter_count(tmp_path) == models.config_parameter_count(llama2_7b)
    assert models.parameter_count(tmp_path / "missing") is None


def test_load_places_a_tiny_model_in_fp32_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    chosen = models.placement_for("tiny:olmo3", "auto")
    model, tok = models.load("tiny:olmo3", placement=chosen)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert tok.pad_token_id is not None


def test_load_without_a_placement_keeps_the_training_path(monkeypatch):
    bf16, _ = models.load("tiny:llama", dtype=torch.bfloat16)  # what the train stage passes on a GPU
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in bf16.parameters()} == {"cpu"}  # the Trainer moves it
    with pytest.raises(ModelError, match="tiny:llama"):
        models.load("tiny:llama", dtype=torch.bfloat16, placement=models.Placement("cpu", "float32"))


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="fp16"):
        policy.choose_placement("fp16")
