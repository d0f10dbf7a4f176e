import json
from pathlib import Path

from firmlm.stages import run_stages
from firmlm.train import checkpoints


def test_checkpoints_upload_to_an_fsspec_url_and_verify(tiny_config, tmp_path):
    remote = tmp_path / "bucket"
    cfg = tiny_config("train.max_steps=4", "train.save_steps=2", f"train.upload_to=file://{remote}",
                      "train.delete_after_upload=true", "train.keep_checkpoints=5")
    run_stages(cfg, ["corpus", "train"])
    train_dir = Path(cfg.run_dir) / "train"
    summary = json.loads((train_dir / "summary.json").read_text())
    assert summary["uploads"] == {"done": 2, "failed": {}}
    for step in (2, 4):
        up = remote / "checkpoints" / f"step-{step}"
        assert (up / checkpoints.MARKER).is_file()
        local = train_dir / "checkpoints" / f"step-{step}"
        if local.exists():
            for f in local.iterdir():
                assert (up / f.name).stat().st_size == f.stat().st_size
    # the newest checkpoint stays local for resume; older ones were deleted after a verified upload
    assert [s for s, _ in checkpoints.list_complete(train_dir / "checkpoints")] == [4]
    info = json.loads((train_dir / "run_info.json").read_text())
    assert "model.layers.0.self_attn.q_proj" in " ".join(info["adapted_modules"]) and info["world_size"] == 1


def test_failed_upload_never_stops_training(tiny_config, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the bucket folder should be")
    cfg = tiny_config("train.max_steps=2", "train.save_steps=1", f"train.upload_to=file://{blocker}")
    run_stages(cfg, ["corpus", "train"])
    summary = json.loads((Path(cfg.run_dir) / "train" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["uploads"]["done"] == 0 and len(summary["uploads"]["failed"]) == 2
