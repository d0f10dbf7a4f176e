from pathlib import Path

import pytest

from firmlm.config import apply_overrides, dump_config, load_config
from firmlm.errors import ConfigError


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg.model == "bundled:smollm2-135m"
    assert cfg.train.lora.rank == 64
    assert cfg.train.embed_lr_ratio == 0.5


def test_dotted_overrides_parse_yaml_values(fixtures_dir):
    cfg = load_config(fixtures_dir / "tiny.yaml", ["train.lora.rank=16", "train.lr=1e-3", "eval.splits=[heldout]"])
    assert cfg.train.lora.rank == 16
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.eval.splits == ["heldout"]


def test_local_paths_resolve_against_config_folder(fixtures_dir):
    cfg = load_config(fixtures_dir / "tiny.yaml")
    assert cfg.corpus.sources[0].path == (fixtures_dir / "repos" / "mcu_fw").resolve()


def test_unknown_key_names_key_and_allowed(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lora:\n    rnak: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg and "train.lora.rnak" in msg and "rank" in msg
    assert "\n" not in msg


def test_bad_value_names_key_value_and_rule(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.lora.targets=everything"])
    msg = str(err.value)
    assert "train.lora.targets" in msg and "everything" in msg and "attn_only" in msg


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"model": "x"}, ["model.name=y"])


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(f)


def test_source_kind_requires_its_fields():
    with pytest.raises(ConfigError, match="needs `package`"):
        load_config(None, ["corpus.sources=[{name: x, kind: debian}]"])


def test_duplicate_source_names_rejected():
    with pytest.raises(ConfigError, match="unique"):
        load_config(None, ["corpus.sources=[{name: a, kind: debian, package: p}, {name: a, kind: debian, package: q}]"])


def test_dump_roundtrip(fixtures_dir, tmp_path):
    cfg = load_config(fixtures_dir / "tiny.yaml")
    out = tmp_path / "resolved.yaml"
    out.write_text(dump_config(cfg))
    again = load_config(out)
    assert again.model_dump() == cfg.model_dump()
    assert Path(again.corpus.sources[0].path).is_absolute()
