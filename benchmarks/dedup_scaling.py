"""MinHash dedup time at 1x, 2x and 4x corpus size (distinct files of the Linux and u-boot trees from the
firmlm cache), split into the parallel part (signatures, per document) and the global LSH pass.

Prints JSON lines: {"bench": "minhash_dedup_s", "scale": k, "figure": seconds at k, "baseline": seconds at 1x,
"ratio": figure / baseline}; linear growth shows as ratio ≈ k.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-docs", type=int, default=600)
    args = p.parse_args()
    from firmlm.config import DEFAULT_EXTENSIONS
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.corpus.dedup import DedupSettings, exact_key, find_duplicates, minhash
    from firmlm.corpus.reader import list_candidates
    from firmlm.models import cache_dir

    fetcher = AptSourceFetcher(cache_dir())
    texts: list[str] = []
    for package, include in (("u-boot", "drivers/*"), ("u-boot", "arch/arm/*"), ("u-boot", "include/*")):
        tree = fetcher.fetch(package, DEFAULT_EXTENSIONS, [include], [])
        for rel in list_candidates(tree.path, DEFAULT_EXTENSIONS, [include], [])[0]:
            texts.append((tree.path / rel).read_text(errors="replace")[:7500])
            if len(texts) >= 4 * args.base_docs:
                break
    settings = DedupSettings()
    baseline = None
    for scale in (1, 2, 4):
        docs = [{"text": t, "split": "train", "repo": "r"} for t in texts[: scale * args.base_docs]]
        t0 = time.perf_counter()
        for d in docs:
            d["exact_key"] = exact_key(d["text"])
            d["minhash"] = minhash(d["text"], settings).hashvalues.tolist()
        signatures_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        drops = find_duplicates(docs, settings)
        lsh_s = time.perf_counter() - t0
        total = signatures_s + lsh_s
        baseline = baseline or total
        print(json.dumps({"bench": "minhash_dedup_s", "scale": scale, "docs": len(docs), "dropped": len(drops),
                          "signatures_s": round(signatures_s, 3), "lsh_pass_s": round(lsh_s, 3),
                          "figure": round(total, 3), "baseline": round(baseline, 3), "ratio": round(total / baseline, 3)}))


if __name__ == "__main__":
    main()
