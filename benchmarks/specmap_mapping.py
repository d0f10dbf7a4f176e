"""SpecMap on real offline pairs: Linux device-tree binding YAML ↔ the driver files that match its compatible string.

The set is built from the ``linux`` Debian source package (fetched once by firmlm's AptSourceFetcher into the
firmlm cache; nothing else is downloaded). One filtered tree holds the binding schemas of a few subsystems
(``Documentation/devicetree/bindings/{serial,i2c,spi,...}/*.yaml``) and the driver folders that implement them
(``drivers/{tty/serial,i2c/busses,spi,...}``: ``.c``, ``.h``, ``Kconfig*``, ``Makefile``). That tree is the
repository SpecMap maps into; it has no YAML files SpecMap indexes, so the bindings are not candidates.

How the ground truth is made
  1. Each binding is read with firmlm's own device-tree reader, which gives the section's title and its
     compatible strings (``Section.metadata["compatible"]``: every const/enum string under a ``compatible``
     property). The reader replaces those strings by ``<compatible>`` in the text, so they are never part of
     a query.
  2. Every ``.c``/``.h`` file of the driver folders is scanned with regular expressions for
     ``struct of_device_id NAME[] = {...};`` tables that the same file hands to a driver as
     ``.of_match_table = NAME`` (or ``of_match_ptr(NAME)``) or exports with ``MODULE_DEVICE_TABLE(of, NAME)``,
     and for the match macros of drivers that have no driver struct (``IRQCHIP_DECLARE``, ``TIMER_OF_DECLARE``,
     ``CLOCKSOURCE_OF_DECLARE``, ``IRQCHIP_MATCH``), each with its ``.compatible = "..."`` strings.
  3. A binding's true files are the files whose tables (or macros) list one of its compatible strings, exactly.
     Its true symbols are the names of those of_device_id tables, the probe functions of the driver structs
     that point at them (``.probe``/``.probe_new``, or ``module_platform_driver_probe(drv, probe)``) and the
     init functions named in the match macros.
  4. Bindings with 1-4 true files are kept (more means a generic fallback string such as ``ns16550a`` that
     many drivers accept); the selection is deterministic: bindings sorted by path within each subsystem,
     taken round-robin over the subsystems up to ``--max-sections``. The selected YAML files are copied into
     ``RUN/bindings/`` (so SpecMap maps only those) and the ground truth is written to
     ``RUN/ground_truth.json`` in the format of :mod:`firmlm.specmap.groundtruth`.

Limits
  - Drivers are matched by the string alone: a file that lists the string for another reason (a quirk table,
    a secondary match table exported with MODULE_DEVICE_TABLE) counts; a driver that builds its table with a
    macro, or matches by ``of_device_is_compatible()`` calls only, is not found.
  - Only the fetched driver folders are searched: a binding whose driver lives elsewhere (drivers/pinctrl,
    drivers/mfd, arch/..., another subsystem not fetched) is dropped, and a binding implemented both inside
    and outside the tree keeps only its files inside the tree (the mapper cannot see the others either).
  - Shared drivers: a fallback compatible (``snps,dw-apb-uart``) makes the common driver the true file of
    every binding that lists it; that is what the kernel does, but it also makes those bindings easier.
  - Bindings without a compatible (common schemas such as ``serial.yaml``) and bindings matching more than 4
    files are dropped, so the set leans to bindings with one specific driver.
  - The section path keeps only the folders of ``$id`` (``bindings/serial``) and the title: the file name
    usually spells a compatible string. The title itself names the device (``Amlogic Meson SoC UART``), as any
    datasheet section title would, and stays in the query.
  - Symbols: the truth holds only the match table, probe and init names, while SpecMap keeps up to
    ``symbols_k`` symbols, so symbol precision (and F1) is bounded well below 1 by construction.
  - There is no human judgement: a header or helper file that really implements part of the binding is a
    false positive here.

Prints JSON lines {"bench": "specmap_<metric>", "scorer", "figure": hierarchical, "baseline": flat BM25 over
every file (same queries and k, same run), "ratio"} for file F1, file mapping accuracy, symbol F1, MAP and
recall@5, then the folder recall (share of sections where M1 kept the folder of a true file, against the folders
of the flat baseline's chosen files; with the share of those sections whose true files M2 still missed), the
sections and the seconds (sums of per-section seconds; map stage and eval wall times too), and the side-by-side
table on stderr. Scorers other than bm25 (``--scorers``, default ``bm25,fusion``) run when
:mod:`firmlm.specmap.scorer_factory` builds them and up to three timed sections say their map stage fits
``--scorer-budget-s``; otherwise a {"bench": "specmap_skipped", "scorer", "reason"} line says why.
The first run unpacks the filtered tree from the cached tarball (about half a minute); later runs reuse it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE = "linux"
BINDINGS = "Documentation/devicetree/bindings"
# subsystem: (binding folder, driver folders)
SUBSYSTEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serial": ("serial", ("drivers/tty/serial",)),
    "i2c": ("i2c", ("drivers/i2c/busses",)),
    "spi": ("spi", ("drivers/spi",)),
    "rtc": ("rtc", ("drivers/rtc",)),
    "pwm": ("pwm", ("drivers/pwm",)),
    "watchdog": ("watchdog", ("drivers/watchdog",)),
    "iio-adc": ("iio/adc", ("drivers/iio/adc",)),
    "gpio": ("gpio", ("drivers/gpio",)),
    "mmc": ("mmc", ("drivers/mmc/host",)),
    "usb": ("usb", ("drivers/usb",)),
    "can": ("net/can", ("drivers/net/can",)),
    "timer": ("timer", ("drivers/clocksource",)),
    "irqchip": ("interrupt-controller", ("drivers/irqchip",)),
}
SUFFIXES = (".c", ".h", ".yaml", "Kconfig", "Makefile")
METRICS = (("file_f1", "file_f1"), ("accuracy", "accuracy"), ("symbol_f1", "symbol_f1"), ("map", "map"),
           ("recall_at_5", "recall@5"))
MIN_FILES, MAX_FILES = 1, 4

_OF_TABLE = re.compile(r"^(?:static\s+)?(?:const\s+)?struct\s+of_device_id\s+(?:__\w+\s+)*(?P<name>\w+)\s*\[[^\]]*\]"
                       r"[^=;{]*=\s*\{(?P<body>.*?)^\}\s*;", re.M | re.S)
_COMPATIBLE = re.compile(r"\.compatible\s*=\s*\"(?P<value>[^\"]+)\"")
_OF_MATCH_USE = re.compile(r"\.of_match_table\s*=\s*(?:of_match_ptr\s*\(\s*)?&?\s*(?P<name>\w+)")
_DEVICE_TABLE = re.compile(r"MODULE_DEVICE_TABLE\s*\(\s*of\s*,\s*(?P<name>\w+)\s*\)")
_DECLARE = re.compile(r"\b(?:IRQCHIP_DECLARE|TIMER_OF_DECLARE|CLOCKSOURCE_OF_DECLARE)\s*\(\s*\w+\s*,\s*"
                      r"\"(?P<value>[^\"]+)\"\s*,\s*(?P<init>\w+)\s*\)")
_IRQCHIP_MATCH = re.compile(r"\bIRQCHIP_MATCH\s*\(\s*\"(?P<value>[^\"]+)\"\s*,\s*(?P<init>\w+)\s*\)")
_DRIVER_STRUCT = re.compile(r"^(?:static\s+)?(?:const\s+)?struct\s+\w+\s+(?:__\w+\s+)*(?P<name>\w+)\s*=\s*\{"
                            r"(?P<body>.*?)^\}\s*;", re.M | re.S)
_PROBE = re.compile(r"\.probe(?:_new)?\s*=\s*(?P<name>\w+)")
_PROBE_MACRO = re.compile(r"\b(?:module_platform_driver_probe|platform_driver_probe)\s*\(\s*&?\s*(?P<driver>\w+)\s*,"
                          r"\s*(?P<probe>\w+)\s*\)")
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fetch_tree(max_age_days: float | None = None) -> Path:
    """The filtered linux tree (bindings + driver folders) from the cached source package."""
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.models.references import cache_dir

    include = [f"{BINDINGS}/{folder}/*.yaml" for folder, _ in SUBSYSTEMS.values()]
    include += [f"{d}/*" for _, drivers in SUBSYSTEMS.values() for d in drivers]
    tree = AptSourceFetcher(cache_dir()).fetch(PACKAGE, SUFFIXES, include, [])
    log(f"# tree: {tree.path} (linux {tree.version})")
    return tree.path


def scan_matches(root: Path, folders: list[str]) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """compatible string → files listing it in a driver match table; (compatible, file) → the true symbols."""
    files_of: dict[str, set[str]] = defaultdict(set)
    symbols_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".c", ".h") or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            text = _COMMENTS.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
            if "compatible" not in text and "_DECLARE" not in text and "IRQCHIP_MATCH" not in text:
                continue
            used = {m["name"] for m in _OF_MATCH_USE.finditer(text)} | {m["name"] for m in _DEVICE_TABLE.finditer(text)}
            probes: dict[str, set[str]] = defaultdict(set)  # table → probe functions of drivers using it
            macro_probes = {m["driver"]: m["probe"] for m in _PROBE_MACRO.finditer(text)}
            for driver in _DRIVER_STRUCT.finditer(text):
                tables = {m["name"] for m in _OF_MATCH_USE.finditer(driver["body"])}
                found = {m["name"] for m in _PROBE.finditer(driver["body"])}
                if driver["name"] in macro_probes:
                    found.add(macro_probes[driver["name"]])
                for table in tables:
                    probes[table] |= {p for p in found if p != "NULL"}
            for table in _OF_TABLE.finditer(text):
                if table["name"] not in used:
                    continue
                for m in _COMPATIBLE.finditer(table["body"]):
                    files_of[m["value"]].add(rel)
                    symbols_of[(m["value"], rel)] |= {table["name"], *probes.get(table["name"], ())}
            for pattern in (_DECLARE, _IRQCHIP_MATCH):
                for m in pattern.finditer(text):
                    files_of[m["value"]].add(rel)
                    symbols_of[(m["value"], rel)].add(m["init"])
    return files_of, symbols_of


def read_bindings(root: Path) -> list[dict]:
    """Every binding of the chosen subsystems: subsystem, repo-relative path, title, compatible strings."""
    from firmlm.errors import DocumentError
    from firmlm.specmap.documents import read_document

    out, skipped = [], 0
    for subsystem, (folder, _) in SUBSYSTEMS.items():
        for path in sorted((root / BINDINGS / folder).rglob("*.yaml")):
            rel = path.relative_to(root / BINDINGS).as_posix()
            try:
                sections = read_document(path)
            except DocumentError:
                skipped += 1
                continue
            for section in sections:
                out.append({"subsystem": subsystem, "binding": rel, "source": path, "title": section.title,
                            "compatible": list(section.metadata.get("compatible") or [])})
    log(f"# bindings read: {len(out)} ({skipped} YAML files that are no binding skipped)")
    return out


def select(bindings: list[dict], files_of: dict[str, set[str]], symbols_of: dict[tuple[str, str], set[str]],
           max_sections: int) -> tuple[list[dict], dict[str, int]]:
    """Bindings with 1-4 true files, round-robin over subsystems (each sorted by path), up to ``max_sections``."""
    reasons: dict[str, int] = defaultdict(int)
    eligible: dict[str, list[dict]] = defaultdict(list)
    for b in bindings:
        if not b["compatible"]:
            reasons["no compatible string"] += 1
            continue
        files = sorted({f for c in b["compatible"] for f in files_of.get(c, ())})
        if not files:
            reasons["no driver in the fetched folders"] += 1
            continue
        if not MIN_FILES <= len(files) <= MAX_FILES:
            reasons[f"more than {MAX_FILES} files"] += 1
            continue
        symbols = sorted({s for c in b["compatible"] for f in files for s in symbols_of.get((c, f), ())})
        eligible[b["subsystem"]].append({**b, "files": files, "symbols": symbols})
    queues = [list(v) for _, v in sorted(eligible.items())]
    chosen: list[dict] = []
    while len(chosen) < max_sections and any(queues):
        for queue in queues:
            if queue and len(chosen) < max_sections:
                chosen.append(queue.pop(0))
    reasons["eligible"] = sum(len(v) for v in eligible.values())
    return chosen, dict(reasons)


def write_set(run: Path, chosen: list[dict]) -> Path:
    """Copy the chosen bindings under RUN/bindings and write RUN/ground_truth.json; returns its path."""
    documents = []
    for b in chosen:
        target = run / "bindings" / b["binding"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(b["source"], target)
        documents.append({"document": f"bindings/{b['binding']}",
                          "sections": {b["title"]: {"files": b["files"], "symbols": b["symbols"]}}})
    truth = run / "ground_truth.json"
    truth.write_text(json.dumps({"documents": documents}, indent=1), encoding="utf-8")
    return truth


def scorer_problem(name: str, run: Path, repo: Path, sections: int, budget_s: float,
                   documents_dir: str = "bindings") -> str | None:
    """None when ``name`` can be built and its map stage should fit ``budget_s``; else why not.

    A scorer other than bm25 is built through the scorer factory and timed on up to two sections (the hierarchy
    directly, its model loaded first); the whole run is extrapolated from that, on this machine.
    """
    if name == "bm25":
        return None
    try:
        from firmlm.config import MapConfig
        from firmlm.models.references import cache_dir
        from firmlm.specmap.hierarchy import Hierarchy, HierarchySettings
        from firmlm.specmap.repository import RepositoryIndex
        from firmlm.specmap.scorer_factory import make_scorer
        from firmlm.specmap.scorers import Candidate
        from firmlm.specmap.stage import document_files, read_sections

        scorer = make_scorer(name)
        scorer.rank("uart", [Candidate("a", "uart driver"), Candidate("b", "spi")], 1)  # loads the model
        index = RepositoryIndex.build(repo, cache_dir() / "specmap" / "symbols")
        probe = read_sections(document_files(run / documents_dir), MapConfig(), [])[:3]
        hierarchy = Hierarchy(index, scorer, HierarchySettings(workers=1))
        times = []
        for section in probe:  # the first section also embeds the repository once: timed apart
            started = time.perf_counter()
            hierarchy.map_section(section)
            times.append(time.perf_counter() - started)
            if times[0] > budget_s:
                break
        timed = len(times)
        per_section = times[-1] if timed > 1 else times[0]
    except Exception as exc:  # noqa: BLE001 - any failure means: skip this scorer, say why
        return f"{type(exc).__name__}: {exc}"
    estimate = times[0] + per_section * (sections - 1)
    log(f"# {name}: first section {times[0]:.1f} s, then {per_section:.1f} s per section (timed on {timed}); "
        f"~{estimate:.0f} s for {sections}")
    if estimate > budget_s:
        return (f"too slow here: first section {times[0]:.1f} s, then {per_section:.1f} s per section (timed on "
                f"{timed}), so ~{estimate:.0f} "
                f"s for {sections} sections (budget --scorer-budget-s {budget_s:.0f}); run with fewer --max-sections, "
                f"a larger budget or on a faster machine")
    return None


def folder_diagnostics(run_map_dir: Path, eval_result: dict) -> dict[str, float]:
    """Where the hierarchy lost the true files: M1 (no true file's folder kept) or M2 (folder kept, file not)."""
    from firmlm.specmap.groundtruth import match_sections
    from firmlm.specmap.mapping import SectionMapping

    mapping = json.loads((run_map_dir / "mapping.json").read_text())
    by_document: dict[str, list[SectionMapping]] = defaultdict(list)
    for d in mapping["documents"]:
        by_document[Path(d["document"]).resolve().relative_to(run_map_dir.resolve().parent.parent).as_posix()] += [
            SectionMapping.from_dict(s) for s in d["sections"]]
    m1_hit = m2_miss = 0
    records = eval_result["hierarchical"]["per_section"]
    for r in records:
        matched = match_sections(by_document.get(r["document"], []), r["title"])
        folders = {name for m in matched for name, _ in m.folders}
        truth_folders = {os.path.dirname(f) for f in r["truth_files"]}
        if folders & truth_folders:
            m1_hit += 1
            if not set(r["files"]) & set(r["truth_files"]):
                m2_miss += 1
    flat_hit = sum(bool({os.path.dirname(f) for f in r["files"]} & {os.path.dirname(f) for f in r["truth_files"]})
                   for r in eval_result["flat_bm25"]["per_section"])
    n = max(len(records), 1)
    return {"m1_folder_recall": m1_hit / n, "flat_folder_recall": flat_hit / n,
            "m2_miss_given_folder": m2_miss / max(m1_hit, 1)}


def run_scorer(scorer: str, run: Path, repo: Path, truth: Path, workers: int, documents_dir: str = "bindings") -> dict:
    """The map stage over ``RUN/documents_dir`` into ``repo`` with ``scorer``, then its evaluation against
    ``truth`` next to flat BM25 (both timed), and where the hierarchy lost the true files."""
    from firmlm.config import load_config
    from firmlm.models.references import cache_dir
    from firmlm.specmap.stage import run_map_eval
    from firmlm.stages import run_stages

    documents = json.dumps([{"path": str(run / documents_dir), "repository": str(repo)}])
    cfg = load_config(None, [f"run_dir={json.dumps(str(run / scorer))}", f"map.documents={documents}",
                             f"map.scorer={scorer}", f"map.workers={workers}"])
    started = time.perf_counter()
    run_stages(cfg, ["map"], force=True)
    map_seconds = time.perf_counter() - started
    started = time.perf_counter()
    table = run_map_eval(cfg.map, cfg.corpus, cfg.run_dir / "map", truth, cache_dir() / "specmap")
    eval_seconds = time.perf_counter() - started
    result = json.loads((cfg.run_dir / "map" / "eval.json").read_text())
    return {"table": table, "result": result, "map_seconds": map_seconds, "eval_seconds": eval_seconds,
            "diagnostics": folder_diagnostics(cfg.run_dir / "map", result)}


def ratio(figure: float | None, baseline: float | None) -> float | None:
    return round(figure / baseline, 4) if figure is not None and baseline else None


def print_scorer(scorer: str, out: dict, per_group: dict[str, int], prefix: str = "specmap") -> None:
    """The side-by-side table (stderr) and one JSON line per figure (stdout) of a :func:`run_scorer` result."""
    hier, flat = out["result"]["hierarchical"], out["result"]["flat_bm25"]
    log(f"\n## scorer {scorer} (hierarchical) vs flat BM25\n{out['table']}")
    for bench, key in METRICS:
        figure, baseline = hier["macro"][key], flat["macro"][key]
        print(json.dumps({"bench": f"{prefix}_{bench}", "scorer": scorer, "figure": round(figure, 4),
                          "baseline": round(baseline, 4), "ratio": ratio(figure, baseline)}))
    d = out["diagnostics"]
    print(json.dumps({"bench": f"{prefix}_folder_recall", "scorer": scorer,
                      "figure": round(d["m1_folder_recall"], 4), "baseline": round(d["flat_folder_recall"], 4),
                      "ratio": ratio(d["m1_folder_recall"], d["flat_folder_recall"]),
                      "m2_miss_given_folder": round(d["m2_miss_given_folder"], 4)}))
    print(json.dumps({"bench": f"{prefix}_sections", "scorer": scorer, "figure": hier["sections"],
                      "baseline": flat["sections"], "ratio": ratio(hier["sections"], flat["sections"]),
                      "missed": len(hier["missed"]), "per_group": per_group}))
    print(json.dumps({"bench": f"{prefix}_seconds", "scorer": scorer, "figure": round(hier["seconds"], 2),
                      "baseline": round(flat["seconds"], 2), "ratio": ratio(hier["seconds"], flat["seconds"]),
                      "map_stage_s": round(out["map_seconds"], 2), "eval_s": round(out["eval_seconds"], 2)}),
          flush=True)


def run_scorers(args: argparse.Namespace, run: Path, repo: Path, truth: Path, sections: int,
                per_group: dict[str, int], documents_dir: str, prefix: str, timing: tuple[float, float]) -> None:
    """Each of ``--scorers`` that fits its budget: mapped, evaluated and printed; the others with the reason; then
    the total seconds (``timing``: the benchmark's start and the seconds building its set took)."""
    for scorer in [s.strip() for s in args.scorers.split(",") if s.strip()]:
        problem = scorer_problem(scorer, run, repo, sections, args.scorer_budget_s, documents_dir)
        if problem:
            print(json.dumps({"bench": f"{prefix}_skipped", "scorer": scorer, "reason": problem}))
            continue
        print_scorer(scorer, run_scorer(scorer, run, repo, truth, args.workers, documents_dir), per_group, prefix)
    started, build_seconds = timing
    print(json.dumps({"bench": f"{prefix}_total_seconds", "figure": round(time.perf_counter() - started, 1),
                      "build_set_s": round(build_seconds, 1), "run_dir": str(run) if args.run_dir else None}))


def bench_arguments(description: str, scorers: str) -> argparse.ArgumentParser:
    """The options both SpecMap benchmarks take."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scorers", default=scorers, help="comma-separated: bm25, fusion, dense")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scorer-budget-s", type=float, default=600,
                   help="skip a scorer other than bm25 whose map stage is estimated (3 timed sections) to take longer")
    p.add_argument("--run-dir", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    return p


@contextmanager
def bench_run(run_dir: Path | None, prefix: str) -> Iterator[Path]:
    """Quiet library logging and give the run folder: ``run_dir`` (kept), else a temporary one (removed after)."""
    import logging

    import bm25s  # noqa: F401  (sets its logger to DEBUG on import: quiet it)

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    run = (run_dir or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
    run.mkdir(parents=True, exist_ok=True)
    try:
        yield run
    finally:
        if run_dir is None:
            shutil.rmtree(run, ignore_errors=True)


def main() -> None:
    p = bench_arguments(__doc__.split("\n", 1)[0], "bm25,fusion")
    p.add_argument("--max-sections", type=int, default=300)
    p.add_argument("--min-sections", type=int, default=150)
    args = p.parse_args()
    total = time.perf_counter()
    with bench_run(args.run_dir, "specmap-bench-") as run:
        repo = fetch_tree()
        driver_folders = [d for _, drivers in SUBSYSTEMS.values() for d in drivers]
        files_of, symbols_of = scan_matches(repo, driver_folders)
        bindings = read_bindings(repo)
        chosen, reasons = select(bindings, files_of, symbols_of, args.max_sections)
        if len(chosen) < args.min_sections:
            raise SystemExit(f"only {len(chosen)} bindings qualify (need {args.min_sections}): {reasons}")
        truth = write_set(run, chosen)
        per_subsystem = defaultdict(int)
        for b in chosen:
            per_subsystem[b["subsystem"]] += 1
        build_seconds = time.perf_counter() - total
        log(f"# ground truth: {len(chosen)} bindings, {sum(len(b['files']) for b in chosen)} true files; "
            f"per subsystem {dict(sorted(per_subsystem.items()))}; dropped {reasons}; {build_seconds:.1f} s")
        run_scorers(args, run, repo, truth, len(chosen), dict(sorted(per_subsystem.items())), "bindings", "specmap",
                    (total, build_seconds))


if __name__ == "__main__":
    main()
