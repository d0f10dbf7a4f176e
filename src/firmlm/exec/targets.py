"""Where a task's code is built and run.

``host``: the machine's gcc, for portable C (CRC, ring buffers, fixed point, parsers); ``host-cpp``: its g++
(C++17), for the general-code forgetting check. The Cortex-M boards run in
QEMU (``qemu-system-arm``, Debian 7.2), built with ``arm-none-eabi-gcc`` and newlib-nano against firmlm's own
startup code and linker script (``runtime/``): ``main``'s return value is QEMU's exit status and ``printf`` reaches
the host's stdout, both through ARM semihosting; a fault exits with 134. ``qemu-stm32f405`` is the
``netduinoplus2`` board (QEMU models USART, TIM2-5, ADC, SPI, EXTI and SYSCFG there, not RCC, GPIO or DMA),
``qemu-mps2-an386`` ARM's MPS2 Cortex-M4 image, ``qemu-nrf51`` the BBC micro:bit (Cortex-M0). Each build gets
``core_cm.h`` (NVIC, SCB, SysTick, CMSIS-Core functions) and, on the STM32F405 and the nRF51, the device header
generated from the vendor's SVD (``stm32f4xx.h``, ``nrf51.h``: ``USART2->BRR``, ``NRF_RNG->VALUE``, field
macros, ``TIM2_IRQn``), whose interrupt handlers go by their vendor names (``TIM2_IRQHandler``). ``rtl-iverilog``
simulates a Verilog module with Icarus Verilog against the task's testbench.
"""

from __future__ import annotations

import re
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

    def exit_meaning(self, status: int) -> str | None:
        """What an exit status means on this target beyond a plain failure, or None."""
        ...

    def check_after_run(self, task: ExecTask, workdir: Path) -> str | None:
        """Why a run that exited as expected still fails the task (from files it left), or None."""
        ...


class _NoRunChecks:
    """Targets whose exit statuses are the program's own and that check nothing after a run."""

    def exit_meaning(self, status: int) -> str | None:
        return None

    def check_after_run(self, task: ExecTask, workdir: Path) -> str | None:
        return None


@dataclass(frozen=True)
class HostTarget(_NoRunChecks):
    """A host compiler (warnings on, ``-lm``); the program runs directly. ``host`` is C11 with gcc, ``host-cpp``
    C++17 with g++ (solution and harness are then ``.cpp`` files)."""

    name: str = "host"
    compiler: str = "gcc"
    base_flags: tuple[str, ...] = ("-std=c11", "-O2", "-Wall", "-Wno-unused-function")
    suffix: str = ".c"
    package: str = "gcc"

    def unavailable(self) -> str | None:
        if shutil.which(self.compiler):
            return None
        return f"target {self.name} needs {self.compiler} (apt-get install {self.package})"

    def write_sources(self, workdir: Path, task: ExecTask, source: str) -> None:
        (workdir / self._solution).write_text(source, encoding="utf-8")
        (workdir / self._harness).write_text(task.harness, encoding="utf-8")

    @property
    def _solution(self) -> str:
        return Path(SOLUTION).with_suffix(self.suffix).name

    @property
    def _harness(self) -> str:
        return Path(HARNESS).with_suffix(self.suffix).name

    def build_command(self, task: ExecTask) -> list[str]:
        return [self.compiler, *self.base_flags, *task.build_flags, "-o", PROGRAM, self._harness, self._solution,
                "-lm"]

    def run_command(self, task: ExecTask) -> list[str]:
        return [f"./{PROGRAM}"]


ELF = "program.elf"
UNIMP_LOG = "unimp.log"
UART_LOG = "uart.log"
EXIT_MEANINGS = {134: "a fault (hard, memory, bus or usage)", 135: "an interrupt without a handler"}
_UNIMP_WRITE = re.compile(r"^(\S+): unimplemented device write \(size \d+, offset 0x([0-9a-fA-F]+), "
                          r"value 0x([0-9a-fA-F]+)\)", re.M)


