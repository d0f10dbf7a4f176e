import io
import tarfile

import pytest

from firmlm.corpus.debian import (
    AptSourceFetcher,
    _DebVersionKey,
    machine_archives,
    source_stanzas,
    unpack_filtered,
    upstream_complete,
)


def test_machine_archives_reads_deb822_and_one_line_formats(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "main.sources").write_text(
        "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: x\nEnabled: no\n"
    )
    (d / "old.list").write_text("deb [arch=amd64 signed-by=/k2.gpg] http://other.example/debian bookworm main contrib\n# comment\n")
    archives = machine_archives(d, tmp_path / "sources.list")
    assert [a.uris for a in archives] == [("http://archive.example/debian",), ("http://other.example/debian",)]
    assert archives[0].suites == ("bookworm", "bookworm-updates")
    assert archives[1].signed_by == "/k2.gpg" and archives[1].components == ("main", "contrib")
    text = source_stanzas(archives)
    assert text.count("Types: deb-src") == 2 and "Suites: bookworm bookworm-updates" in text


def test_debian_version_ordering():
    ordered = ["1.0~rc1-1", "1.0-1", "1.0-1+deb12u1", "1.0-2", "1.0.1-1", "1:0.5-1"]
    assert sorted(reversed(ordered), key=_DebVersionKey) == ordered


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_unpack_filtered_refuses_unsafe_paths_and_filters(tmp_path):
    tb = tmp_path / "pkg_1.0.orig.tar.gz"
    _tar(tb, [
        ("pkg-1.0/src/a.c", b"int a;"),
        ("pkg-1.0/src/b.txt", b"text"),
        ("pkg-1.0/../../evil.c", b"int evil;"),
        ("/abs/evil.c", b"int evil;"),
        ("pkg-1.0/drivers/x.c", b"int x;"),
    ])
    dest = tmp_path / "out"
    n = unpack_filtered(tb, dest, (".c",), ["src/*"], [])
    assert n == 1
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == ["src/a.c"]
    assert not (tmp_path / "evil.c").exists()


def test_upstream_complete_checks_hashes(tmp_path):
    import hashlib

    data = b"tarball bytes"
    (tmp_path / "p_1.orig.tar.xz").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "p_1-1.dsc").write_text(
        f"Format: 3.0 (quilt)\nChecksums-Sha256:\n {digest} {len(data)} p_1.orig.tar.xz\n {'0' * 64} 10 p_1-1.debian.tar.xz\nFiles:\n x 1 y\n"
    )
    assert upstream_complete(tmp_path)
    (tmp_path / "p_1.orig.tar.xz").write_bytes(b"corrupted")
    assert not upstream_complete(tmp_path)


@pytest.mark.slow
def test_real_debian_source_package_fetch(tmp_path):
    """Downloads lwip (~0.8 MB) from the machine's configured Debian archive and unpacks only .c files."""
    fetcher = AptSourceFetcher(tmp_path)
    if not fetcher.archives:
        pytest.skip("no apt archives configured on this machine")
    tree = fetcher.fetch("lwip", (".c",), ["src/core/*"], [])
    files = sorted(p.relative_to(tree.path).as_posix() for p in tree.path.rglob("*.c"))
    assert "src/core/tcp.c" in files and all(f.startswith("src/core/") for f in files)
    assert tree.version and all(len(h) == 64 for h in tree.tarballs.values())
    again = fetcher.fetch("lwip", (".c",), ["src/core/*"], [])
    assert again.path == tree.path  # unpacked once, reused
