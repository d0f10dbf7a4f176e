from __future__ import annotations

from firmlm.specmap.comments import clip, first_comment, kconfig_text, line_comments, readme_text

LINUX_STYLE = """// SPDX-License-Identifier: GPL-2.0
/*
 * Copyright (C) 2015 Some Company
 * Author: Jane Doe <jane@example.com>
 *
 * This program is free software; you can redistribute it and/or modify
 * it under the terms of the GNU General Public License version 2.
 */
#include <linux/io.h>

/**
 * @file
 * @brief Watchdog timer driver for the independent watchdog (IWDG).
 */
static int x;
"""


def test_first_comment_skips_license_and_notices():
    assert first_comment(LINUX_STYLE, "c") == "Watchdog timer driver for the independent watchdog (IWDG)."


def test_first_comment_skips_mit_and_gpl_notices():
    mit = ("/*\n * Copyright 2020 X\n * Permission is hereby granted, free of charge, to any person\n"
           " *\n * The above copyright notice and this permission notice shall be included in\n"
           " * all copies or substantial portions of the Software.\n *\n"
           " * Distribute under the terms of the GPLv2.\n */\n/* DMA engine descriptors. */\n")
    assert first_comment(mit, "c") == "DMA engine descriptors."


def test_first_comment_stops_at_code():
    assert first_comment("int x;\n/* not a header comment */\n", "c") == ""
    vectors = "@ Vector table for the Cortex-M4 core\n\t.word 0\n"
    assert first_comment(vectors, "asm") == "Vector table for the Cortex-M4 core"
    assert first_comment("# Build rules for the serial drivers\nobj-y += a.o\n", "make") == (
        "Build rules for the serial drivers")


def test_kconfig_text_prompts_and_help():
    text = ('config WDT\n\ttristate "Watchdog support"\n\t---help---\n\t  Resets the chip\n\t  on hang.\n\n'
            "config X\n\tbool\n")
    assert kconfig_text(text) == "WDT Watchdog support. Resets the chip on hang. X"


def test_makefile_comments_and_readme():
    assert line_comments("# Serial drivers\n# Copyright 2020 A\nobj-y += a.o\n# polled only\n") == (
        "Serial drivers polled only")
    readme = "# Title\n\nSee [the manual](http://x) for `CONFIG_FOO`.\n\n```\nmake all\n```\n"
    assert readme_text(readme) == "Title See the manual for CONFIG_FOO."


def test_clip_cuts_at_word_boundary():
    assert clip("alpha beta   gamma", 12) == "alpha beta" and clip("abcdefgh", 4) == "abcd"
