import json

import pytest

from firmlm.runs import RunDir, atomic_write_json, fingerprint


def test_stage_publishes_atomically_with_summary(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.stage("corpus", "fp1") as out:
        (out.path / "data.txt").write_text("x")
        out.summary["documents"] = 3
        assert not (tmp_path / "run" / "corpus").exists()
    summary = json.loads((tmp_path / "run" / "corpus" / "summary.json").read_text())
    assert summary["fingerprint"] == "fp1" and summary["documents"] == 3 and "seconds" in summary
    assert run.is_done("corpus", "fp1") and not run.is_done("corpus", "fp2")


def test_failed_stage_leaves_previous_output_and_no_temp(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.stage("train", "a") as out:
        (out.path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with run.stage("train", "b") as out:
            (out.path / "keep.txt").write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "run" / "train" / "keep.txt").read_text() == "old"
    assert run.is_done("train", "a")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["train"]


def test_atomic_json_and_fingerprint_stability(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert not list(tmp_path.glob(".*tmp"))
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
