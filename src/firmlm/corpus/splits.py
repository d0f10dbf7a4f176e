"""Split assignment and document ids: stable hashes, so the same file lands in the same split every run."""

from __future__ import annotations

import hashlib


def split_of(role: str, repo: str, path: str, seed: int, indomain_fraction: float) -> str:
    """heldout for held-out repositories; a stable hash of the path picks indomain files of the others."""
    if role == "heldout":
        return "heldout"
    digest = hashlib.sha256(f"{seed}:{repo}/{path}".encode()).digest()
    return "indomain" if int.from_bytes(digest[:8], "big") / 2**64 < indomain_fraction else "train"


def doc_id(repo: str, path: str) -> str:
    return hashlib.sha1(f"{repo}/{path}".encode()).hexdigest()[:16]
