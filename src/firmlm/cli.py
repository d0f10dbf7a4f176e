"""The `firmlm` command line: parse, load the config, call the stages."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from firmlm import __version__
from firmlm.config import load_config
from firmlm.errors import FirmlmError
from firmlm.progress import console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Domain-adapt a code LLM to embedded firmware and measure the gain.")
models_app = typer.Typer(no_args_is_help=True, help="Prepare and list models.")
config_app = typer.Typer(no_args_is_help=True, help="Show configs and the config reference.")
app.add_typer(models_app, name="models")
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Run config (YAML).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a key: --set train.lora.rank=64 (repeatable).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo stages even when their fingerprint is unchanged.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print only the stages' summaries to stdout, as one JSON document (tables go to stderr).")]
ResumeOpt = Annotated[str | None, typer.Option("--resume", help="Continue training from `auto` (latest checkpoint) or a checkpoint folder.")]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)], force=True)
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _run(config: Path, sets: list[str] | None, names: list[str], force: bool, as_json: bool, resume: str | None = None,
         only_enabled: bool = True) -> None:
    """Run the stages (of several, only those the config enables unless ``only_enabled`` is off); with ``--json``
    stdout carries only the summaries (one JSON document) and every human-facing line goes to stderr, else the
    headline table goes to stdout."""
    from firmlm.stages import enabled, run_stages

    cfg = load_config(config, sets or [])
    wanted = [n for n in names if enabled(cfg, n)] if len(names) > 1 and only_enabled else names
    results = run_stages(cfg, wanted, force=force, resume=resume)
    if as_json:
        print(json.dumps({r.name: r.summary for r in results}, indent=2))
    report = next((r for r in results if r.name == "report"), None)
    if report and report.summary.get("headline"):
        out = console if as_json else Console()
        if not out.is_terminal:  # a log file or pipe: no terminal width to fit, keep intervals on one line
            out.width = max(out.width, 140)
        _print_headline(report.summary["headline"], cfg.run_dir / "report" / "report.md",
                        report.summary.get("trained"), out)
    else:
        for r in results:
            console.print(f"[bold]{r.name}[/]: {'skipped (unchanged)' if r.skipped else 'done'} → {cfg.run_dir / r.name}")


def _print_headline(rows: list[dict], report_path: Path, trained: str | None, out: Console) -> None:
    """Per split: perplexities, the reduction with its 95% interval, categories improved and the control margin."""
    from firmlm.report import fmt

    ref, target = rows[0].get("reference", "base"), rows[0].get("target") or fmt.MISSING
    by_interval = all(r.get("improved_by") == "interval" for r in rows)
    metric = "bits per byte" if any(r.get("metric") == "bpb" for r in rows) else "perplexity"
    table = Table(title=f"firmlm: {ref} vs {target} (token-weighted perplexity, lower is better)",
                  caption=f"reduction = ({ref} − {target}) / {ref} on {metric}, > 0: {target} better"
                  + ("; [95% interval]; improved: interval above 0" if by_interval
                     else "; improved: point estimate > 0"))
    columns = ["split", f"{ref} ppl", f"{target} ppl", "reduction", "categories improved"]
    columns += ["embedded − control"] if any(r.get("control_margin_pts") is not None for r in rows) else []
    columns += [f"top-1 {ref} → {target}"]
    for col in columns:
        table.add_column(col, justify="right")
    for r in rows:
        top1 = fmt.MISSING
        if r.get("base_top1") is not None and r.get("adapted_top1") is not None:
            top1 = f"{fmt.share(r['base_top1'])} → {fmt.share(r['adapted_top1'])}"
        cells = [r["split"], fmt.ppl(r["base_ppl"]), fmt.ppl(r.get("adapted_ppl")),
                 fmt.change(r.get("reduction_pct"), r.get("reduction_ci95")),
                 f"{r['categories_improved']}/{r['categories']}"]
        if "embedded − control" in columns:
            cells.append(fmt.change(r.get("control_margin_pts"), r.get("control_margin_ci95"), unit="pts"))
        table.add_row(*cells, top1)
    out.print(table)
    if trained:
        out.print(f"trained: {trained}", highlight=False, soft_wrap=True)
    out.print(f"report: {report_path}", highlight=False)


def _stage_command(name: str):
    def command(config: ConfigOpt, set_: SetOpt = None, force: ForceOpt = False, as_json: JsonOpt = False,
                resume: ResumeOpt = None) -> None:
        _run(config, set_, [name], force, as_json, resume)

    command.__doc__ = f"Run only the {name} stage."
    return command


@app.command()
def run(config: ConfigOpt, set_: SetOpt = None, force: ForceOpt = False, as_json: JsonOpt = False,
        resume: ResumeOpt = None) -> None:
    """Run every enabled stage: map → corpus → train → eval → exec → report."""
    from firmlm.stages import ORDER

    _run(config, set_, list(ORDER), force, as_json, resume)


for _name in ("corpus", "train", "report"):
    app.command(name=_name)(_stage_command(_name))


@app.command(name="eval")
def eval_(config: ConfigOpt, set_: SetOpt = None, force: ForceOpt = False, as_json: JsonOpt = False,
          resume: ResumeOpt = None,
          with_exec: Annotated[bool, typer.Option("--exec", help="Also run the exec stage after eval (the "
                                                  "execution-grounded tasks, with exec.models).")] = False) -> None:
    """Run only the eval stage, or eval then exec with --exec."""
    _run(config, set_, ["eval", "exec"] if with_exec else ["eval"], force, as_json, resume, only_enabled=False)


@app.command(name="map")
def map_(config: ConfigOpt, set_: SetOpt = None, force: ForceOpt = False, as_json: JsonOpt = False,
         eval_: Annotated[Path | None, typer.Option("--eval", help="Ground-truth JSON: score the mapping against it, "
                                                     "next to a flat BM25 baseline (writes RUN/map/eval.json).")] = None,
         ) -> None:
    """Run only the map stage (datasheet sections → folders, files, symbols → status)."""
    _run(config, set_, ["map"], force, as_json)
    if eval_ is not None:
        from firmlm.models.references import cache_dir
        from firmlm.specmap.stage import run_map_eval

        cfg = load_config(config, set_ or [])
        table = run_map_eval(cfg.map, cfg.corpus, cfg.run_dir / "map", eval_, cache_dir() / "specmap")
        (console if as_json else Console()).print(table, highlight=False, markup=False)


@app.command(name="exec")
def exec_(config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config (YAML).")] = None,
          set_: SetOpt = None, force: ForceOpt = False, as_json: JsonOpt = False,
          tasks: Annotated[Path | None, typer.Option("--tasks", help="With --check-references: a task file or a "
                                                     "folder of them (default: firmlm's own suite).")] = None,
          check_references: Annotated[bool, typer.Option("--check-references", help="Run every task's reference "
                                                         "and wrong solutions, no model: the reference must pass, "
                                                         "each wrong one fail.")] = False,
          workers: Annotated[int | None, typer.Option("--workers", min=1, help="Tasks at a time (default: cores).")]
          = None) -> None:
    """Run only the exec stage (models answer tasks; answers built and run in a sandbox), or check a task suite."""
    from firmlm.errors import ConfigError
    from firmlm.exec.references import check_references as check, render_checks
    from firmlm.exec.suite import suite_dir

    if not check_references:
        if config is None:
            raise ConfigError("firmlm exec: give -c CONFIG to score the config's exec.models on its tasks, or "
                              "--check-references [--tasks DIR] to validate a task suite")
        _run(config, set_, ["exec"], force, as_json)
        return
    checks, errors = check(tasks or suite_dir(), workers)
    print(render_checks(checks, errors))
    if errors or not all(c.ok for c in checks if c.supported):
        raise typer.Exit(1)


@app.command()
def sweep(config: ConfigOpt, set_: SetOpt = None,
          report: Annotated[bool, typer.Option("--report", help="Only analyse the study as it stands: the trial "
                                               "table, marginal effects, curves and the rank-LR fit.")] = False,
          ) -> None:
    """Run a worker of the config's sweep (Optuna study; start several to share it), then print its analysis."""
    from firmlm.report.sweep import sweep_lines
    from firmlm.sweep.stage import SWEEP_DIR, run_analysis, run_sweep

    cfg = load_config(config, set_ or [])
    summary = run_analysis(cfg) if report else run_sweep(cfg)
    folder = cfg.run_dir / SWEEP_DIR
    (folder / "figures").mkdir(parents=True, exist_ok=True)

    def figure(md: list[str], name: str, caption: str, draw) -> None:
        draw(folder / name)
        md.extend([f"![{caption}]({name})", ""])

    text = "\n".join(sweep_lines(summary, figure)) + "\n"
    from firmlm.runs import atomic_write_text

    atomic_write_text(folder / "report.md", text)
    print(text)


