"""Collectives on the process group's device, checked on a real 2-process gloo group; file markers."""

import json
import os
import threading

import pytest
import torch
import torch.multiprocessing as mp

from firmlm import distributed
from firmlm.errors import StageError


def test_collective_device_follows_the_backend(monkeypatch):
    monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert distributed.collective_device() == torch.device("cuda", 3)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: "gloo")
    assert distributed.collective_device() == torch.device("cpu")


def test_helpers_reduce_tensors_on_the_collective_device(monkeypatch):
    """Under NCCL the reduced tensor must live on the GPU; the helpers ask collective_device()."""
    seen = []

    def all_reduce(t, op=None):
        seen.append(t.device)

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed, "collective_device", lambda: torch.device("meta"))
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    for call in (lambda: distributed._all_reduce(1.0, None, torch.float32),
                 lambda: distributed.any_rank_tensor(torch.tensor(True))):
        try:
            call()
        except (NotImplementedError, RuntimeError):  # reading a meta tensor back fails after the reduce
            pass
    assert seen == [torch.device("meta"), torch.device("meta")]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        result = {
            "any_true": distributed.any_rank(rank == 1),
            "any_false": distributed.any_rank(False),
            "mean": distributed.mean_over_ranks(float(rank)),
            "tensor": bool(distributed.any_rank_tensor(torch.tensor(rank == 0))),
        }
        distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    with open(os.path.join(out_dir, f"{rank}.json"), "w") as fh:
        json.dump(result, fh)


def test_helpers_agree_across_two_gloo_processes(tmp_path):
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="spawn")
    for rank in (0, 1):
        got = json.loads((tmp_path / f"{rank}.json").read_text())
        assert got == {"any_true": True, "any_false": False, "mean": 0.5, "tensor": True}


def test_wait_for_marker_returns_fails_and_times_out(tmp_path):
    ok, failed = tmp_path / "ok.json", tmp_path / "failed.json"
    threading.Timer(0.2, lambda: ok.write_text(json.dumps({"ok": True, "fingerprint": "f"}))).start()
    assert distributed.wait_for_marker(ok, "eval", poll_s=0.05, timeout_s=10)["fingerprint"] == "f"
    failed.write_text(json.dumps({"ok": False, "error": "ValueError: boom"}))
    with pytest.raises(StageError, match="main process failed in report.*boom"):
        distributed.wait_for_marker(failed, "report", poll_s=0.05)
    with pytest.raises(StageError, match="did not finish corpus"):
        distributed.wait_for_marker(tmp_path / "never.json", "corpus", poll_s=0.05, timeout_s=0.2)
