"""Execution tasks: one YAML file each, read into a checked :class:`ExecTask`.

A task gives a model a ``prompt`` (completion models: the file head, includes, doc comment and signature) or an
``instruction`` (chat models), and checks the answer by building it with the task's ``harness`` (C code that calls
the solution) for its ``target`` and running it: the run must exit with ``expected_exit`` and, when given, print
``expected_output``. ``reference`` is a solution that passes and every ``wrong`` one must fail, which
``firmlm exec --check-references`` verifies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from firmlm.config import ExecTarget, read_yaml_file
from firmlm.errors import ConfigError

TARGETS = get_args(ExecTarget)
TASK_SUFFIXES = (".yaml", ".yml")


class UnmodelledWrite(BaseModel):
    """A write QEMU's ``-d unimp`` log must show: to ``device`` (QEMU's name, e.g. ``RCC``) at ``offset`` from its
    base, with every bit of ``bits`` set in the value written (0: any write)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = Field(min_length=1)
    offset: int = Field(ge=0)
    bits: int = Field(0, ge=0)
    why: str = Field("", description="What the write does (shown when it is missing), e.g. 'USART2 clock enable'.")


class ExecTask(BaseModel):
    """One task; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Unique within a suite.")
    level: int = Field(ge=1, le=5, description="1 (a pure function) to 5 (a peripheral driver with interrupts).")
    target: ExecTarget
    kind: Literal["firmware", "general"] = Field(
        "firmware", description="`general`: portable code outside the domain (the forgetting check), scored apart.")
    description: str = ""
    prompt: str = Field(min_length=1, description="For completion models: the solution file up to the body.")
    instruction: str = Field(min_length=1, description="For chat models: what to write, in words.")
    harness: str = Field(min_length=1, description="C code that calls the solution and reports the result.")
    expected_output: str | None = Field(None, description="What the run must print (stdout), exactly.")
    expected_exit: int = Field(0, description="The run's exit status.")
    expected_uart: str | None = Field(None, description="QEMU targets: what the board's first UART (USART1 on the "
                                      "STM32F405, UART0 on the nRF51 and the MPS2) must have sent, exactly.")
    build_flags: list[str] = Field(default_factory=list, description="Extra compiler flags.")
    time_limit_s: float = Field(5.0, gt=0, le=120, description="Wall time of the run.")
    unmodelled_writes: list[UnmodelledWrite] = Field(
        default_factory=list, description="QEMU targets: writes to peripherals QEMU does not model (RCC, GPIO on the "
        "STM32F405) that the run must make, read from QEMU's `-d unimp` log.")
    reference: str = Field(min_length=1, description="A whole solution file that passes.")
    wrong: list[str] = Field(min_length=1, description="Whole solution files that must fail.")
    path: Path | None = Field(None, exclude=True, description="The file the task was read from.")

    @field_validator("expected_uart", "unmodelled_writes")
    @classmethod
    def _emulator_checks_need_qemu(cls, value: Any, info: ValidationInfo) -> Any:
        target = info.data.get("target", "")
        if value and not target.startswith("qemu-"):
            raise ValueError(f"needs a QEMU target, not {target}")
        return value


class TaskFileError(ConfigError):
    """A task file that cannot be used; the message names the file and key."""


def read_task(path: Path) -> ExecTask:
    """One task file, checked; a :class:`TaskFileError` names the file and the key at fault."""
    data = read_yaml_file(path, error=TaskFileError)
    if not isinstance(data, dict):
        raise TaskFileError(f"{path}: expected a mapping of task keys (id, level, target, prompt, ...), "
                            f"found {type(data).__name__}")
    try:
        return ExecTask(**data, path=Path(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(task)"
        expected = f"one of {', '.join(TARGETS)}" if key == "target" else first["msg"]
        raise TaskFileError(f"{path}: key `{key}`: {expected}") from None


def task_files(folder: Path) -> list[Path]:
    """The task files under ``folder`` (recursive, sorted), or ``folder`` itself when it is one file."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise ConfigError(f"exec tasks: {folder}: no such file or folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in TASK_SUFFIXES)


def load_tasks(folder: Path) -> tuple[list[ExecTask], list[dict[str, str]]]:
    """Every readable task under ``folder`` and, for the others, ``{"file", "reason"}``; repeated ids are errors
    of the later file."""
    tasks: list[ExecTask] = []
    errors: list[dict[str, str]] = []
    seen: dict[str, Path] = {}
    for path in task_files(folder):
        try:
            task = read_task(path)
        except TaskFileError as exc:
            errors.append({"file": str(path), "reason": str(exc)})
            continue
        if task.id in seen:
            errors.append({"file": str(path), "reason": f"{path}: key `id`: {task.id!r} is already the id of "
                                                        f"{seen[task.id]}"})
            continue
        seen[task.id] = path
        tasks.append(task)
    return tasks, errors
