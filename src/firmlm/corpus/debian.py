"""Debian source packages as corpus sources.

``apt-get source --download-only`` runs against a private sources file and private state folders in the
firmlm cache (nothing under /etc changes). The archive URIs and suites come from the machine's own apt
configuration. The upstream tarballs are then unpacked with a member filter (safe paths, kept suffixes and
include globs), so only the files the corpus needs reach the disk. Debian patches are not applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from firmlm.errors import SourceError

log = logging.getLogger(__name__)

APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
LISTS_MAX_AGE_S = 24 * 3600
MAX_VERSION_TRIES = 4
TARBALL = re.compile(r"\.(tar\.(gz|xz|bz2|lzma|zst)|tgz)$")


@dataclass(frozen=True)
class AptArchive:
    """One archive from the machine's apt configuration."""

    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


@dataclass
class FetchedTree:
    """An unpacked source tree in the cache, with what it came from."""

    path: Path
    package: str
    version: str
    tarballs: dict[str, str] = field(default_factory=dict)  # file name -> sha256


def _parse_deb822(text: str) -> list[dict[str, str]]:
    stanzas, current, key = [], {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            key = key.strip()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def machine_archives(sources_dir: Path = APT_SOURCES_DIR, sources_list: Path = APT_SOURCES_LIST) -> list[AptArchive]:
    """Archives configured on this machine (deb822 ``*.sources`` and one-line ``sources.list``)."""
    archives: list[AptArchive] = []
    if sources_dir.is_dir():
        for path in sorted(sources_dir.glob("*.sources")):
            for st in _parse_deb822(path.read_text(encoding="utf-8", errors="replace")):
                if st.get("Enabled", "yes").lower() == "no" or "URIs" not in st:
                    continue
                archives.append(
                    AptArchive(
                        uris=tuple(st["URIs"].split()),
                        suites=tuple(st.get("Suites", "").split()),
                        components=tuple(st.get("Components", "").split()),
                        signed_by=st.get("Signed-By"),
                    )
                )
    lists = [sources_list] + (sorted(sources_dir.glob("*.list")) if sources_dir.is_dir() else [])
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) < 3 or parts[0] not in ("deb", "deb-src"):
                continue
            rest = parts[1:]
            signed = None
            if rest[0].startswith("["):
                opts = []
                while rest and not rest[0].endswith("]"):
                    opts.append(rest.pop(0))
                opts.append(rest.pop(0))
                for opt in " ".join(opts).strip("[]").split():
                    if opt.startswith("signed-by="):
                        signed = opt.split("=", 1)[1]
            if len(rest) >= 2:
                archives.append(AptArchive((rest[0],), (rest[1],), tuple(rest[2:]), signed))
    unique: list[AptArchive] = []
    for a in archives:
        if a not in unique:
            unique.append(a)
    return unique


