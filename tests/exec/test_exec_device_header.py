"""Device headers from SVD files: layout, names and macros checked by a C compiler, and the bundled ones current."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from firmlm.errors import DocumentError
from firmlm.exec.device_header import STYLES, HeaderStyle, fetch_cmsis_svd, render_header

SVD = """<?xml version="1.0" encoding="utf-8"?>
<device><name>DEMO1</name><size>32</size>
<peripherals>
  <peripheral><name>UARTA</name><groupName>UART</groupName><baseAddress>0x40001000</baseAddress>
    <interrupt><name>UARTA_IRQ</name><value>3</value></interrupt>
    <registers>
      <register><name>SR</name><addressOffset>0x0</addressOffset><access>read-only</access>
        <fields><field><name>TXE</name><bitOffset>7</bitOffset><bitWidth>1</bitWidth></field></fields></register>
      <register><name>DR</name><addressOffset>0x4</addressOffset><size>16</size></register>
      <register><name>CR</name><addressOffset>0x10</addressOffset>
        <fields><field><name>MODE</name><bitRange>[5:4]</bitRange></field></fields></register>
      <register><name>CCMR_Input</name><addressOffset>0x14</addressOffset></register>
      <register><name>CCMR_Output</name><addressOffset>0x14</addressOffset><alternateRegister>CCMR_Input</alternateRegister></register>
      <register><dim>4</dim><dimIncrement>4</dimIncrement><name>BUF[%s]</name><addressOffset>0x20</addressOffset></register>
      <register><dim>2</dim><dimIncrement>8</dimIncrement><dimIndex>1-2</dimIndex><name>CH%s</name><addressOffset>0x30</addressOffset></register>
      <cluster><dim>2</dim><dimIncrement>0x10</dimIncrement><name>SLOT[%s]</name><addressOffset>0x40</addressOffset>
        <register><name>CFG</name><addressOffset>0x0</addressOffset>
          <fields><field><name>EN</name><lsb>0</lsb><msb>0</msb></field></fields></register>
        <register><name>VAL</name><addressOffset>0x8</addressOffset></register>
      </cluster>
    </registers></peripheral>
  <peripheral derivedFrom="UARTA"><name>UARTB</name><baseAddress>0x40002000</baseAddress>
    <interrupt><name>UARTB_IRQ</name><value>7</value></interrupt></peripheral>
  <peripheral><name>UARTC</name><groupName>UART</groupName><baseAddress>0x40003000</baseAddress>
    <registers><register><name>ISR</name><addressOffset>0x0</addressOffset></register></registers></peripheral>
