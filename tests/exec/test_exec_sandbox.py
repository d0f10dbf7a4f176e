"""The sandbox holds hostile programs: endless loops, fork bombs, floods of output, writes outside its folder,
network connections."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from firmlm.exec.sandbox import Limits, isolation, prepare_workdir, run_sandboxed

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
ISOLATED = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt bubblewrap)")


@ISOLATED
def test_bubblewrap_isolates_where_it_is_installed():
    """An installed bwrap that fails its probe would silently leave builds unisolated: that is an error here."""
    assert isolation().filesystem and isolation().network, isolation().reason


def _program(source: str) -> tuple[Path, list[str]]:
    workdir = prepare_workdir()
    (workdir / "p.c").write_text(source)
    build = run_sandboxed(["gcc", "-O0", "-o", "p", "p.c"], workdir)
    assert build.returncode == 0, build.stderr
    return workdir, ["./p"]


def test_an_endless_loop_is_stopped_at_the_wall_time():
    workdir, argv = _program("int main(void) { for (;;) {} }\n")
    result = run_sandboxed(argv, workdir, Limits(wall_s=1.0, cpu_s=30))
    assert result.timed_out and result.wall_s < 5


def test_cpu_time_is_limited_even_with_a_generous_wall_time():
    workdir, argv = _program("int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n")
    result = run_sandboxed(argv, workdir, Limits(wall_s=20, cpu_s=1))
    assert not result.timed_out and result.returncode < 0 and result.wall_s < 10  # SIGXCPU or SIGKILL


def test_a_fork_bomb_is_contained():
    workdir, argv = _program("#include <unistd.h>\nint main(void) { for (;;) fork(); }\n")
    result = run_sandboxed(argv, workdir, Limits(wall_s=2, cpu_s=2, processes=32))
    assert result.timed_out or result.returncode != 0
    survivors = subprocess.run(["pgrep", "-f", str(workdir / "p")], capture_output=True, text=True).stdout
    assert not survivors.strip(), f"processes left: {survivors}"


def test_a_gigabyte_of_output_is_capped():
    workdir, argv = _program('#include <stdio.h>\nint main(void) { for (long i = 0; i < (1L << 27); i++) '
                             'fputs("xxxxxxxx", stdout); return 0; }\n')
    result = run_sandboxed(argv, workdir, Limits(wall_s=20, output_bytes=1 << 16))
    assert result.output_capped and len(result.stdout) <= 1 << 16


def test_memory_is_limited():
    workdir, argv = _program("#include <stdlib.h>\n#include <string.h>\nint main(void) { char *p = malloc(1L << 31);"
                             " if (!p) return 3; memset(p, 1, 1L << 31); return 0; }\n")
    result = run_sandboxed(argv, workdir, Limits(memory_mb=256))
    assert result.returncode == 3 or result.returncode < 0


@ISOLATED
def test_writes_outside_the_work_folder_fail():
    import uuid

    target = Path("/var/tmp") / f"firmlm-escape-{uuid.uuid4().hex}.txt"  # world-writable, not the sandbox's /tmp
    workdir, argv = _program(f'#include <stdio.h>\nint main(void) {{ FILE *f = fopen("{target}", "w"); '
                             f'if (!f) return 4; fputs("x", f); fclose(f); '
                             f'FILE *g = fopen("inside.txt", "w"); if (!g) return 5; fclose(g); return 0; }}\n')
    try:
        result = run_sandboxed(argv, workdir)
        assert result.returncode == 4 and not target.exists()
        assert subprocess.run([str(workdir / "p")], cwd=workdir).returncode == 0 and target.exists()  # unsandboxed
    finally:
        target.unlink(missing_ok=True)


@ISOLATED
def test_there_is_no_network():
    import socket

    workdir, argv = _program(
        "#include <arpa/inet.h>\n#include <netinet/in.h>\n#include <stdlib.h>\n#include <sys/socket.h>\n"
        "#include <unistd.h>\n"
        "int main(int argc, char **argv) { int s = socket(AF_INET, SOCK_STREAM, 0); if (s < 0) return 7;\n"
        "struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));\n"
        "a.sin_addr.s_addr = htonl(0x7f000001);\n"
        "int r = connect(s, (struct sockaddr *)&a, sizeof a); close(s); return r == 0 ? 0 : 6; }\n")
    with socket.socket() as server:  # a real listener on this machine's loopback
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = str(server.getsockname()[1])
        reachable = subprocess.run([str(workdir / "p"), port]).returncode  # outside the sandbox: connects
        result = run_sandboxed([*argv, port], workdir)
    assert reachable == 0
    assert result.returncode in (6, 7), result.stderr  # inside: no interface is up, not even loopback
    assert result.isolation.network and "no network" in result.isolation.summary


def test_a_missing_program_is_exit_127():
    result = run_sandboxed(["./does-not-exist"], prepare_workdir())
    assert result.returncode != 0


def test_parallel_sandboxes_do_not_share_the_process_limit():
    """Three sandboxes at once, each running 40 processes under a limit of 64: each has a budget of its own."""
    from concurrent.futures import ThreadPoolExecutor

    source = ("#include <sys/wait.h>\n#include <unistd.h>\nint main(void) { for (int i = 0; i < 40; i++) { "
              "pid_t p = fork(); if (p < 0) return 7; if (p == 0) { sleep(1); _exit(0); } } "
              "while (wait(0) > 0) {} return 0; }\n")
    programs = [_program(source) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda p: run_sandboxed(p[1], p[0], Limits(processes=64, wall_s=20)), programs))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
