from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from firmlm.errors import FirmlmError, SourceError
from firmlm.specmap import symbols as symbols_mod
from firmlm.specmap.symbols import CtagsError, extract_symbols, list_files, parse_ctags_json

requires_ctags = pytest.mark.skipif(shutil.which("ctags") is None, reason="universal-ctags is not installed")


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line of ``path`` containing ``needle``."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def _find(scan, name, path):
    found = [s for s in scan.symbols if s.name == name and s.path == path]
    assert len(found) == 1, (name, path, found)
    return found[0]


@requires_ctags
def test_symbols_kinds_lines_and_scopes(firmware, tmp_path):
    scan = extract_symbols(firmware, tmp_path / "cache")
    header, source = "drivers/serial/stm32_usart.h", "drivers/serial/stm32_usart.c"
    ue = _find(scan, "USART_CR1_UE", header)
    assert (ue.kind, ue.line, ue.language) == ("macro", line_of(firmware / header, "define USART_CR1_UE"), "C")
    init = _find(scan, "stm32_usart_init", source)
    assert init.kind == "function" and init.line == line_of(firmware / source, "int stm32_usart_init(")
    assert init.end == line_of(firmware / source, "void stm32_usart_putc(") - 2
    assert init.signature == "(uint32_t base,uint32_t pclk,uint32_t baud)"
    assert _find(scan, "stm32_usart_init", header).kind == "prototype"
    assert _find(scan, "stm32_usart_regs", header).kind == "struct"
    cr1 = _find(scan, "cr1", header)
    assert (cr1.kind, cr1.scope, cr1.scope_kind) == ("member", "stm32_usart_regs", "struct")
    assert _find(scan, "USART_PARITY_ODD", header).kind == "enumerator"
    assert _find(scan, "usart_parity", header).kind == "enum"
    assert _find(scan, "Reset_Handler", "arch/arm/cpu/start.S").kind == "label"
    assert _find(scan, "usart1", "arch/arm/dts/stm32f4.dtsi").kind == "label"
    assert _find(scan, "main", "board/demo/board.c").kind == "function"


@requires_ctags
def test_anonymous_typedef_struct_takes_typedef_name(firmware, tmp_path):
    scan = extract_symbols(firmware, tmp_path / "cache")
    header = "drivers/i2c/stm32_i2c.h"
    kinds = {s.kind for s in scan.symbols if s.name == "I2C_TypeDef"}
    assert kinds == {"struct", "typedef"}
    assert _find(scan, "SR1", header).scope == "I2C_TypeDef"
    assert not any(s.name.startswith("__anon") or (s.scope or "").startswith("__anon") for s in scan.symbols)


@requires_ctags
def test_order_is_deterministic_and_paths_relative(firmware, tmp_path):
    scan = extract_symbols(firmware)
    keys = [(s.path, s.line, s.name, s.kind) for s in scan.symbols]
    assert keys == sorted(keys)
    assert all(not s.path.startswith(("/", "./")) for s in scan.symbols)


@requires_ctags
def test_cache_hit_does_not_rerun_ctags(firmware, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = extract_symbols(firmware, cache)
    assert not first.cached and len(list(cache.glob("*.json"))) == 1

    def no_ctags(*args, **kwargs):
        raise AssertionError("ctags ran although the cache is current")

    monkeypatch.setattr(subprocess, "run", no_ctags)
    second = extract_symbols(firmware, cache)
    assert second.cached and second.symbols == first.symbols


@requires_ctags
def test_cache_key_follows_content_not_mtime(firmware, tmp_path):
    cache = tmp_path / "cache"
    extract_symbols(firmware, cache)
    header = firmware / "drivers/serial/stm32_usart.h"
    stat = header.stat()
    header.write_text(header.read_text().replace("USART_CR1_UE", "USART_CR1_XX"))
    os.utime(header, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    scan = extract_symbols(firmware, cache)
    assert not scan.cached
    assert "USART_CR1_XX" in {s.name for s in scan.symbols}


@requires_ctags
def test_hidden_folders_and_build_outputs_are_skipped(firmware):
    for rel in (".git/hooks/x.c", "build/gen.c", "drivers/serial/.tmp/y.c"):
        (firmware / rel).parent.mkdir(parents=True, exist_ok=True)
        (firmware / rel).write_text("int hidden_symbol(void) { return 0; }\n")
    files = list_files(firmware)
    assert not any(".git" in f or f.startswith("build/") or ".tmp" in f for f in files)
    assert "hidden_symbol" not in {s.name for s in extract_symbols(firmware).symbols}


def test_repository_without_parsable_files_records_reason(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("# docs only\n")
    (tmp_path / "notes.txt").write_text("nothing to parse\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ctags must not run"))
    scan = extract_symbols(tmp_path, tmp_path / "cache")
    assert scan.symbols == [] and scan.files == 0
    assert "no C, C++, assembly or device-tree files" in scan.reason


def test_oversized_files_are_skipped_with_reason(tmp_path, monkeypatch):
    (tmp_path / "big.c").write_text("int x;\n" * 100)
    scan = extract_symbols(tmp_path, max_bytes=10)
    assert scan.symbols == [] and "over the 10-byte limit" in scan.skipped["big.c"] and scan.reason


@pytest.mark.parametrize("make", ["empty", "missing", "hidden-only"])
def test_empty_or_missing_repository_is_a_clear_error(tmp_path, make):
    root = tmp_path / "repo"
    if make != "missing":
        root.mkdir()
    if make == "hidden-only":
        (root / ".git").mkdir()
        (root / ".git" / "config").write_text("[core]\n")
    with pytest.raises(SourceError, match=str(root)):
        extract_symbols(root)


def test_missing_ctags_is_a_clear_error(firmware, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(CtagsError, match=r"apt-get install universal-ctags") as info:
        extract_symbols(firmware, tmp_path / "cache")
    assert isinstance(info.value, FirmlmError)


def test_ctags_without_json_support_is_a_clear_error(firmware, monkeypatch, tmp_path):
    fake = tmp_path / "bin" / "ctags"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'ctags: Unknown option: --output-format' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(CtagsError, match=r"Unknown option.*Universal Ctags"):
        extract_symbols(firmware)


def test_parse_ctags_json_ignores_pseudo_tags_and_garbage():
    lines = [
        '{"_type": "ptag", "name": "TAG_PROGRAM_NAME", "path": "Universal Ctags"}',
        "not json",
        '{"_type": "tag", "name": "f", "path": "./a.c", "line": 3, "kind": "function", "end": 5}',
    ]
    (sym,) = parse_ctags_json(lines)
    assert (sym.name, sym.path, sym.line, sym.end, sym.kind) == ("f", "a.c", 3, 5, "function")


def test_unreadable_cache_is_rebuilt(tmp_path, monkeypatch):
    (tmp_path / "a.c").write_text("int a;\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    key = symbols_mod.content_hash(tmp_path, ["a.c"])
    (cache / f"{key}.json").write_text("{truncated")
    monkeypatch.setattr(symbols_mod, "run_ctags", lambda root, paths: [])
    assert extract_symbols(tmp_path, cache).cached is False
