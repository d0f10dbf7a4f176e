"""Where a task's code is built and run. ``host``: the machine's gcc, for portable C (CRC, ring buffers,
fixed point, parsers). The emulated targets (QEMU boards, Icarus Verilog) are named in the task format and not
implemented yet: :func:`target_for` returns None for them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

from firmlm.exec.tasks import ExecTask

SOLUTION = "solution.c"
HARNESS = "harness.c"
PROGRAM = "program"


class Target(Protocol):
    """Builds and runs a task's solution with its harness."""

    name: str

    def unavailable(self) -> str | None:
        """Why the target cannot run here (a missing toolchain), or None."""
        ...

    def write_sources(self, workdir: Path, task: ExecTask, source: str) -> None: ...

    def build_command(self, task: ExecTask) -> list[str]: ...

    def run_command(self, task: ExecTask) -> list[str]: ...


class HostTarget:
    """The host C compiler (C11, warnings on, ``-lm``); the program runs directly."""

    name = "host"
    compiler = "gcc"
    base_flags = ("-std=c11", "-O2", "-Wall", "-Wno-unused-function")

    def unavailable(self) -> str | None:
        return None if shutil.which(self.compiler) else f"target host needs {self.compiler} (apt-get install gcc)"

    def write_sources(self, workdir: Path, task: ExecTask, source: str) -> None:
        (workdir / SOLUTION).write_text(source, encoding="utf-8")
        (workdir / HARNESS).write_text(task.harness, encoding="utf-8")

    def build_command(self, task: ExecTask) -> list[str]:
        return [self.compiler, *self.base_flags, *task.build_flags, "-o", PROGRAM, HARNESS, SOLUTION, "-lm"]

    def run_command(self, task: ExecTask) -> list[str]:
        return [f"./{PROGRAM}"]


TARGETS: dict[str, Target] = {"host": HostTarget()}


def target_for(name: str) -> Target | None:
    """The implemented target called ``name``, or None."""
    return TARGETS.get(name)