</peripherals></device>
"""

CHECKS = r"""
#include <stddef.h>
#include "demo.h"
_Static_assert(offsetof(UART_TypeDef, DR) == 0x04, "DR");
_Static_assert(sizeof(((UART_TypeDef *)0)->DR) == 2, "16-bit DR");
_Static_assert(offsetof(UART_TypeDef, CR) == 0x10, "a gap is reserved");
_Static_assert(offsetof(UART_TypeDef, CCMR) == 0x14 && offsetof(UART_TypeDef, CCMR_Output) == 0x14, "alternates");
_Static_assert(offsetof(UART_TypeDef, BUF[3]) == 0x2C, "a dim array");
_Static_assert(offsetof(UART_TypeDef, CH1) == 0x30 && offsetof(UART_TypeDef, CH2) == 0x38, "dim expanded");
_Static_assert(offsetof(UART_TypeDef, SLOT[1].VAL) == 0x58, "a cluster array with its stride");
_Static_assert(offsetof(UARTC_TypeDef, ISR) == 0, "an incompatible peripheral gets its own type");
_Static_assert(UARTB_BASE == 0x40002000UL && UARTA_IRQn == 3 && UARTB_IRQn == 7 && SysTick_IRQn == -1, "numbers");
_Static_assert(UART_SR_TXE == 0x80 && UART_CR_MODE_Msk == 0x30 && UART_CR_MODE_1 == 0x20, "field macros");
_Static_assert(UART_SLOT_CFG_EN_Pos == 0, "cluster field macros");
int main(void) { return UARTB->CR != 0; }
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_a_header_from_an_svd_compiles_with_the_layout_it_describes(tmp_path):
    (tmp_path / "demo.svd").write_text(SVD)
    header, vectors = render_header(tmp_path / "demo.svd", HeaderStyle("demo.h", "cortex-m4", 4, 8_000_000), "a test SVD")
    (tmp_path / "demo.h").write_text(header)
    (tmp_path / "core_cm.h").write_text(resources.files("firmlm.exec").joinpath("runtime", "core_cm.h").read_text())
    (tmp_path / "checks.c").write_text(CHECKS)
    done = subprocess.run(["gcc", "-std=c11", "-fsyntax-only", "-Wall", "-Werror", "checks.c"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "X(3, UARTA_IRQHandler)" in vectors and "X(7, UARTB_IRQHandler)" in vectors
    assert "#define FIRMLM_IRQ_COUNT 8" in vectors and "#define FIRMLM_CORE_CLOCK_HZ 8000000u" in vectors
    assert not vectors.rstrip().endswith("\\")  # no backslash-newline at the end of the file


def test_a_broken_svd_is_named(tmp_path):
    path = tmp_path / "broken.svd"
    path.write_text(SVD.replace("<addressOffset>0x10</addressOffset>", "<addressOffset>ten</addressOffset>"))
    with pytest.raises(DocumentError, match=rf"{path}: UARTA.CR: <addressOffset>"):
        render_header(path, STYLES["Nordic/nrf51.svd"], "x")
    path.write_text("<device>")
    with pytest.raises(DocumentError, match=f"{path}: cannot read"):
        render_header(path, STYLES["Nordic/nrf51.svd"], "x")


ARM = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")
REFERENCE_MANUAL = {  # addresses and numbers from ST's RM0090 and Nordic's nRF51 reference manual
    "stm32f4xx.h": ["(uint32_t)&USART2->BRR == 0x40004408UL", "(uint32_t)&TIM2->ARR == 0x4000002CUL",
                    "(uint32_t)&RCC->APB1ENR == 0x40023840UL", "(uint32_t)&EXTI->SWIER == 0x40013C10UL",
                    "(uint32_t)&SYSCFG->EXTICR1 == 0x40013808UL", "TIM2_IRQn == 28", "USART2_IRQn == 38",
                    "EXTI0_IRQn == 6", "RCC_APB1ENR_USART2EN == (1UL << 17)", "USART_CR1_UE == (1UL << 13)",
                    "(uint32_t)&TIM3->CCMR1 == 0x40000418UL", "(uint32_t)&ADC1->DR == 0x4001204CUL",
                    "TIM_CCMR1_OC1M == TIM_CCMR1_Output_OC1M"],
    "nrf51.h": ["(uint32_t)&NRF_RNG->VALUE == 0x4000D508UL", "(uint32_t)&NRF_TIMER0->CC[1] == 0x40008544UL",
                "(uint32_t)&NRF_UART0->TXD == 0x4000251CUL", "(uint32_t)&NRF_GPIO->OUTSET == 0x50000508UL",
                "TIMER0_IRQn == 8", "RNG_IRQn == 13", "UART0_IRQn == 2", "UART_ENABLE_ENABLE_Enabled == 4",
                "TIMER_BITMODE_BITMODE_32Bit == 3"],
}


@ARM
@pytest.mark.parametrize("header, cpu", [("stm32f4xx.h", "cortex-m4"), ("nrf51.h", "cortex-m0")])
def test_bundled_headers_match_the_reference_manuals(tmp_path, header, cpu):
    runtime = resources.files("firmlm.exec").joinpath("runtime")
    for name in (header, "core_cm.h"):
        (tmp_path / name).write_text(runtime.joinpath(name).read_text())
    checks = "".join(f'    if (!({c})) return {i + 1};\n' for i, c in enumerate(REFERENCE_MANUAL[header]))
    (tmp_path / "checks.c").write_text(f'#include "{header}"\nint check(void)\n{{\n{checks}    return 0;\n}}\n'
                                       "void enable(void) { NVIC_EnableIRQ((IRQn_Type)2); SysTick_Config(1000); }\n")
    done = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-std=c11", "-O2", "-Wall", "-Werror",
                           "-S", "-o", "checks.s", "checks.c"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    body = (tmp_path / "checks.s").read_text().split("check:")[1].split(".size")[0]
    assert "movs\tr0, #0" in body and "#1\n" not in body  # every comparison folded to true: check() returns 0


def test_bundled_headers_are_what_the_generator_makes(tmp_path):
    """The committed headers equal a fresh generation from the cmsis-svd sdist (PyPI; skipped offline)."""
    from firmlm.models.references import cache_dir

    runtime = Path(str(resources.files("firmlm.exec").joinpath("runtime")))
    for member, style in STYLES.items():
        try:
            svd = fetch_cmsis_svd(member, cache_dir() / "svd")
        except (subprocess.CalledProcessError, OSError, StopIteration) as exc:
            pytest.skip(f"cmsis-svd sdist not available from the package index: {exc}")
        header, vectors = render_header(svd, style, f"{member} (cmsis-svd==0.4)")
        assert header == (runtime / style.file_name).read_text(), f"regenerate {style.file_name}"
        assert vectors == (runtime / f"{Path(style.file_name).stem}_vectors.h").read_text()