@app.command()
def export(config: ConfigOpt, set_: SetOpt = None,
           out: Annotated[Path | None, typer.Option("--out", help="Folder for the merged model (default RUN/train/merged).")] = None) -> None:
    """Merge the trained adapter into the base model and save a plain transformers folder."""
    from firmlm.runs import RunDir
    from firmlm.train.export import export_merged

    cfg = load_config(config, set_ or [])
    run = RunDir(cfg.run_dir)
    run.require("train")
    target = export_merged(cfg.model, run.stage_path("train") / "final", out or run.stage_path("train") / "merged",
                           precision=cfg.train.precision)
    print(target)


@app.command()
def serve(model: Annotated[str, typer.Option("--model", help="Model reference (bundled:, tiny:, folder, hub id).")],
          adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter folder (merged at load).")] = None,
          host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8000,
          max_queue: Annotated[int, typer.Option("--max-queue", min=0,
                                                 help="Requests that may wait for the model; more get HTTP 503.")] = 64,
          ) -> None:
    """Serve the model over an OpenAI-compatible API: GET /v1/models, POST /v1/completions."""
    from firmlm.serve import CompletionServer, load_backend

    server = CompletionServer(load_backend(model, adapter), model, host, port, max_queue=max_queue)
    console.print(f"serving {model} at {server.url}/v1 (Ctrl-C stops)")
    try:
        server.httpd.serve_forever()
    finally:
        server.httpd.server_close()


