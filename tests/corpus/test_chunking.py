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


def test_c_chunks_follow_declarations_and_keep_comments_with_them():
    funcs = "".join(f"/* Function {i}: does {{ things }} */\nint f{i}(void)\n{{\n    const char *s = \"}}\\n\";\n"
                    f"    return {i};\n}}\n" for i in range(30))
    text = "#ifndef X_H\n#define X_H\n" + funcs + "#endif\n"
    chunks = chunk_text(text, 400, kind="h")
    assert "".join(chunks) == text and all(len(c) <= 400 for c in chunks)
    for c in chunks[1:]:
        assert c.startswith("/* Function") or c.startswith("#endif")


def test_oversized_functions_split_between_statements_and_macro_soup_falls_back():
    body = "".join(f"    reg[{i}] = read_reg(base + {i} * 4);\n" for i in range(80))
    text = f"void init(volatile int *reg, int base)\n{{\n{body}}}\n"
    chunks = chunk_text(text, 500, kind="c")
    assert "".join(chunks) == text and all(len(c) <= 500 for c in chunks)
    assert all(c.startswith("    reg[") or c.startswith("void init") or c == "}\n" for c in chunks)
    soup = "".join(f"FOO({i}) BAR BAZ(\n" for i in range(100))
    assert "".join(chunk_text(soup, 300, kind="c")) == soup


def test_file_markers_and_mapping_sections_are_boundaries():
    delim = "=" * 82 + "\n"
    text = "".join(f"// File: r/f{i}.c\n" + "int x;\n" * 20 for i in range(3))
    assert [c.split("\n")[0] for c in chunk_text(text, 200)] == [f"// File: r/f{i}.c" for i in range(3)]
    mapping = "".join(f"{delim}Section {i}\n" + "text line\n" * 15 for i in range(3))
    assert all(c.startswith(delim) for c in chunk_text(mapping, 250, kind="doc"))
