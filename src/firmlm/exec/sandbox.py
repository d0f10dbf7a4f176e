"""Running untrusted builds and programs: a fresh work folder, limits, no network, nothing written outside.

Every command runs under bubblewrap (``bwrap``, Debian package ``bubblewrap``) when it works here: the whole file
system read-only except the work folder and a private ``/tmp``, new network, PID, IPC and UTS namespaces (no
network at all, not even loopback), killed with its parent. Run as root, the command drops to a user id of its
own (one per work folder, from a range no account uses) so that the process limit holds (the kernel exempts root
from it) and parallel sandboxes do not share it. Resource limits (setrlimit) in every case: CPU seconds,
address space, file size (which also caps what the program can print: its output goes to files), processes, no
core dumps. Wall time is enforced by killing the whole process group. Without a working bwrap the limits still
apply but the file system and the network are not isolated, and :attr:`Isolation.summary` says so.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

NOBODY = 65534
SANDBOX_UIDS = (200_000, 210_000)  # user ids no account uses: one per sandbox when firmlm runs as root
OUTPUT_FILES = ("stdout", "stderr")


@dataclass(frozen=True)
class Limits:
    """What one command may use."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    output_bytes: int = 1 << 20  # per stream, and per file it writes
    processes: int = 64


@dataclass(frozen=True)
class Isolation:
    """Which protections apply beyond the resource limits."""

    filesystem: bool
    network: bool
    reason: str = ""

    @property
    def summary(self) -> str:
        if self.filesystem and self.network:
            return "bubblewrap: read-only file system outside the work folder, no network"
        return f"resource limits only, no file-system or network isolation ({self.reason})"


@dataclass
class SandboxResult:
    """How a command ended: exit status (negative: the signal that killed it; under bwrap an exit status above 128
    reads as a signal too), its output (capped), wall time."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False
    output_capped: bool = False
    isolation: Isolation = field(default_factory=lambda: Isolation(False, False, "not run"))


@lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Whether bubblewrap works on this machine (tried once with ``true``)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Isolation(False, False, "bwrap not installed: apt-get install bubblewrap")
    folder = prepare_workdir()
    try:
        owner = folder.stat().st_uid
        done = subprocess.run(_bwrap_argv(folder, ["true"]), capture_output=True, timeout=30,
                              preexec_fn=lambda: _drop_privileges(owner))
    except (OSError, subprocess.SubprocessError) as exc:
        return Isolation(False, False, f"bwrap failed to start: {exc}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        return Isolation(False, False, f"bwrap failed: {message[-1] if message else done.returncode}")
    return Isolation(True, True)


def _bwrap_argv(workdir: Path, argv: list[str]) -> list[str]:
    return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--bind", str(workdir), str(workdir), "--unshare-all", "--die-with-parent", "--new-session",
            "--chdir", str(workdir), "--", *argv]


def _drop_privileges(uid: int = NOBODY) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(uid)


def _processes_of(uid: int) -> int:
    """Processes (threads count too) the user already runs, as RLIMIT_NPROC counts them."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if int(fields["Uid"].split()[1]) == uid:
                count += int(fields.get("Threads", "1"))
        except (OSError, ValueError, IndexError, KeyError):
            continue
    return count


def _limiter(limits: Limits, uid: int):
    """Limits for the child. RLIMIT_NPROC counts every process of the user: as root each sandbox runs as a user
    of its own (its work folder's owner), so parallel sandboxes do not share the budget; as another user the budget
    is added to what that user already runs."""
    processes = limits.processes if os.geteuid() == 0 else limits.processes + _processes_of(os.geteuid())

    def apply() -> None:
        memory = limits.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _drop_privileges(uid)  # before RLIMIT_NPROC: root is exempt from it
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

    return apply


_uids = itertools.count()


def prepare_workdir(parent: Path | None = None) -> Path:
    """A fresh work folder the sandboxed user may write: as root, a user id of its own from an unused range (one
    per work folder, so the process limit of parallel sandboxes is not shared), owning the folder."""
    folder = Path(tempfile.mkdtemp(prefix="firmlm-exec-", dir=parent))
    if os.geteuid() == 0:
        os.chown(folder, SANDBOX_UIDS[0] + next(_uids) % (SANDBOX_UIDS[1] - SANDBOX_UIDS[0]), NOBODY)
    return folder


def run_sandboxed(argv: list[str], workdir: Path, limits: Limits | None = None, stdin: str = "") -> SandboxResult:
    """Run ``argv`` in ``workdir`` (see :func:`prepare_workdir`) under ``limits``; never raises for the program's
    own failures (a missing executable is exit status 127)."""
    limits = limits or Limits()
    iso = isolation()
    command = _bwrap_argv(workdir, argv) if iso.filesystem else list(argv)
    with tempfile.TemporaryDirectory(prefix="firmlm-exec-out-") as capture:
        paths = {name: Path(capture) / name for name in OUTPUT_FILES}
        started = time.perf_counter()
        timed_out = False
        with open(paths["stdout"], "wb") as out, open(paths["stderr"], "wb") as err:
            try:
                uid = workdir.stat().st_uid if os.geteuid() == 0 else os.geteuid()
                process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                           preexec_fn=_limiter(limits, uid), start_new_session=True)
            except OSError as exc:
                return SandboxResult(127, "", f"{argv[0]}: {exc.strerror or exc}", 0.0, isolation=iso)
            try:
                process.communicate(stdin.encode(), timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process)
            except BrokenPipeError:  # the program did not read its input
                process.wait(timeout=limits.wall_s)
        wall = time.perf_counter() - started
        texts, capped = {}, False
        for name, path in paths.items():
            data = path.read_bytes()
            capped = capped or len(data) >= limits.output_bytes
            texts[name] = data[: limits.output_bytes].decode("utf-8", errors="replace")
    code = process.returncode
    if iso.filesystem and code > 128:  # bwrap reports a child killed by signal N as 128 + N, as a shell does
        code = -(code - 128)
    return SandboxResult(code, texts["stdout"], texts["stderr"], round(wall, 3), timed_out,
                         capped or code == -signal.SIGXFSZ, iso)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