@models_app.command("prepare")
def models_prepare(ref: str) -> None:
    """Make a model reference loadable offline (bundled: dequantize once; tiny: build) and print its folder."""
    from firmlm import models

    print(models.prepare(ref))


@models_app.command("list")
def models_list() -> None:
    """Known references and the folders already in the firmlm cache."""
    from firmlm import models

    print("references: " + ", ".join([*(f"bundled:{k}" for k in models.BUNDLED), *(f"tiny:{a}" for a in models.TINY_ARCHS), "<hub org/name>", "<folder>"]))
    print(f"cache: {models.cache_dir() / 'models'}")
    for name in models.list_prepared():
        print(f"  {name}")


@config_app.command("show")
def config_show(config: ConfigOpt, set_: SetOpt = None) -> None:
    """Print the resolved config (defaults filled in, overrides applied)."""
    from firmlm.config import dump_config

    print(dump_config(load_config(config, set_ or [])), end="")


@config_app.command("reference")
def config_reference() -> None:
    """Print the config reference (every key, type, default, meaning) as Markdown."""
    from firmlm.config_reference import render

    print(render(), end="")


@app.command()
def version() -> None:
    """Print the firmlm version."""
    print(__version__)


def main() -> None:
    _setup_logging()
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n here
    except FirmlmError as exc:
        prefix = "[red]error:[/]" if exc.exit_code else "[yellow]stopped:[/]"
        console.print(f"{prefix} {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors come through here with standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)