def source_stanzas(archives: list[AptArchive]) -> str:
    """A deb822 sources file asking for source indexes (deb-src) of the given archives."""
    out = []
    for a in archives:
        lines = ["Types: deb-src", f"URIs: {' '.join(a.uris)}", f"Suites: {' '.join(a.suites)}"]
        if a.components:
            lines.append(f"Components: {' '.join(a.components)}")
        if a.signed_by and "\n" not in a.signed_by:
            lines.append(f"Signed-By: {a.signed_by}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


class AptSourceFetcher:
    """Downloads and unpacks Debian source packages into ``CACHE/debian``."""

    def __init__(self, cache: Path, archives: list[AptArchive] | None = None):
        self.root = cache / "debian"
        self.archives = archives if archives is not None else machine_archives()

    def _apt_options(self) -> list[str]:
        state = self.root / "apt"
        return [
            "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={state / 'sources.d'}",
            "-o", f"Dir::State::Lists={state / 'lists'}",
            "-o", f"Dir::Cache={state / 'cache'}",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Retries=3",
        ]  # fmt: skip

    def _run_apt(self, args: list[str], cwd: Path | None = None) -> str:
        if shutil.which("apt-get") is None:
            raise SourceError("debian sources need apt-get, which is not on PATH")
        cmd = ["apt-get", "-q", *self._apt_options(), *args]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SourceError(f"apt-get {' '.join(args)} failed: {' | '.join(tail)}")
        return proc.stdout

    def update(self, force: bool = False) -> None:
        """Refresh the private source indexes (at most once a day unless forced)."""
        if not self.archives:
            raise SourceError(
                f"no apt archives configured in {APT_SOURCES_DIR} or {APT_SOURCES_LIST}; cannot fetch Debian sources"
            )
        state = self.root / "apt"
        for sub in ("sources.d", "lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "sources.d" / "firmlm.sources").write_text(source_stanzas(self.archives), encoding="utf-8")
        stamp = state / "updated"
        if not force and stamp.is_file() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S:
            return
        log.info("apt-get update (source indexes, private state)")
        self._run_apt(["update"])
        stamp.touch()

    def download(self, package: str) -> tuple[Path, str]:
        """Download a source package's files; returns (folder, version). Reuses a finished download.

        Versions are tried newest first; a version whose files the archive no longer serves (404) is
        skipped for the next one.
        """
        self.update()
        versions = self._versions(package)
        for marker in sorted((self.root / "downloads").glob(f"{package}_*/.complete")):
            if marker.read_text().strip() in versions:
                return marker.parent, marker.read_text().strip()
        errors = []
        for version in versions[:MAX_VERSION_TRIES]:
            dest = self.root / "downloads" / f"{package}_{_safe(version)}"
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            log.info("apt-get source --download-only %s=%s", package, version)
            try:
                self._run_apt(["source", "--download-only", f"{package}={version}"], cwd=tmp)
            except SourceError as exc:
                # the archive may lack only Debian's packaging files; the upstream tarballs suffice
                if not upstream_complete(tmp):
                    errors.append(str(exc))
                    shutil.rmtree(tmp, ignore_errors=True)
                    continue
                log.warning("%s=%s: using the upstream tarballs; Debian packaging files unavailable", package, version)
            (tmp / ".complete").write_text(version)
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
            return dest, version
        raise SourceError(f"debian source package '{package}': no version could be downloaded ({errors[-1]})")

    def _versions(self, package: str) -> list[str]:
        """Every version the configured archives list for a source package, newest first."""
        proc = subprocess.run(
            ["apt-cache", *self._apt_options(), "showsrc", "--only-source", package],
            capture_output=True,
            text=True,
        )
        versions = set(re.findall(r"^Version:\s*(\S+)", proc.stdout, flags=re.M))
        if proc.returncode != 0 or not versions:
            raise SourceError(f"debian source package '{package}' not found in the configured archives")
        return sorted(versions, key=_DebVersionKey, reverse=True)

    def fetch(self, package: str, suffixes: tuple[str, ...], include: list[str], exclude: list[str]) -> FetchedTree:
        """Download (once) and unpack (once per filter) a source package; returns the tree."""
        folder, version = self.download(package)
        tarballs = sorted(p for p in folder.iterdir() if TARBALL.search(p.name) and ".debian." not in p.name)
        if not tarballs:
            raise SourceError(f"debian source package '{package}' {version}: no upstream tarball in {folder}")
        key = hashlib.sha256(json.dumps([sorted(suffixes), include, exclude]).encode()).hexdigest()[:10]
        tree = self.root / "trees" / f"{package}_{_safe(version)}_{key}"
        meta_path = tree / ".firmlm-tree.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            return FetchedTree(tree, package, version, meta["tarballs"])
        tmp = tree.with_name(tree.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        hashes = {}
        for tb in tarballs:
            hashes[tb.name] = sha256_file(tb)
            component = _component(tb.name)
            unpack_filtered(tb, tmp / component if component else tmp, suffixes, include, exclude, component)
        meta_path_tmp = tmp / ".firmlm-tree.json"
        meta_path_tmp.write_text(json.dumps({"package": package, "version": version, "tarballs": hashes}))
        shutil.rmtree(tree, ignore_errors=True)
        os.replace(tmp, tree)
        return FetchedTree(tree, package, version, hashes)


def upstream_complete(folder: Path) -> bool:
    """True when the .dsc is present and every upstream tarball it lists is there with its SHA-256."""
    dscs = list(folder.glob("*.dsc"))
    if len(dscs) != 1:
        return False
    text = dscs[0].read_text(encoding="utf-8", errors="replace")
    m = re.search(r"^Checksums-Sha256:\n((?:[ \t]+.*\n?)+)", text, flags=re.M)
    if not m:
        return False
    upstream = []
    for line in m.group(1).splitlines():
        parts = line.split()
        if len(parts) == 3 and TARBALL.search(parts[2]) and ".debian." not in parts[2]:
            upstream.append((parts[0], parts[2]))
    return bool(upstream) and all((folder / n).is_file() and sha256_file(folder / n) == h for h, n in upstream)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def _component(name: str) -> str | None:
    """``pkg_1.0.orig-extra.tar.xz`` unpacks into ``extra/`` as dpkg-source does."""
    m = re.search(r"\.orig-([A-Za-z0-9-]+)\.tar", name)
    return m.group(1) if m else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def member_path(name: str) -> PurePosixPath | None:
    """The member's path without its top folder, or None when it is absolute or climbs out."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or len(p.parts) < 2:
        return None
    return PurePosixPath(*p.parts[1:])


def wanted(rel: str, suffixes: tuple[str, ...], include: list[str], exclude: list[str]) -> bool:
    """Suffix + include/exclude glob filter (globs match the path relative to the tree root). A suffix without
    a dot is a file-name prefix: ``Kconfig`` keeps ``Kconfig`` and ``Kconfig.debug``."""
    if suffixes and not rel.endswith(tuple(s for s in suffixes if s.startswith("."))):
        name = rel.rsplit("/", 1)[-1]
        if not any(name == s or name.startswith(s + ".") for s in suffixes if not s.startswith(".")):
            return False
    if include and not any(fnmatch(rel, g) for g in include):
        return False
    return not any(fnmatch(rel, g) for g in exclude)


def unpack_filtered(
    tarball: Path,
    dest: Path,
    suffixes: tuple[str, ...],
    include: list[str],
    exclude: list[str],
    component: str | None = None,
) -> int:
    """Stream a tarball and write only regular, safely named, wanted members under dest."""
    count = 0
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, mode="r|*") as tf:
        for member in tf:
            if not member.isfile():
                continue
            rel = member_path(member.name)
            if rel is None:
                continue
            rel_s = rel.as_posix()
            full_rel = f"{component}/{rel_s}" if component else rel_s
            if not wanted(full_rel, suffixes, include, exclude):
                continue
            src = tf.extractfile(member)
            if src is None:
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "wb") as fh:
                shutil.copyfileobj(src, fh)
            count += 1
    return count


class _DebVersionKey:
    """Orders Debian version strings (epoch:upstream-revision) as dpkg does."""

    def __init__(self, version: str):
        epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        self.parts = (int(epoch or 0), upstream, revision)

    @staticmethod
    def _order(c: str) -> int:
        if c == "~":
            return -1
        if c.isalpha():
            return ord(c)
        return ord(c) + 256 if c else 0

    @classmethod
    def _cmp_part(cls, a: str, b: str) -> int:
        while a or b:
            na = re.match(r"^[^0-9]*", a).group(0)
            nb = re.match(r"^[^0-9]*", b).group(0)
            for i in range(max(len(na), len(nb))):
                ca = cls._order(na[i]) if i < len(na) else 0
                cb = cls._order(nb[i]) if i < len(nb) else 0
                if ca != cb:
                    return -1 if ca < cb else 1
            a, b = a[len(na) :], b[len(nb) :]
            da = re.match(r"^[0-9]*", a).group(0)
            db = re.match(r"^[0-9]*", b).group(0)
            ia, ib = int(da or 0), int(db or 0)
            if ia != ib:
                return -1 if ia < ib else 1
            a, b = a[len(da) :], b[len(db) :]
        return 0

    def _cmp(self, other: _DebVersionKey) -> int:
        if self.parts[0] != other.parts[0]:
            return -1 if self.parts[0] < other.parts[0] else 1
        return self._cmp_part(self.parts[1], other.parts[1]) or self._cmp_part(self.parts[2], other.parts[2])

    def __lt__(self, other: _DebVersionKey) -> bool:
        return self._cmp(other) < 0

    def __gt__(self, other: _DebVersionKey) -> bool:
        return self._cmp(other) > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DebVersionKey) and self._cmp(other) == 0
