from __future__ import annotations

import shutil

import pytest

from firmlm.errors import SourceError
from firmlm.specmap.repository import RepositoryIndex, file_language

requires_ctags = pytest.mark.skipif(shutil.which("ctags") is None, reason="universal-ctags is not installed")


@pytest.mark.parametrize(
    "path, language",
    [("a/b.c", "c"), ("a/b.h", "c"), ("x.cpp", "cpp"), ("start.S", "asm"), ("boot.s", "asm"), ("soc.dtsi", "dts"),
     ("link.ld", "ld"), ("drivers/Kconfig", "kconfig"), ("Kconfig.debug", "kconfig"), ("Makefile", "make"),
     ("rules.mk", "make"), ("README.md", None), ("notes.txt", None), ("image.bin", None)],
)
def test_file_language(path, language):
    assert file_language(path) == language


@requires_ctags
def test_folders_files_and_symbols(firmware, tmp_path):
    index = RepositoryIndex.build(firmware, tmp_path / "cache")
    assert [f.path for f in index.folders] == [
        ".", "arch/arm/cpu", "arch/arm/dts", "board/demo", "drivers/i2c", "drivers/serial"]
    serial = next(f for f in index.folders if f.path == "drivers/serial")
    assert serial.files == ["drivers/serial/Kconfig", "drivers/serial/Makefile", "drivers/serial/stm32_usart.c",
                            "drivers/serial/stm32_usart.h"]
    files = {f.path: f for f in index.files}
    assert "README.md" not in files and "drivers/serial/README" not in files
    assert files["arch/arm/cpu/start.S"].language == "asm" and files["board/demo/link.ld"].language == "ld"
    header = files["drivers/serial/stm32_usart.h"]
    assert header.comment == "STM32F4 USART register map and polled console driver interface."
    assert header.size == (firmware / header.path).stat().st_size
    assert {"USART_CR1_UE", "stm32_usart_init", "stm32_usart_regs"} <= set(header.symbols)
    assert header.symbols.index("USART1_BASE") < header.symbols.index("USART_CR1_UE")  # line order
    assert "STM32_USART_H" not in header.symbols  # include guards are not definitions worth mapping
    assert files["drivers/serial/Kconfig"].comment.startswith("Serial drivers. STM32_SERIAL STM32 serial port")
    assert files["arch/arm/cpu/start.S"].comment.startswith("Reset handler: set up the stack")
    assert any(s.name == "i2cMasterRead" for s in index.symbols)
    assert index.reason is None


@requires_ctags
def test_folder_description_uses_readme_kconfig_and_comments(firmware, tmp_path):
    index = RepositoryIndex.build(firmware, tmp_path / "cache")
    folders = {f.path: f.description for f in index.folders}
    serial = folders["drivers/serial"]
    assert serial.startswith("drivers serial. stm32 usart. Serial console drivers.")
    assert "115200 baud" in serial  # README
    assert "universal synchronous asynchronous receiver transmitter" in serial  # Kconfig help
    assert "Polled driver for the STM32F4 USART" in serial  # header comment
    assert "Serial console: STM32 polled driver" in serial  # Makefile comment
    assert "SPDX" not in serial and "Copyright" not in serial
    assert "temperature sensor" in folders["drivers/i2c"]
    assert folders["."].startswith("firmware. demo-fw Demo boot firmware for STM32F4 boards")
    assert "CROSS_COMPILE" in folders["."] and "Top-level build" in folders["."]
    assert all(len(d) <= 600 for d in folders.values())


@requires_ctags
def test_description_is_capped(firmware, tmp_path):
    (firmware / "drivers/serial/README").write_text("serial " * 500)
    for n in range(40):
        (firmware / f"drivers/serial/uart_variant_{n}_driver.c").write_text(f"/* Variant {n} of the UART. */\n")
    serial = next(f for f in RepositoryIndex.build(firmware).folders if f.path == "drivers/serial")
    assert 500 < len(serial.description) <= 600


@requires_ctags
def test_build_is_deterministic_and_cached(firmware, tmp_path):
    first = RepositoryIndex.build(firmware, tmp_path / "cache").as_dict()
    second = RepositoryIndex.build(firmware, tmp_path / "cache").as_dict()
    assert first == second and first["root"] == str(firmware)


@requires_ctags
def test_candidates(firmware, tmp_path):
    index = RepositoryIndex.build(firmware, tmp_path / "cache")
    assert [c.id for c in index.folder_candidates()] == [f.path for f in index.folders]
    files = index.file_candidates(["drivers/i2c"])
    assert [c.id for c in files] == ["drivers/i2c/Kconfig", "drivers/i2c/Makefile", "drivers/i2c/stm32_i2c.c",
                                     "drivers/i2c/stm32_i2c.h"]
    assert "i2cMasterRead" in files[2].text
    symbols = index.symbol_candidates(["drivers/serial/stm32_usart.h"])
    assert symbols and all(c.id.startswith("drivers/serial/stm32_usart.h:") for c in symbols)
    assert len({c.id for c in index.symbol_candidates()}) == len(index.symbols)


def test_repository_without_indexed_files(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "manual.txt").write_text("reference manual\n")
    index = RepositoryIndex.build(tmp_path, tmp_path / "cache")
    assert (index.folders, index.files, index.symbols) == ([], [], [])
    assert "no C, C++, assembly" in index.reason


def test_empty_repository_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="empty"):
        RepositoryIndex.build(tmp_path)
