"""The report's SpecMap section: coverage per document, the sections found not implemented, and the mapping's
evaluation against a flat BM25 baseline when ``firmlm map --eval`` wrote one."""

from __future__ import annotations

from collections import Counter
from typing import Any

from firmlm.report import fmt

STATUS_COLUMNS = (("implemented", "implemented"), ("partially_implemented", "partial"),
                  ("not_implemented", "not implemented"), ("not_applicable", "n/a"))
LISTED_SECTIONS = 15  # not-implemented sections listed per document


def _name(document: str) -> str:
    return document.rsplit("/", 1)[-1]


def coverage_table(documents: list[dict[str, Any]]) -> list[str]:
    """One row per document: sections per status, mapped files and symbols."""
    md = ["| document | repository | sections | " + " | ".join(label for _, label in STATUS_COLUMNS)
          + " | files | symbols |", "|---|---|---:|" + "---:|" * (len(STATUS_COLUMNS) + 2)]
    for doc in documents:
        sections = doc["sections"]
        statuses = Counter(s["status"] for s in sections)
        files = {f for s in sections for f, _ in s["files"]}
        symbols = sum(len(s["symbols"]) for s in sections)
        md.append(f"| {_name(doc['document'])} | {doc['repository']} | {len(sections)} | "
                  + " | ".join(fmt.count(statuses.get(key, 0)) for key, _ in STATUS_COLUMNS)
                  + f" | {fmt.count(len(files))} | {fmt.count(symbols)} |")
    return md


def not_implemented_lines(documents: list[dict[str, Any]]) -> list[str]:
    """Per document, the sections M4 found no implementation for (the first ``LISTED_SECTIONS``)."""
    md: list[str] = []
    for doc in documents:
        titles = [" > ".join(s["path"]) or s["title"] for s in doc["sections"] if s["status"] == "not_implemented"]
        if not titles:
            continue
        more = f", and {len(titles) - LISTED_SECTIONS} more" if len(titles) > LISTED_SECTIONS else ""
        md += [f"- **{_name(doc['document'])}**: " + "; ".join(titles[:LISTED_SECTIONS]) + more]
    return md


def mapping_lines(mapping: dict[str, Any], summary: dict[str, Any] | None,
                  evaluation: dict[str, Any] | None) -> list[str]:
    """The whole section, from RUN/map's mapping.json, summary.json and (optional) eval.json."""
    documents = mapping.get("documents") or []
    sections = sum(len(d["sections"]) for d in documents)
    summary = summary or {}
    seconds = summary.get("map_seconds")
    md = ["## Datasheet-to-code mapping (SpecMap)", "",
          f"{fmt.count(sections)} sections of {fmt.count(len(documents))} documents traced to folders, files and "
          f"symbols with the `{mapping.get('scorer', '?')}` scorer"
          + (f" in {seconds:,.0f} s" if isinstance(seconds, (int, float)) else "")
          + f"; {fmt.count(summary.get('training_documents'))} training documents pair section text with its code.",
          ""]
    md += coverage_table(documents) + [""]
    missing = not_implemented_lines(documents)
    if missing:
        md += ["Not implemented (no file holds the section's key terms):", ""] + missing + [""]
    for skipped in mapping.get("skipped") or []:
        md.append(f"- skipped {_name(skipped['document'])}: {skipped['reason']}")
    if mapping.get("skipped"):
        md.append("")
    if evaluation:
        md += [f"Against the ground truth `{_name(evaluation['ground_truth'])}` (95% intervals over sections; the "
               "whole table: `firmlm map --eval`, `map/eval.json`), next to flat BM25 over every file of the "
               "repository:", ""] + evaluation_table(evaluation) + [""]
    return md


EVALUATION_ROWS = (("accuracy", "file mapping accuracy"), ("file_f1", "file F1"), ("symbol_f1", "symbol F1"),
                   ("recall@5", "recall@5"), ("map", "MAP"))


def evaluation_table(evaluation: dict[str, Any]) -> list[str]:
    """The headline figures of RUN/map/eval.json, hierarchical next to flat BM25."""
    methods = [evaluation["hierarchical"], evaluation["flat_bm25"]]

    def cell(result: dict[str, Any], key: str) -> str:
        value, interval = result["macro"].get(key), result.get("intervals", {}).get(key)
        if value is None:
            return fmt.MISSING
        return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    md = ["| metric | hierarchical | flat BM25 |", "|---|---:|---:|"]
    md += [f"| {label} | {cell(methods[0], key)} | {cell(methods[1], key)} |" for key, label in EVALUATION_ROWS]
    md.append(f"| sections (missed) | {methods[0]['sections']} ({len(methods[0]['missed'])}) | "
              f"{methods[1]['sections']} ({len(methods[1]['missed'])}) |")
    return md
