"""Where a task's code is built and run.

``host``: the machine's gcc, for portable C (CRC, ring buffers, fixed point, parsers). The Cortex-M boards run in
QEMU (``qemu-system-arm``, Debian 7.2), built with ``arm-none-eabi-gcc`` and newlib-nano against firmlm's own
startup code and linker script (``runtime/``): ``main``'s return value is QEMU's exit status and ``printf`` reaches
the host's stdout, both through ARM semihosting; a fault exits with 134. ``qemu-stm32f405`` is the
``netduinoplus2`` board (QEMU models USART, TIM2-5, ADC, SPI, EXTI and SYSCFG there, not RCC, GPIO or DMA),
``qemu-mps2-an386`` ARM's MPS2 Cortex-M4 image, ``qemu-nrf51`` the BBC micro:bit (Cortex-M0). ``rtl-iverilog``
simulates a Verilog module with Icarus Verilog against the task's testbench.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
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


ELF = "program.elf"
STARTUP = "startup.c"
LINKER_SCRIPT = "link.ld"


def _runtime(name: str) -> str:
    return resources.files("firmlm.exec").joinpath("runtime", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class QemuCortexMTarget:
    """A Cortex-M board in qemu-system-arm; its image links at ``flash`` and keeps data and stack in ``ram``."""

    name: str
    machine: str
    cpu: str  # -mcpu for gcc
    flash: tuple[int, int]  # origin, length
    ram: tuple[int, int]
    compiler: str = "arm-none-eabi-gcc"
    emulator: str = "qemu-system-arm"

    def unavailable(self) -> str | None:
        missing = [tool for tool in (self.compiler, self.emulator) if shutil.which(tool) is None]
        if missing:
            return (f"target {self.name} needs {', '.join(missing)} (apt-get install gcc-arm-none-eabi "
                    f"libnewlib-arm-none-eabi qemu-system-arm)")
        return None

    def write_sources(self, workdir: Path, task: ExecTask, source: str) -> None:
        (workdir / SOLUTION).write_text(source, encoding="utf-8")
        (workdir / HARNESS).write_text(task.harness, encoding="utf-8")
        (workdir / STARTUP).write_text(_runtime("cortex_m_startup.c"), encoding="utf-8")
        script = _runtime("cortex_m.ld")
        for key, value in (("FLASH_ORIGIN", self.flash[0]), ("FLASH_LENGTH", self.flash[1]),
                           ("RAM_ORIGIN", self.ram[0]), ("RAM_LENGTH", self.ram[1])):
            script = script.replace(f"@{key}@", f"0x{value:08X}")
        (workdir / LINKER_SCRIPT).write_text(script, encoding="utf-8")

    def build_command(self, task: ExecTask) -> list[str]:
        return [self.compiler, f"-mcpu={self.cpu}", "-mthumb", "-std=c11", "-O1", "-g", "-Wall",
                "-ffunction-sections", "--specs=nano.specs", "-nostartfiles", "-T", LINKER_SCRIPT,
                *task.build_flags, "-o", ELF, STARTUP, HARNESS, SOLUTION, "-lm"]

    def run_command(self, task: ExecTask) -> list[str]:
        return [self.emulator, "-M", self.machine, "-display", "none", "-monitor", "none", "-serial", "null",
                "-accel", "tcg,tb-size=64", "-chardev", "stdio,id=semihosting,signal=off",
                "-semihosting-config", "enable=on,target=native,chardev=semihosting", "-kernel", ELF]


@dataclass(frozen=True)
class IverilogTarget:
    """Verilog RTL simulated with Icarus Verilog: the task's harness is the testbench (it prints what is checked
    and calls ``$finish``), the solution the module under test."""

    name: str = "rtl-iverilog"

    def unavailable(self) -> str | None:
        missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
        return f"target {self.name} needs {', '.join(missing)} (apt-get install iverilog)" if missing else None

    def write_sources(self, workdir: Path, task: ExecTask, source: str) -> None:
        (workdir / "solution.v").write_text(source, encoding="utf-8")
        (workdir / "testbench.v").write_text(task.harness, encoding="utf-8")

    def build_command(self, task: ExecTask) -> list[str]:
        return ["iverilog", "-g2012", "-Wall", *task.build_flags, "-o", "simulation", "testbench.v", "solution.v"]

    def run_command(self, task: ExecTask) -> list[str]:
        return ["vvp", "-n", "simulation"]


TARGETS: dict[str, Target] = {
    "rtl-iverilog": IverilogTarget(),
    "host": HostTarget(),
    "qemu-stm32f405": QemuCortexMTarget("qemu-stm32f405", "netduinoplus2", "cortex-m4",
                                        (0x08000000, 1024 << 10), (0x20000000, 128 << 10)),
    "qemu-mps2-an386": QemuCortexMTarget("qemu-mps2-an386", "mps2-an386", "cortex-m4",
                                         (0x00000000, 4 << 20), (0x20000000, 4 << 20)),
    "qemu-nrf51": QemuCortexMTarget("qemu-nrf51", "microbit", "cortex-m0", (0x00000000, 256 << 10),
                                    (0x20000000, 16 << 10)),
}


def target_for(name: str) -> Target | None:
    """The implemented target called ``name``, or None."""
    return TARGETS.get(name)
