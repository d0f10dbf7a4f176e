from __future__ import annotations

import pytest

from firmlm.specmap.identifiers import analyze, normalise_hex, normalise_register_text, split_identifier


@pytest.mark.parametrize(
    "name, expected",
    [
        ("USART_CR1_UE", ["usart", "cr1", "ue"]),
        ("HAL_UART_Transmit", ["hal", "uart", "transmit"]),
        ("getRCCClock", ["get", "rcc", "clock"]),
        ("I2C_TypeDef", ["i2c", "type", "def"]),
        ("USART1_IRQHandler", ["usart1", "irq", "handler"]),
        ("uart0Init", ["uart0", "init"]),
        ("i2cMasterRead", ["i2c", "master", "read"]),
        ("STM32F4xx", ["stm32f4xx"]),
        ("drivers/serial/stm32_usart.c", ["drivers", "serial", "stm32", "usart", "c"]),
        ("__init", ["init"]),
    ],
)
def test_split_identifier(name, expected):
    assert split_identifier(name) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("USART_CR1.UE", "USART_CR1_UE"),
        ("USART_CR1[UE]", "USART_CR1_UE"),
        ("GPIOA->ODR", "GPIOA_ODR"),
        ("RCC.AHB1ENR.GPIOAEN", "RCC_AHB1ENR_GPIOAEN"),
        ("base 0x4001 1000", "base 0x40011000"),
        ("in USART_CR1. The UE bit", "in USART_CR1. The UE bit"),
    ],
)
def test_normalise_register_text(text, expected):
    assert normalise_register_text(text) == expected


def test_bit_ranges_are_dropped():
    assert "15" not in normalise_register_text("BRR[15:0]") and "13" not in normalise_register_text("CR1[13]")


def test_register_notations_share_tokens():
    code = set(analyze("#define USART_CR1_UE (1U << 13)"))
    assert "usart_cr1_ue" in code
    assert "usart_cr1_ue" in analyze("Bit 13 UE: USART enable (USART_CR1.UE)")
    assert {"cr1", "ue"} <= set(analyze("CR1 UE bit")) & code


@pytest.mark.parametrize("literal", ["0x4001_1000", "0x40011000", "0x4001 1000", "0x40011000UL", "0X40011000"])
def test_hex_literals_normalise(literal):
    assert analyze(f"base address {literal}") == ["base", "address", "40011000"]


def test_normalise_hex_strips_leading_zeros():
    assert normalise_hex("0x0800_0000") == "8000000" and normalise_hex("0x0") == "0"


def test_stopwords_c_keywords_and_short_numbers_dropped():
    tokens = analyze("The UE bit of the register is set at 115200 baud when bit 13 is 1")
    assert tokens == ["ue", "bit", "register", "set", "115200", "baud", "bit"]
    assert analyze("static volatile uint32_t reg; return 0;") == ["reg"]


def test_whole_identifier_and_numbered_stems_kept():
    assert analyze("USART1_IRQHandler") == ["usart1_irqhandler", "usart1", "usart", "irq", "handler"]
    assert analyze("getRCCClock") == ["getrccclock", "get", "rcc", "clock"]


def test_light_stemming():
    assert analyze("Enables the registers and FIFO entries") == ["enable", "register", "fifo", "entry"]
    assert analyze("status address bus axis") == ["status", "address", "bus", "axis"]
