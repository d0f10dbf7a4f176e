"""Corpus pipeline throughput per worker on a real Debian source tree (u-boot drivers, fetched once into the
firmlm cache), against a baseline that only reads the same files and writes them to parquet, same run.

Prints JSON lines: {"bench": "corpus_mb_per_s_per_worker", "figure": firmlm, "baseline": read+write, "ratio"}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--package", default="u-boot")
    p.add_argument("--include", default="drivers/*")
    p.add_argument("--max-files", type=int, default=600)
    args = p.parse_args()
    from firmlm.config import CorpusConfig
    from firmlm.corpus.blocks import pipeline
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.corpus.pipeline import run_pipeline
    from firmlm.corpus.reader import list_candidates, spread
    from firmlm.models import cache_dir

    cfg = CorpusConfig(sources=[{"name": args.package, "kind": "debian", "package": args.package,
                                 "include": [args.include], "max_files": args.max_files}],
                       executor={"tasks": 1, "workers": 1})
    tree = AptSourceFetcher(cache_dir()).fetch(args.package, tuple(cfg.extensions), [args.include], [])
    paths = spread(list_candidates(tree.path, tuple(cfg.extensions), [args.include], [])[0], args.max_files)
    mb = sum((tree.path / r).stat().st_size for r in paths) / 1e6
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()  # baseline: read every file, write it to parquet
        rows = [{"path": r, "text": (tree.path / r).read_bytes().decode("utf-8", "replace")} for r in paths]
        pq.write_table(pa.Table.from_pylist(rows), Path(d) / "baseline.parquet", compression="zstd")
        baseline_s = time.perf_counter() - t0
        spec = [{"name": args.package, "root": str(tree.path), "origin": "bench", "role": "train", "include": [args.include],
                 "exclude": [], "max_files": args.max_files, "license": "", "skipped": []}]
        t0 = time.perf_counter()
        run_pipeline(cfg.executor, pipeline(spec, cfg, 1, Path(d) / "work"), Path(d) / "work")
        firmlm_s = time.perf_counter() - t0
    fig, base = mb / firmlm_s, mb / baseline_s
    print(json.dumps({"bench": "corpus_mb_per_s_per_worker", "files": len(paths), "mb": round(mb, 2),
                      "figure": round(fig, 3), "baseline": round(base, 3), "ratio": round(fig / base, 4)}))


if __name__ == "__main__":
    main()
