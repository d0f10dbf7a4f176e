from firmlm.config import FilterConfig
from firmlm.corpus.filters import (
    ascii_art,
    character_runs,
    clean,
    empty_comments,
    normalize_whitespace,
    reject_chunk,
    reject_file,
    separator_lines,
)

CFG = FilterConfig()


def test_separator_lines_keep_comments_well_formed():
    text = "/************************/\nint a;\n/*-------------\n * UART\n *------------*/\n// =========\nint b;\n"
    out, n = separator_lines(text)
    assert n == 4 and out == "int a;\n/*\n * UART\n */\nint b;\n"


def test_runs_art_comments_and_whitespace():
    assert character_runs("x = 1; //!!!!!!!!!!!!!! 0x0000000000000000")[0] == "x = 1; //!!! 0x0000000000000000"
    assert ascii_art(" * ┌──┐\n * |  |\nint a;\n +-------+-------+\n")[0] == " * |  |\nint a;\n"
    assert empty_comments("/* */int a;\n/**\n *\n *\n *\n * Doc.\n */\n")[0] == "int a;\n/**\n *\n * Doc.\n */\n"
    assert normalize_whitespace("a\r\n\tb\r") == ("a\n    b\n", 3)
    assert clean("int a;\t\r\n").changes == {"normalize_whitespace": 2}


def test_file_rejects():
    assert reject_file("/* Automatically generated file. DO NOT EDIT. */\nint a;\n", CFG) == "auto-generated"
    assert reject_file("int a;\n" + "x" * 1500 + "\n", CFG) == "very-long-lines"
    assert reject_file(("var a=1;" * 30 + "\n") * 3, CFG) == "minified"
    assert reject_file("const char t[] = {\n" + "0x01, 0x02, 0x03,\n" * 30 + "};\n", CFG) == "data-only"
    assert reject_file("int main(void)\n{\n    return 0;\n}\n", CFG) is None


def test_chunk_rejects():
    assert reject_chunk("// File: r/a.c\n#define REG (0x40021000UL)\n", "h", CFG) is None
    assert reject_chunk("mov r0, #1\nbx lr\n", "asm", CFG) is None
    assert reject_chunk("config UART_STM32\n\tbool \"STM32 UART\"\n", "kconfig", CFG) is None
    assert reject_chunk("// File: r/a.c\n@@@@ #### $$$$\n%%%% ^^^^ &&&&\n", "c", CFG) == "low-alphanumeric"
    assert reject_chunk("just a few words here", "doc", CFG) == "no-code-or-prose"
    prose = "The UART peripheral transmits data on the TX pin when the enable bit is set and the baud rate " \
            "divider has been programmed from the peripheral clock."
    assert reject_chunk(prose, "doc", CFG) is None
    assert reject_chunk("a\n----\n====\n****\n~~~~\n", "c", CFG) in ("mostly-garbage", "low-alphanumeric")
