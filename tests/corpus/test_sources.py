import subprocess
import tarfile

from firmlm.corpus.archives import safe_member
from firmlm.corpus.debian import wanted
from firmlm.corpus.dedup import find_forks
from firmlm.corpus.gitsrc import checkout
from firmlm.corpus.provenance import debian_copyright_license, license_of_text, repository_license, vendor_of


def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", *args], cwd=cwd, check=True, capture_output=True)


def test_git_source_is_cloned_at_the_ref_and_recorded_by_commit(tmp_path):
    repo = tmp_path / "upstream"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "a.c").write_text("int v1;\n")
    _git("add", ".", cwd=repo)
    _git("commit", "-qm", "v1", cwd=repo)
    _git("tag", "v1", cwd=repo)
    (repo / "a.c").write_text("int v2;\n")
    _git("commit", "-qam", "v2", cwd=repo)
    at_tag = checkout(str(repo), "v1", tmp_path / "cache")
    assert (at_tag.path / "a.c").read_text() == "int v1;\n" and len(at_tag.commit) == 40
    head = checkout(str(repo), None, tmp_path / "cache")
    assert (head.path / "a.c").read_text() == "int v2;\n" and head.commit != at_tag.commit


def test_licenses_from_files_and_debian_copyright(tmp_path):
    (tmp_path / "COPYING").write_text("GNU GENERAL PUBLIC LICENSE\nVersion 2, June 1991\n")
    assert repository_license(tmp_path) == "GPL-2.0"
    assert license_of_text("Permission is hereby granted, free of charge, to any person") == "MIT"
    copyright = b"Format: x\n\nFiles: *\nCopyright: someone\nLicense: BSD-3-clause\n\nFiles: a/*\nLicense: GPL-2\n"
    with tarfile.open(tmp_path / "p_1.debian.tar.xz", "w:xz") as tf:
        info = tarfile.TarInfo("debian/copyright")
        info.size = len(copyright)
        import io
        tf.addfile(info, io.BytesIO(copyright))
    assert debian_copyright_license(tmp_path) == "BSD-3-clause"


def test_vendor_kinds_and_unsafe_archive_names():
    assert vendor_of("u-boot", "drivers/serial/serial_stm32.c") == "STMicroelectronics"
    assert vendor_of("linux", "arch/arm/boot/dts/imx6q-sabresd.dts") == "NXP"
    assert vendor_of("lwip", "src/core/tcp.c") == ""
    assert wanted("drivers/Kconfig.debug", ("Kconfig",), [], []) and not wanted("Kconfigx", ("Kconfig",), [], [])
    assert safe_member("/etc/x.c")[1] == "archive-absolute-path" and safe_member("a/../../x.c")[1] == "archive-parent-path"
    assert safe_member("C:\\\\evil.c")[1] == "archive-absolute-path" and safe_member("a/./b.c")[0].as_posix() == "a/b.c"


def test_forks_are_repositories_mostly_made_of_another_ones_documents():
    docs = [{"repo": "upstream"}] * 4 + [{"repo": "fork"}] * 4 + [{"repo": "other"}] * 4
    matched = {4: 0, 5: 1, 6: 2, 8: 3}  # three of fork's four documents duplicate upstream; one of other's
    assert find_forks(docs, matched, 0.5) == {"fork": {"of": "upstream", "share": 0.75, "duplicates": 3}}
