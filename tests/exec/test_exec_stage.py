"""The exec stage: a local model and a chat API model answer the tasks; pass@1, failure classes, the report."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from firmlm.exec.runner import FAILURES
from firmlm.exec.suite import suite_dir
from firmlm.stages import run_stages

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
TASKS = ("crc8_maxim.yaml", "q15_multiply.yaml", "ring_buffer.yaml")


def _chat_server(reply, seen: list[dict] | None = None):
    """A chat-completions server on loopback whose answer to a request is ``reply(request)``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if seen is not None:
                seen.append(request)
            body = json.dumps({"choices": [{"message": {"content": reply(request)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _oracle(tasks: list[dict]):
    """Answers each task's instruction with its reference solution, fenced, except the ring buffer's, which it
    answers in words only."""
    answers = {t["instruction"]: (f"Here it is:\n```c\n{t['reference']}```\n" if t["id"] != "ring-buffer-u8"
                                  else "A ring buffer keeps a head and a tail index.") for t in tasks}
    return _chat_server(lambda request: answers.get(request["messages"][-1]["content"], "no idea"))


def test_models_answer_tasks_and_the_report_counts_them(tiny_config, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    tasks = []
    for name in TASKS:
        shutil.copy(suite_dir() / name, folder / name)
        tasks.append(yaml.safe_load((folder / name).read_text()))
    (folder / "broken.yaml").write_text("id: broken\nlevel: 9\n")
    server = _oracle(tasks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    oracle = {"name": "oracle", "api": {"base_url": f"http://127.0.0.1:{server.server_address[1]}",
                                        "model": "oracle", "chat": True}}
    try:
        cfg = tiny_config("train.enabled=false", "exec.enabled=true", f"exec.tasks={folder}",
                          "exec.max_new_tokens=24", f"exec.models={json.dumps(['base', oracle])}")
        [exec_result, report] = run_stages(cfg, ["exec", "report"])
    finally:
        server.shutdown()
    lines = [json.loads(line) for line in (Path(cfg.run_dir) / "exec" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * len(TASKS) and {r["model"] for r in lines} == {"base", "oracle"}
    oracle_stages = {r["task"]: r["stage"] for r in lines if r["model"] == "oracle"}
    assert oracle_stages == {"crc8-maxim": "passed", "q15-multiply-saturate": "passed",
                             "ring-buffer-u8": "unparseable"}
    assert all(r["stage"] in FAILURES for r in lines if r["model"] == "base")  # a random tiny model
    summary = exec_result.summary
    assert summary["models"]["oracle"]["pass_at"]["1"] == pytest.approx(2 / 3)
    assert summary["models"]["oracle"]["per_level"]["1"]["pass@1"] == 1.0
    assert summary["models"]["oracle"]["per_level"]["2"]["pass@1"] == 0.5
    assert summary["models"]["base"]["mode"] == "completion" and summary["models"]["oracle"]["mode"] == "chat"
    assert [e["file"] for e in summary["task_errors"]] == [str(folder / "broken.yaml")]
    md = (Path(cfg.run_dir) / "report" / "report.md").read_text()
    assert "## Execution-grounded tasks" in md and "| oracle | 66.7% | 100.0% | 50.0% | 3 |" in md
    assert "| oracle | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in md  # one unparseable answer
    assert "broken.yaml" in md


def test_a_task_selection_that_leaves_nothing_is_an_error(tiny_config, tmp_path):
    from firmlm.errors import StageError

    shutil.copy(suite_dir() / "crc8_maxim.yaml", tmp_path / "crc8_maxim.yaml")
    cfg = tiny_config("train.enabled=false", "exec.enabled=true", f"exec.tasks={tmp_path}",
                      "exec.targets=[rtl-iverilog]", "exec.models=[base]")
    with pytest.raises(StageError, match="no tasks to run"):
        run_stages(cfg, ["exec"])
    cfg = tiny_config("train.enabled=false", "exec.enabled=true", f"exec.tasks={tmp_path}", "exec.select=[crc16-*]",
                      "exec.models=[base]")
    with pytest.raises(StageError, match=r"select \['crc16-\*'\]"):
        run_stages(cfg, ["exec"])


def _coin_oracle(tasks: list[dict], seen: list[dict]):
    """First answers right for odd seeds and wrong (the task's first wrong solution) for even ones; repair answers
    right; every request kept in ``seen``."""
    by_instruction = {t["instruction"].rstrip(): t for t in tasks}

    def reply(request: dict) -> str:
        content = request["messages"][-1]["content"]
        task = next(t for i, t in by_instruction.items() if content.startswith(i))
        right = "Your previous answer was" in content or request["seed"] % 2 == 1
        return f"```c\n{task['reference'] if right else task['wrong'][0]}```\n"

    return _chat_server(reply, seen)


def test_samples_give_pass_at_k_repair_fixes_and_general_tasks_are_apart(tiny_config, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    crc = yaml.safe_load((suite_dir() / "crc8_maxim.yaml").read_text())
    general = {**yaml.safe_load((suite_dir() / "q15_multiply.yaml").read_text()), "id": "q15-general",
               "kind": "general"}
    for task in (crc, general):
        (folder / f"{task['id']}.yaml").write_text(yaml.safe_dump(task))
    seen: list[dict] = []
    server = _coin_oracle([crc, general], seen)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    oracle = {"name": "oracle", "api": {"base_url": f"http://127.0.0.1:{server.server_address[1]}",
                                        "model": "oracle", "chat": True}}
    try:
        cfg = tiny_config("train.enabled=false", "exec.enabled=true", f"exec.tasks={folder}", "exec.samples=2",
                          "exec.pass_at=[1,2]", "exec.repair_rounds=1", f"exec.models={json.dumps([oracle])}")
        [exec_result, _] = run_stages(cfg, ["exec", "report"])
    finally:
        server.shutdown()
    figures = exec_result.summary["models"]["oracle"]
    assert figures["pass_at"] == {"1": 0.5, "2": 1.0} and figures["tasks"] == 1  # the general task is apart
    assert figures["failures"] == {"wrong_output": 1}
    assert figures["repair"] == {"rounds": 1, "pass_at_1": 1.0, "per_level": {"1": {"pass@1": 1.0}}, "fixed": 1}
    assert figures["general"]["pass_rate"] == 0.5 and figures["general"]["compile_rate"] == 1.0
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "exec" / "results.jsonl").read_text().splitlines()]
    fixed = next(r for r in rows if r["task"] == "crc8-maxim" and r["sample"] == 0)
    assert fixed["attempts"] == ["wrong_output", "passed"] and fixed["repaired_in"] == 1
    repair = next(r for r in seen if "Your previous answer was" in r["messages"][-1]["content"])
    assert "wrong output: printed" in repair["messages"][-1]["content"]  # the failure goes back to the model
    assert "complete source file" in seen[0]["messages"][0]["content"]  # exec's own system message
    assert len({(r["seed"], r["messages"][-1]["content"]) for r in seen}) == len(seen) == 6  # 4 first + 2 repairs
    md = (Path(cfg.run_dir) / "report" / "report.md").read_text()
    assert "| oracle | 50.0% | 100.0% | 50.0% | 1 |" in md  # pass@1, pass@2, level 1
    assert "| oracle | 50.0% | 100.0% | 1 |" in md  # repair: before, after, fixed
    assert "| oracle | 100.0% | 50.0% | 2 |" in md  # forgetting check: compiles, passes, answers
    assert (Path(cfg.run_dir) / "report" / "figures" / "exec_failures.png").stat().st_size > 1000
