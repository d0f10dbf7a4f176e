"""`firmlm exec --check-references`: references pass, wrong solutions fail, a bad task file is reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from firmlm.exec.references import check_references
from firmlm.exec.suite import suite_dir

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def test_every_bundled_reference_passes_and_every_wrong_solution_fails():
    checks, errors = check_references(suite_dir())
    assert not errors
    failing = {c.task.id: (c.reference.stage, c.reference.detail, [w.stage for w in c.wrong])
               for c in checks if c.supported and not c.ok}
    assert not failing
    classes = {w.stage for c in checks for w in c.wrong}
    assert {"wrong_output", "syntax_error", "compile_error", "link_error", "timeout", "runtime_fault"} <= classes


def _cli(*args):
    env = {**os.environ, "TTY_INTERACTIVE": "0"}
    return subprocess.run([sys.executable, "-m", "firmlm", "exec", *args], capture_output=True, text=True, env=env)


def test_cli_exit_status_follows_the_checks(tmp_path):
    task = yaml.safe_load((suite_dir() / "q15_multiply.yaml").read_text())
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(task))
    done = _cli("--check-references", "--tasks", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   q15-multiply-saturate" in done.stdout
    broken = {**task, "id": "q15-broken", "reference": task["wrong"][0]}  # its "reference" is a wrong one
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**task, "id": "q15-typo", "harnes": "x"}))
    done = _cli("--check-references", "--tasks", str(tmp_path))
    assert done.returncode == 1
    assert "FAIL q15-broken" in done.stdout and "reference wrong_output" in done.stdout
    assert "ok   q15-multiply-saturate" in done.stdout  # the others still ran
    assert f"ERROR {tmp_path / 'typo.yaml'}: key `harnes`" in done.stdout


def test_cli_without_check_references_says_what_exists():
    done = _cli()
    assert done.returncode == 2 and "--check-references" in done.stdout + done.stderr


def test_the_readmes_task_example_is_a_valid_task(tmp_path):
    """The README's complete task file: its reference passes and both wrong solutions fail."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("A task is one YAML file")[1].split("```yaml\n")[1].split("```\n")[0]
    (tmp_path / "example.yaml").write_text(block)
    [check], errors = check_references(tmp_path)
    assert not errors
    if not check.supported:
        pytest.skip(check.reference.detail)
    assert check.ok and [w.stage for w in check.wrong] == ["wrong_output", "wrong_output"], check


def test_a_completion_model_can_pass_every_task_whose_reference_continues_its_prompt():
    """The completion path: the reference's text after the prompt, followed by a wandering `main`, cut as a model's
    answer is cut, must pass; a task that needs a function its prompt does not declare would fail here."""
    from concurrent.futures import ThreadPoolExecutor

    from firmlm.exec.runner import evaluate_solution
    from firmlm.exec.scoring import completion_solution
    from firmlm.exec.tasks import load_tasks

    tasks = [t for t in load_tasks(suite_dir())[0] if t.reference.startswith(t.prompt) and t.target != "rtl-iverilog"]
    assert len(tasks) >= 30

    def completed(task):
        rest = task.reference[len(task.prompt):] + "\nint main(void)\n{\n    return 0;\n}\n"
        return evaluate_solution(task, completion_solution(task.prompt, rest))

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        outcomes = list(pool.map(completed, tasks))
    failing = {t.id: (o.stage, o.detail) for t, o in zip(tasks, outcomes) if o.stage not in ("passed", "unsupported")}
    assert not failing
