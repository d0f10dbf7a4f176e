"""Progress bars (rich, on stderr) for long work: training steps, documents scored, samples generated.

Every bar draws on :data:`console`, the stderr console the CLI's log handler also uses, so log lines print
above a live bar instead of tearing it. Bars are ``transient`` (erased when done: the logs and the summary
stay readable) and ``disable``d unless the console is interactive: stderr a real TTY and TERM not dumb
(``TTY_INTERACTIVE=0`` also turns them off). In CI logs and pipes a bar would add nothing but control codes
or a final frame, and the logs already carry the same figures; FORCE_COLOR does not turn bars on. stdout
is never redirected: it carries ``--json`` documents.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


console = Console(stderr=True, force_interactive=None if _isatty(sys.stderr) else False)
_live: set[Progress] = set()


def enabled(target: Console | None = None) -> bool:
    """Whether bars draw on ``target`` (default :data:`console`)."""
    return (target or console).is_interactive


def _progress(*columns: str | ProgressColumn, target: Console | None) -> Progress:
    target = target or console
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), *columns,
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=target, transient=True, disable=not enabled(target), redirect_stdout=False,
    )


def _start(progress: Progress) -> None:
    progress.start()
    _live.add(progress)


def _stop(progress: Progress) -> None:
    _live.discard(progress)
    progress.stop()


@atexit.register
def _stop_all() -> None:
    """Erase bars a crash left running (restores the cursor)."""
    for progress in list(_live):
        _stop(progress)


@contextmanager
def bar(description: str, total: int | None, *, unit: str = "", console: Console | None = None
        ) -> Iterator[Callable[[int], None]]:
    """A bar for ``total`` items (None: unknown); yields ``advance(n)``, which counts ``n`` more done.

    >>> with bar("perplexity base heldout", total=len(texts), unit="docs") as advance:
    ...     score_texts(..., progress=advance)
    """
    progress = _progress(MofNCompleteColumn(), TextColumn(unit), target=console)
    task = progress.add_task(description, total=total)
    _start(progress)
    try:
        yield lambda n=1: progress.advance(task, n)
    finally:
        _stop(progress)


class StepBar:
    """Optimizer steps of a training run: step/total, the last loss, tokens/s and the ETA."""

    def __init__(self, description: str = "train", console: Console | None = None):
        self.description = description
        self.console = console
        self.progress: Progress | None = None
        self.task = None

    def start(self, total: int, done: int = 0) -> None:
        """Open the bar at ``done`` of ``total`` steps (a resumed run starts part-way)."""
        self.progress = _progress(MofNCompleteColumn(), TextColumn("steps  loss {task.fields[loss]}"),
                                  TextColumn("{task.fields[tokens_per_s]} tokens/s"), target=self.console)
        self.task = self.progress.add_task(self.description, total=total, completed=done, loss="–", tokens_per_s="–")
        _start(self.progress)

    def update(self, step: int, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        if self.progress is None:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if tokens_per_s is not None:
            fields["tokens_per_s"] = f"{tokens_per_s:,.0f}"
        self.progress.update(self.task, completed=step, **fields)

    def close(self) -> None:
        if self.progress is not None:
            _stop(self.progress)
            self.progress = None