def parse_unimp_log(text: str) -> dict[tuple[str, int], list[int]]:
    """Values written per (device, offset) in a QEMU ``-d unimp`` log, in order."""
    writes: dict[tuple[str, int], list[int]] = {}
    for device, offset, value in _UNIMP_WRITE.findall(text):
        writes.setdefault((device, int(offset, 16)), []).append(int(value, 16))
    return writes
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
    device_header: str | None = None  # generated from the device's SVD (runtime/, see device_header.py)
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
        (workdir / "core_cm.h").write_text(_runtime("core_cm.h"), encoding="utf-8")
        vectors = "generic_vectors.h"
        if self.device_header:
            (workdir / self.device_header).write_text(_runtime(self.device_header), encoding="utf-8")
            vectors = f"{Path(self.device_header).stem}_vectors.h"
        (workdir / "vectors.h").write_text(_runtime(vectors), encoding="utf-8")
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
        log = ["-d", "unimp", "-D", UNIMP_LOG] if task.unmodelled_writes else []
        serial = f"file:{UART_LOG}" if task.expected_uart is not None else "null"
        return [self.emulator, "-M", self.machine, "-display", "none", "-monitor", "none", "-serial", serial,
                "-accel", "tcg,tb-size=64", "-chardev", "stdio,id=semihosting,signal=off",
                "-semihosting-config", "enable=on,target=native,chardev=semihosting", *log, "-kernel", ELF]

    def exit_meaning(self, status: int) -> str | None:
        """What the startup code's own exit statuses mean (134: a fault, 135: an interrupt without a handler)."""
        return EXIT_MEANINGS.get(status)

    def check_after_run(self, task: ExecTask, workdir: Path) -> str | None:
        """Why the run fails the task's ``expected_uart`` or ``unmodelled_writes``, or None."""
        if task.expected_uart is not None:
            uart = workdir / UART_LOG
            sent = uart.read_bytes().decode("utf-8", errors="replace") if uart.is_file() else ""
            if sent != task.expected_uart:
                return f"the UART sent {sent[:200]!r}, expected {task.expected_uart[:200]!r}"
        if not task.unmodelled_writes:
            return None
        log_path = workdir / UNIMP_LOG
        writes = parse_unimp_log(log_path.read_text(errors="replace") if log_path.is_file() else "")
        for want in task.unmodelled_writes:
            values = writes.get((want.device, want.offset), [])
            if not any(v & want.bits == want.bits for v in values):
                what = f"bits 0x{want.bits:X} of " if want.bits else ""
                seen = f" (wrote {', '.join(f'0x{v:X}' for v in values[:4])})" if values else ""
                return (f"never set {what}{want.device}+0x{want.offset:03X}" + (f", {want.why}" if want.why else "")
                        + seen)
        return None


@dataclass(frozen=True)
class IverilogTarget(_NoRunChecks):
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
    "host-cpp": HostTarget("host-cpp", "g++", ("-std=c++17", "-O2", "-Wall", "-Wno-unused-function"), ".cpp", "g++"),
    "qemu-stm32f405": QemuCortexMTarget("qemu-stm32f405", "netduinoplus2", "cortex-m4",
                                        (0x08000000, 1024 << 10), (0x20000000, 128 << 10), "stm32f4xx.h"),
    "qemu-mps2-an386": QemuCortexMTarget("qemu-mps2-an386", "mps2-an386", "cortex-m4",
                                         (0x00000000, 4 << 20), (0x20000000, 4 << 20)),
    "qemu-nrf51": QemuCortexMTarget("qemu-nrf51", "microbit", "cortex-m0", (0x00000000, 256 << 10),
                                    (0x20000000, 16 << 10), "nrf51.h"),
}


def target_for(name: str) -> Target | None:
    """The implemented target called ``name``, or None."""
    return TARGETS.get(name)
