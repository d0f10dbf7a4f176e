"""Tokens shared by datasheet prose and code: identifier splitting, register-name and hex normalisation.

``analyze`` is the one tokenizer used on both sides of lexical retrieval, so "USART_CR1.UE" in a datasheet
and ``USART_CR1_UE`` in a header yield the same tokens, as do ``0x4001 1000`` and ``0x40011000UL``.
"""

from __future__ import annotations

import re

# Word boundaries inside an alphanumeric run: get|RCC, RCC|Clock, uart0|Init. Digits stay with the letters
# before them (CR1, USART2, I2C, STM32F4), as hardware names are written.
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[0-9])(?=[A-Z][a-z])")
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")
# USART_CR1.UE, USART_CR1[UE], USART1->CR1 (upper-case register names only) → USART_CR1_UE, USART1_CR1.
_REG_FIELD = re.compile(r"\b([A-Z][A-Z0-9_]*)(?:\.|->|::|\[)([A-Z][A-Z0-9_]*)\]?")
_BIT_RANGE = re.compile(r"\[\s*\d+\s*(?::\s*\d+\s*)?\]")
_HEX_SPACED = re.compile(r"\b0[xX]([0-9A-Fa-f]{4})[ _'](?=[0-9A-Fa-f]{4}\b)")
_TOKEN = re.compile(r"0[xX][0-9A-Fa-f_']+[uUlL]*|[A-Za-z_][A-Za-z0-9_]*|\d+")
_TRAILING_NUMBER = re.compile(r"^([a-z][a-z0-9]*?[a-z])\d{1,2}$")
MIN_NUMBER_LEN = 3

ENGLISH_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by could did do does doing done down during each either etc every few from further
had has have having he her here hers him his how however i ie eg if in into is it its itself just may
me might more most must my neither no nor not of off on once only or other our out over own per same
shall she should so some such than that the their them then there these they this those through thus to
too under until up upon us very via was we were what when where whether which while who whom why will
with within without would yet you your
""".split())

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
bool true false null nullptr asm define undef include ifdef ifndef endif elif pragma defined
uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t size_t uintptr_t
u8 u16 u32 u64 s8 s16 s32 s64
""".split())  # "register" is kept on purpose: it is the datasheet's most telling word.

STOPWORDS = ENGLISH_STOPWORDS | C_KEYWORDS
# "can" is not one: code spells the CAN bus in lower case (drivers/net/can, can_rx_offload); queries drop the
# English "can" and keep "CAN" (firmlm.specmap.vocabulary).


def split_identifier(name: str) -> list[str]:
    """Lower-case words of an identifier: ``getRCCClock`` → get, rcc, clock; ``USART_CR1_UE`` → usart, cr1, ue."""
    words: list[str] = []
    for run in _ALNUM_RUN.findall(name):
        words.extend(part.lower() for part in _CAMEL.split(run) if part)
    return words


def normalise_hex(literal: str) -> str:
    """``0x4001_1000``, ``0x40011000UL``, ``0X4001'1000`` → ``40011000`` (no prefix, suffix or leading zeros)."""
    digits = literal[2:].rstrip("uUlL").replace("_", "").replace("'", "").lower()
    return digits.lstrip("0") or "0"


def normalise_register_text(text: str) -> str:
    """Rewrite datasheet register notation into C identifier form.

    ``USART_CR1.UE`` / ``USART_CR1[UE]`` / ``USART1->CR1`` become ``USART_CR1_UE`` / ``USART1_CR1``,
    bit ranges such as ``[15:0]`` are dropped and ``0x4001 1000`` becomes ``0x40011000``.
    """
    text = _HEX_SPACED.sub(r"0x\1", text)
    text = _BIT_RANGE.sub(" ", text)
    previous = None
    while previous != text:  # A.B.C needs two passes
        previous, text = text, _REG_FIELD.sub(r"\1_\2", text)
    return text


def stem(word: str) -> str:
    """Light English plural/verb stemming of alphabetic words: registers → register, entries → entry."""
    if not word.isalpha() or len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    return word[:-3] + "y" if word.endswith("ies") and len(word) > 4 else word[:-1]


def _keep(token: str) -> bool:
    if token.isdigit():
        return len(token) >= MIN_NUMBER_LEN
    return len(token) > 1 and token not in STOPWORDS


def analyze(text: str) -> list[str]:
    """BM25 tokens of prose or code: split identifiers (stemmed), whole identifiers, numbered stems, hex values.

    English stopwords, C keywords and numbers under three digits are dropped; everything is lower-case.
    """
    tokens: list[str] = []
    for raw in _TOKEN.findall(normalise_register_text(text)):
        if raw[:2] in ("0x", "0X"):
            value = normalise_hex(raw)
            if len(value) >= MIN_NUMBER_LEN:
                tokens.append(value)
            continue
        whole = raw.strip("_").lower()
        if whole in STOPWORDS:
            continue
        parts = [stem(p) for p in split_identifier(raw) if _keep(p)]
        if len(parts) > 1 and _keep(whole):
            tokens.append(whole)
        for part in parts:
            tokens.append(part)
            numbered = _TRAILING_NUMBER.match(part)
            if numbered and _keep(numbered.group(1)):
                tokens.append(numbered.group(1))  # usart1 → usart, cr1 → cr
    return tokens
