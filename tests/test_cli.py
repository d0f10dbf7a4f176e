"""The command line, run as a user would: a real subprocess, exit codes, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def firmlm(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "firmlm", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_run_every_stage_then_skip_all(tmp_path):
    run_dir = tmp_path / "run"
    args = ["run", "-c", str(FIXTURES / "tiny.yaml"), "--set", f"run_dir={run_dir}", "--json"]
    first = firmlm(*args)
    assert first.returncode == 0, first.stderr
    summaries = json.loads(first.stdout[: first.stdout.rindex("}") + 1])
    assert list(summaries) == ["corpus", "train", "eval", "report"]
    assert (run_dir / "report" / "report.md").is_file() and (run_dir / "config.yaml").is_file()
    stamps = {s: (run_dir / s / "summary.json").stat().st_mtime_ns for s in summaries}
    second = firmlm(*args)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("unchanged, skipped") == 4
    assert stamps == {s: (run_dir / s / "summary.json").stat().st_mtime_ns for s in summaries}
    third = firmlm(*args[:-1], "--set", "eval.tokens_per_category=256")
    assert third.returncode == 0, third.stderr
    assert third.stderr.count("unchanged, skipped") == 2  # corpus and train reused; eval and report redone


def _fails_cleanly(result, *needles):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    text = " ".join(lines)
    assert text.startswith("error:") and "Traceback" not in result.stderr
    for n in needles:
        assert n in text, text


def test_typo_in_config_fails_with_one_line_and_writes_nothing(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text((FIXTURES / "tiny.yaml").read_text().replace("max_steps: 3", "max_stpes: 3"))
    run_dir = tmp_path / "run"
    _fails_cleanly(firmlm("run", "-c", str(cfg), "--set", f"run_dir={run_dir}"), "train.max_stpes", "max_steps")
    assert not run_dir.exists()


def test_missing_source_folder_fails_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    r = firmlm("run", "-c", str(FIXTURES / "tiny.yaml"), "--set", f"run_dir={run_dir}",
               "--set", "corpus.sources=[{name: gone, kind: local, path: /nonexistent/firmware}]")
    _fails_cleanly(r, "gone", "/nonexistent/firmware")
    assert not run_dir.exists()


def test_unknown_model_reference_fails_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    r = firmlm("run", "-c", str(FIXTURES / "tiny.yaml"), "--set", f"run_dir={run_dir}", "--set", "model=tiny:gpt9")
    _fails_cleanly(r, "tiny:gpt9")
    assert not run_dir.exists()


def test_bad_override_value_names_the_key(tmp_path):
    r = firmlm("config", "show", "-c", str(FIXTURES / "tiny.yaml"), "--set", "train.max_steps=-1")
    _fails_cleanly(r, "train.max_steps", "-1")


def test_config_show_and_reference():
    shown = firmlm("config", "show", "-c", str(FIXTURES / "tiny.yaml"), "--set", "train.lora.rank=9")
    assert shown.returncode == 0 and "rank: 9" in shown.stdout
    ref = firmlm("config", "reference")
    assert ref.returncode == 0 and "`train.lora.rank`" in ref.stdout


def test_readme_config_reference_is_current():
    """The README's config reference is the generated one (regenerate: firmlm config reference)."""
    from firmlm.config_reference import render

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert render().strip() in readme


def test_models_list_and_prepare_tiny():
    r = firmlm("models", "prepare", "tiny:qwen2")
    assert r.returncode == 0 and Path(r.stdout.strip(), "config.json").is_file()
    listed = firmlm("models", "list")
    assert "tiny-qwen2-v1" in listed.stdout and "bundled:smollm2-135m" in listed.stdout
