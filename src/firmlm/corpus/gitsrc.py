"""Git repositories as sources: cloned once into the cache, checked out at the configured ref, and
recorded by commit id (the manifest's input hash)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from firmlm.errors import SourceError


@dataclass
class GitCheckout:
    path: Path
    url: str
    ref: str | None
    commit: str


def _git(args: list[str], cwd: Path | None = None) -> str:
    if shutil.which("git") is None:
        raise SourceError("git sources need the git command, which is not on PATH")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
        raise SourceError(f"git {' '.join(args[:2])} failed: {tail}")
    return proc.stdout.strip()


def checkout(url: str, ref: str | None, cache: Path) -> GitCheckout:
    """A worktree of ``url`` at ``ref`` under ``cache/git``. An existing clone is fetched again; when the
    fetch fails (no network) a ref it already holds is still used."""
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    clone = cache / "git" / key
    if not (clone / ".git").is_dir():
        tmp = clone.with_name(clone.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        _git(["clone", "--quiet", "--no-checkout", url, str(tmp)])
        shutil.rmtree(clone, ignore_errors=True)
        os.replace(tmp, clone)
    else:
        try:
            _git(["fetch", "--quiet", "--tags", "origin"], cwd=clone)
        except SourceError:
            pass
    target = ref or "origin/HEAD"
    for candidate in ([f"origin/{ref}", ref] if ref else [target]):
        try:
            commit = _git(["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], cwd=clone)
            break
        except SourceError:
            continue
    else:
        raise SourceError(f"git source {url}: ref {ref!r} not found")
    _git(["checkout", "--quiet", "--force", "--detach", commit], cwd=clone)
    _git(["clean", "--quiet", "-fdx"], cwd=clone)
    return GitCheckout(clone, url, ref, commit)
