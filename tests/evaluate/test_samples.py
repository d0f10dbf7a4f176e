"""Evaluation windows: files, not chunks; after the licence header; the file marker as unscored context."""

from pathlib import Path

import pyarrow.parquet as pq

from firmlm import models
from firmlm.evaluate.samples import body_start, file_windows, select_samples
from firmlm.stages import run_stages

FIXTURES = Path(__file__).parents[1] / "fixtures"
LICENSED = """// SPDX-License-Identifier: BSD-3-Clause
/*
 * Copyright (c) 2021 Example Corp.
 * Redistribution and use in source and binary forms, with or without modification, are permitted.
 */

#include "uart.h"

/* Baud rate divisor for the given clock. */
static unsigned uart_div(unsigned clk, unsigned baud)
{
\treturn (clk + baud / 2) / baud;
}
"""


def test_body_starts_after_licence_comments_only():
    start = body_start(LICENSED)
    assert LICENSED[start:].startswith('#include "uart.h"')
    plain = "/* Baud rate helpers. */\nint x;\n"
    assert body_start(plain) == 0  # a comment without licence words is code context, kept
    assert body_start("#define A 1\n// Copyright here\n") == 0  # a preprocessor line is not a comment


def test_windows_never_cover_the_licence_header_and_keep_tabs():
    _, tok = models.load("tiny:llama")
    text = LICENSED + "".join(f"int reg_{i} = {i};\t/* register {i} */\n" for i in range(200))
    spans = file_windows(text, tok, window_tokens=64, count=4, seed=3, key="r/uart.c")
    assert len(spans) == 4
    start = body_start(text)
    assert all(a >= start for a, _ in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))  # non-overlapping, in order
    assert all(text[a - 1] == "\n" for a, _ in spans)  # each starts at a line boundary
    assert file_windows(text, tok, 64, 4, seed=3, key="r/uart.c") == spans
    assert file_windows(text, tok, 64, 4, seed=4, key="r/uart.c") != spans


def test_samples_are_files_windows_with_the_marker_as_context(tiny_config):
    cfg = tiny_config()
    run_stages(cfg, ["corpus"])
    corpus = cfg.run_dir / "corpus"
    _, tok = models.load("tiny:llama")
    a = select_samples(corpus, ["indomain", "heldout"], 512, 128, seed=1, tokenizer=tok)
    assert a == select_samples(corpus, ["indomain", "heldout"], 512, 128, seed=1, tokenizer=tok)
    assert a and all(s.split in {"indomain", "heldout"} for s in a)
    for s in a:
        assert s.context == f"// File: {s.repo}/{s.path}\n" and "// File:" not in s.text
        assert "SPDX-License-Identifier" not in s.text and "Copyright" not in s.text
        assert len(tok(s.text, add_special_tokens=False)["input_ids"]) <= 128 + 64  # a window, not a whole file
    heldout = select_samples(corpus, ["heldout"], 10_000, 128, seed=1, tokenizer=tok)
    assert {s.repo for s in heldout} == {"crypto_lib"}
    # the repository text, not the cleaned training text (placeholders only where secrets were scrubbed)
    files = pq.read_table(corpus / "eval_files.parquet").to_pylist()
    same = [f["text"] == (FIXTURES / "repos" / f["repo"] / f["path"]).read_text() for f in files]
    assert sum(same) >= 1 and all(ok or "<" in f["text"] for ok, f in zip(same, files))
