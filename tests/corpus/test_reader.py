import os

from firmlm.corpus.provenance import spdx_header as spdx_license
from firmlm.corpus.reader import kind_of, read_tree, spread

SUFFIXES = (".c", ".h", ".S", ".dts")


def _hostile_tree(root):
    (root / "src").mkdir(parents=True)
    (root / "src" / "good.c").write_text("int good(void) { return 1; }\n")
    (root / "src" / "blob.c").write_bytes(b"\x7fELF\x00\x00\x01binary")
    (root / "src" / "latin1.c").write_bytes("/* caf\xe9 */ int x;\n".encode("latin-1"))
    (root / "src" / "empty.h").write_text("")
    (root / "src" / "huge.c").write_text("int a;\n" * 5000)
    (root / "src" / "loop").symlink_to(root / "src")
    (root / "src" / "escape.c").symlink_to("/etc/passwd")
    outside = root.parent / "outside"
    outside.mkdir()
    (root / "src" / "out_dir").symlink_to(outside)
    locked = root / "src" / "locked.c"
    locked.write_text("int locked;\n")
    locked.chmod(0)
    (root / "notes.txt").write_text("skipped by suffix")
    return root


def test_hostile_tree_every_bad_file_accounted_for(tmp_path):
    root = _hostile_tree(tmp_path / "repo")
    records = list(read_tree(root, SUFFIXES, [], [], None, max_bytes=10_000))
    by_path = {r.path: r for r in records}
    assert by_path["src/good.c"].text.startswith("int good")
    assert by_path["src/blob.c"].skip == "binary"
    assert by_path["src/latin1.c"].skip == "invalid-utf8"
    assert by_path["src/empty.h"].skip == "empty"
    assert by_path["src/huge.c"].skip == "too-large"
    assert by_path["src/loop"].skip == "symlink"
    assert by_path["src/escape.c"].skip == "symlink"
    assert by_path["src/out_dir"].skip == "symlink"
    if os.geteuid() != 0:  # root can read mode-000 files
        assert by_path["src/locked.c"].skip == "unreadable"
    assert "notes.txt" not in by_path


def test_include_exclude_and_spread(tmp_path):
    for i in range(10):
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "a" / f"f{i}.c").write_text(f"int f{i};\n")
    (tmp_path / "b.c").write_text("int b;\n")
    recs = list(read_tree(tmp_path, SUFFIXES, ["a/*"], ["a/f9.c"], 3, 1000))
    assert [r.path for r in recs] == ["a/f0.c", "a/f3.c", "a/f6.c"]
    assert spread(list("abcdef"), None) == list("abcdef")
    assert spread(list("abcdef"), 2) == ["a", "d"]


def test_kinds_and_spdx():
    assert kind_of("x/y.dtsi") == "dts" and kind_of("boot.S") == "asm" and kind_of("link.ld") == "linker_script"
    assert kind_of("drivers/Kconfig") == "kconfig" and kind_of("arch/Kconfig.debug") == "kconfig"
    assert kind_of("docs/uart.rst") == "doc" and kind_of("README.md") == "doc"
    assert spdx_license("/* SPDX-License-Identifier: GPL-2.0+ */\nint x;") == "GPL-2.0+"
    assert spdx_license("// SPDX-License-Identifier: (GPL-2.0 OR MIT)\n") == "(GPL-2.0 OR MIT)"
    assert spdx_license("int x;") is None
