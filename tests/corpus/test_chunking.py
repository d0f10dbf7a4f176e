from firmlm.corpus.chunking import chunk_text


def _c_file(n_funcs: int) -> str:
    return "".join(f"int f{i}(int x)\n{{\n    return x * {i};\n}}\n\n" for i in range(n_funcs))


def test_short_text_is_one_chunk():
    assert chunk_text("int x;\n", 100) == ["int x;\n"]


def test_chunks_are_bounded_lossless_and_end_at_function_ends():
    text = _c_file(60)
    chunks = chunk_text(text, 300)
    assert "".join(chunks) == text
    assert all(len(c) <= 300 for c in chunks)
    assert all(c.rstrip("\n").endswith("}") for c in chunks[:-1])
    assert all(c.lstrip().startswith("int f") for c in chunks)


def test_overlong_lines_are_cut_and_tiny_tails_merged():
    text = "x" * 250 + "\n" + "int y;\n"
    chunks = chunk_text(text, 100, min_chars=50)
    assert "".join(chunks) == text and all(len(c) <= 100 for c in chunks)
    assert len(chunk_text("a\n" * 60 + "b\n", 100, min_chars=50)) == 2
