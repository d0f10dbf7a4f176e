"""The command line, run as a user would: a real subprocess, exit codes, one-line errors."""

import io
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
    summaries = json.loads(first.stdout)  # stdout is the JSON document alone
    assert list(summaries) == ["corpus", "train", "eval", "report"]
    assert "report: " in first.stderr and "reduction" in first.stderr  # the headline table went to stderr
    assert (run_dir / "report" / "report.md").is_file() and (run_dir / "config.yaml").is_file()
    stamps = {s: (run_dir / s / "summary.json").stat().st_mtime_ns for s in summaries}
    second = firmlm(*args)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == summaries
    assert second.stderr.count("unchanged, skipped") == 4
    assert stamps == {s: (run_dir / s / "summary.json").stat().st_mtime_ns for s in summaries}
    third = firmlm(*args[:-1], "--set", "eval.tokens_per_category=256")
    assert third.returncode == 0, third.stderr
    assert third.stderr.count("unchanged, skipped") == 2  # corpus and train reused; eval and report redone
    assert "reduction" in third.stdout and f"report: {run_dir}" in third.stdout.replace("\n", "")  # no --json
    from firmlm.exec.suite import suite_dir

    with_exec = firmlm("eval", *args[1:-1], "--set", "eval.tokens_per_category=256", "--set",
                       f"exec.tasks={suite_dir() / 'crc8_maxim.yaml'}", "--set", "exec.models=[base]", "--set",
                       "exec.max_new_tokens=16", "--exec", "--json")
    assert with_exec.returncode == 0, with_exec.stderr
    both = json.loads(with_exec.stdout)  # exec runs although the config leaves it disabled: --exec asks for it
    assert list(both) == ["eval", "exec"] and both["exec"]["tasks"] == 1 and "base" in both["exec"]["models"]


def test_headline_shows_intervals_categories_and_control_margin():
    from rich.console import Console

    from firmlm.cli import _print_headline

    row = {"split": "heldout", "reference": "base", "target": "final", "base_ppl": 3.80553, "adapted_ppl": 3.39179,
           "base_top1": 0.43, "adapted_top1": 0.49, "metric": "perplexity", "reduction_pct": 12.346,
           "reduction_ci95": [10.512, 14.034], "categories_improved": 4, "categories": 5, "improved_by": "interval",
           "control_categories": ["crypto"], "control_margin_pts": 3.659, "control_margin_ci95": [0.812, 6.431]}
    out = Console(record=True, width=200, file=io.StringIO())
    _print_headline([row], Path("run/report/report.md"), "bundled:smollm2-135m with LoRA r=64", out)
    text = out.export_text()
    assert "+12.3% [+10.5, +14.0]" in text and "4/5" in text and "+3.7 pts [+0.8, +6.4]" in text
    assert "3.806" in text and "43.0% → 49.0%" in text and "> 0: final better" in text
    assert "trained: bundled:smollm2-135m with LoRA r=64" in text
    legacy = {k: v for k, v in row.items() if not k.startswith("control")} | {"reduction_ci95": None,
                                                                           "improved_by": "point estimate"}
    out = Console(record=True, width=200, file=io.StringIO())
    _print_headline([legacy], Path("r.md"), None, out)
    text = out.export_text()
    assert "+12.3%" in text and "[" not in text and "embedded" not in text


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
