"""Progress bars: drawn on interactive terminals only, erased when done, driven by the training monitor."""

import io
import re
from types import SimpleNamespace

from rich.console import Console
from transformers import TrainerControl, TrainerState

from firmlm import progress
from firmlm.progress import StepBar, bar
from firmlm.train.monitor import StepRecord, StopRequest, TrainingMonitor


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, force_interactive=True, width=120)


def shown(console: Console) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())


def stopped(raw: str) -> bool:
    """The cursor was hidden while drawing and shown again, and the last frame erased (transient)."""
    return raw.startswith("\x1b[?25l") and raw.endswith("\x1b[?25h\r\x1b[1A\x1b[2K")


def test_bar_counts_and_is_erased_on_a_terminal():
    console = terminal()
    with bar("perplexity base heldout", total=10, unit="docs", console=console) as advance:
        advance(4)
        advance(6)
    raw, text = console.file.getvalue(), shown(console)
    assert "perplexity base heldout" in text and "10/10" in text and "docs" in text and "ETA" in text
    assert stopped(raw)
    assert not progress._live


def test_bar_draws_nothing_when_not_interactive():
    plain = Console(file=io.StringIO(), width=120)  # a file, like stderr in CI logs
    with bar("generation final heldout", total=3, unit="samples", console=plain) as advance:
        advance()
        advance(2)
    assert plain.file.getvalue() == ""
    assert not progress.enabled()  # pytest captures stderr: the default console is not a terminal


def test_bar_stops_when_the_work_raises():
    console = terminal()
    try:
        with bar("perplexity", total=5, console=console) as advance:
            advance(1)
            raise RuntimeError("model crashed")
    except RuntimeError:
        pass
    assert not progress._live and stopped(console.file.getvalue())


def _monitor(tmp_path, console: Console) -> TrainingMonitor:
    return TrainingMonitor(tmp_path, tokens_per_step=1024, record=StepRecord(), stop=StopRequest(),
                           bar=StepBar(console=console))


def test_training_monitor_drives_a_step_bar(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    console = terminal()
    monitor = _monitor(tmp_path, console)
    args, control = SimpleNamespace(), TrainerControl()
    state = TrainerState(global_step=2, max_steps=10)  # resumed at step 2
    monitor.on_train_begin(args, state, control)
    for step, loss in ((3, 2.47295), (4, 2.31234)):
        state.global_step = step
        monitor.on_log(args, state, control, logs={"loss": loss, "grad_norm": 0.9})
    assert monitor.bar.progress.tasks[0].completed == 4
    monitor.on_train_end(args, state, control)
    text = shown(console)
    assert "train" in text and "4/10 steps" in text and "loss 2.3123" in text and "tokens/s" in text
    assert monitor.bar.progress is None and not progress._live
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2  # metrics unchanged by the bar


def test_only_the_main_process_shows_the_training_bar(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    console = terminal()
    monitor = _monitor(tmp_path, console)
    state = TrainerState(global_step=0, max_steps=10)
    monitor.on_train_begin(SimpleNamespace(), state, TrainerControl())
    state.global_step = 1
    monitor.on_log(SimpleNamespace(), state, TrainerControl(), logs={"loss": 2.0})
    monitor.on_train_end(SimpleNamespace(), state, TrainerControl())
    assert monitor.bar.progress is None and console.file.getvalue() == ""
