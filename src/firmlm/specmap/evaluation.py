"""``firmlm map --eval``: SpecMap's mappings scored against a ground truth, next to a flat BM25 baseline.

Per ground-truth section (its mappings pooled, see :mod:`firmlm.specmap.groundtruth`) and macro-averaged over
sections: file mapping accuracy (the share of true files among the chosen ``files``), precision / recall / F1
of the chosen files and of the chosen symbol names, recall@k and average precision of ``ranked_files`` (MAP),
and the share of chosen files that exist under the repository root. Micro (pooled-count) P/R/F1, 95% bootstrap
intervals over sections for accuracy and file F1, and the method's total LLM tokens and seconds come with them.
A ground-truth section no mapping matches is a miss: every figure 0 (undefined ones stay undefined), listed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from firmlm.specmap.groundtruth import GroundTruth, document_key, load_ground_truth, match_sections
from firmlm.specmap.mapping import SectionMapping, SymbolHit
from firmlm.specmap.metrics import (average_precision, bootstrap_mean_interval, existing, mean, normalise_path,
                                    precision_recall_f1, recall_at_k, share_found)
from firmlm.specmap.repository import RepositoryIndex
from firmlm.specmap.scorers import BM25Scorer, Scorer, reciprocal_rank_fusion
from firmlm.specmap.sections import Section
from firmlm.specmap.symbols import Symbol

__all__ = ["evaluate_mapping", "flat_bm25_baseline", "load_ground_truth", "render_comparison"]

SET_METRICS = ("file_precision", "file_recall", "file_f1", "symbol_precision", "symbol_recall", "symbol_f1")


def _pool(matched: Sequence[SectionMapping]) -> tuple[list[str], list[str], list[str]]:
    """Chosen files, ranked files (fused by reciprocal rank) and symbol names of the matched mappings."""
    files = list(dict.fromkeys(normalise_path(name) for m in matched for name, _ in m.files))
    rankings = [[normalise_path(name) for name, _ in (m.ranked_files or m.files)] for m in matched]
    if len(rankings) == 1:
        ranked = list(dict.fromkeys(rankings[0]))
    else:  # parts of a split section: one ranking, fused by reciprocal rank
        ranked = [name for name, _ in reciprocal_rank_fusion(rankings)]
    symbols = list(dict.fromkeys(s.name for m in matched for s in m.symbols))
    return files, ranked, symbols


def _section_figures(files: list[str], ranked: list[str], symbols: list[str], truth_files: Sequence[str],
                     truth_symbols: Sequence[str], ks: Sequence[int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {"accuracy": share_found(files, truth_files)}
    for kind, chosen, truth in (("file", files, truth_files), ("symbol", symbols, truth_symbols)):
        out.update({f"{kind}_{name}": value for name, value in precision_recall_f1(chosen, truth).items()})
    out.update({f"recall@{k}": recall_at_k(ranked, truth_files, k) for k in ks})
    out["average_precision"] = average_precision(ranked, truth_files)
    return out


def _missed_figures(truth_files: Sequence[str], ks: Sequence[int]) -> dict[str, float | None]:
    ranking = None if not truth_files else 0.0
    return {"accuracy": ranking, **dict.fromkeys(SET_METRICS, 0.0), **{f"recall@{k}": ranking for k in ks},
            "average_precision": ranking}


def _micro(counts: dict[str, list[int]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, (hits, chosen, truth) in counts.items():
        out[f"{kind}_precision"] = hits / chosen if chosen else float(not truth)
        out[f"{kind}_recall"] = hits / truth if truth else float(not chosen)
        out[f"{kind}_f1"] = 2 * hits / (chosen + truth) if chosen + truth else 1.0
    return out


def evaluate_mapping(mappings: Sequence[SectionMapping], truth: GroundTruth, *, ks: Sequence[int] = (1, 3, 5, 10),
                     roots: Mapping[str, str | Path] | None = None, replicates: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """Score ``mappings`` against ``truth``; ``roots`` maps a document (as given) to its repository root.

    Returns ``per_section`` figures, their ``macro`` means (``map`` is the mean average precision), ``micro``
    P/R/F1, ``intervals``, the file ``existence_rate`` over every chosen file of the ground truth's documents
    (None without a root), their ``tokens_used`` and ``seconds`` (the sum of per-section seconds, more than the
    wall time when sections ran in parallel), and the ``missed`` sections.
    """
    roots = {document_key(d): Path(r) for d, r in (roots or {}).items()}
    by_document: dict[str, list[SectionMapping]] = {}
    for m in mappings:
        by_document.setdefault(document_key(m.document), []).append(m)
    per_section: list[dict[str, Any]] = []
    missed: list[dict[str, str]] = []
    used: list[SectionMapping] = []
    counts = {"file": [0, 0, 0], "symbol": [0, 0, 0]}
    for doc in truth.documents:
        doc_mappings = by_document.get(document_key(doc.document), [])
        used += doc_mappings
        root = roots.get(document_key(doc.document))
        for section in doc.sections:
            matched = match_sections(doc_mappings, section.title)
            files, ranked, symbols = _pool(matched)
            record: dict[str, Any] = {"document": doc.document, "title": section.title,
                                      "matched": [m.title for m in matched], "files": files,
                                      "truth_files": list(section.files)}
            if matched:
                record.update(_section_figures(files, ranked, symbols, section.files, section.symbols, ks))
            else:
                record.update(_missed_figures(section.files, ks))
                missed.append({"document": doc.document, "title": section.title})
            exists = existing(files, root) if root is not None and files else []
            record["existence_rate"] = sum(exists) / len(exists) if exists else None
            per_section.append(record)
            for kind, chosen, true in (("file", files, section.files), ("symbol", symbols, section.symbols)):
                for i, n in enumerate((len(set(chosen) & set(true)), len(set(chosen)), len(set(true)))):
                    counts[kind][i] += n
    names = ["accuracy", *SET_METRICS, *(f"recall@{k}" for k in ks)]
    macro = {name: mean(r[name] for r in per_section) for name in names}
    macro["map"] = mean(r["average_precision"] for r in per_section)
    chosen_files = [(document_key(m.document), normalise_path(f)) for m in used for f, _ in m.files]
    checked = [(doc, f) for doc, f in chosen_files if doc in roots]
    found = sum(ok for doc, f in checked for ok in existing([f], roots[doc]))
    return {
        "sections": len(per_section),
        "sections_with_files": sum(r["accuracy"] is not None for r in per_section),
        "ks": list(ks),
        "macro": macro,
        "micro": _micro(counts),
        "intervals": {name: bootstrap_mean_interval((r[name] for r in per_section), replicates, seed)
                      for name in ("accuracy", "file_f1")},
        "existence_rate": found / len(checked) if checked else None,
        "chosen_files": len(chosen_files),
        "tokens_used": sum(m.tokens_used for m in used),
        "seconds": round(sum(m.seconds for m in used), 4),
        "missed": missed,
        "missed_documents": [d.document for d in truth.documents if document_key(d.document) not in by_document],
        "per_section": per_section,
    }


def flat_bm25_baseline(sections: Sequence[Section], index: RepositoryIndex, *, k: int, symbols_k: int = 10,
                       ranked_k: int = 20, scorer: Scorer | None = None,
                       queries: Sequence[str] | None = None) -> list[SectionMapping]:
    """Every file of the repository ranked against each section, no folders: the top ``k`` files are chosen,
    then the best ``symbols_k`` of their symbols, both by BM25 (or ``scorer``); ``ranked_files`` keeps the
    first ``max(ranked_k, k)``. The query is the section's path, title and text unless ``queries`` gives one per
    section (e.g. the hierarchy's own, for a comparison on equal terms). Each mapping records its seconds.
    """
    if queries is not None and len(queries) != len(sections):
        raise ValueError(f"flat_bm25_baseline: {len(queries)} queries for {len(sections)} sections")
    scorer = scorer or BM25Scorer()
    candidates = index.file_candidates()
    by_id: dict[str, Symbol] = {}
    for s in index.symbols:
        by_id.setdefault(f"{s.path}:{s.line}:{s.name}", s)  # the id symbol_candidates gives
    out = []
    for n, section in enumerate(sections):
        started = time.perf_counter()
        query = queries[n] if queries is not None else "\n".join((" ".join(section.path), section.title,
                                                                  section.text))
        ranked = scorer.rank(query, candidates, max(ranked_k, k)) if candidates else []
        files = ranked[:k]
        symbol_set = index.symbol_candidates([name for name, _ in files]) if files else []
        hits = scorer.rank(query, symbol_set, symbols_k) if symbol_set else []
        symbols = [SymbolHit(s.name, s.kind, s.path, s.line, s.end, score) for cid, score in hits
                   if (s := by_id.get(cid)) is not None]
        out.append(SectionMapping(document=section.document, title=section.title, path=list(section.path),
                                  span=list(section.span), span_unit=section.span_unit, files=files,
                                  ranked_files=ranked, symbols=symbols,
                                  seconds=round(time.perf_counter() - started, 4)))
    return out


def _cell(value: Any, interval: list[float] | None = None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return f"{text} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else text


def render_comparison(result_hier: dict[str, Any], result_flat: dict[str, Any]) -> str:
    """A Markdown table (metric | hierarchical | flat BM25) of two :func:`evaluate_mapping` results."""
    labels = [("accuracy", "File mapping accuracy"), ("file_precision", "File precision"),
              ("file_recall", "File recall"), ("file_f1", "File F1"), ("symbol_precision", "Symbol precision"),
              ("symbol_recall", "Symbol recall"), ("symbol_f1", "Symbol F1")]
    labels += [(f"recall@{k}", f"Recall@{k} (ranked files)") for k in result_hier.get("ks", [])]
    labels += [("map", "MAP (ranked files)")]
    rows = [(label, *(_cell(r["macro"].get(key), r["intervals"].get(key)) for r in (result_hier, result_flat)))
            for key, label in labels]
    rows += [(f"{label} (micro)", *(_cell(r["micro"][key]) for r in (result_hier, result_flat)))
             for key, label in (("file_f1", "File F1"), ("symbol_f1", "Symbol F1"))]
    rows += [("File existence rate", *(_cell(r["existence_rate"]) for r in (result_hier, result_flat))),
             ("LLM tokens", *(_cell(r["tokens_used"]) for r in (result_hier, result_flat))),
             ("Seconds", *(_cell(float(r["seconds"]), digits=2) for r in (result_hier, result_flat))),
             ("Sections (missed)", *(f"{r['sections']} ({len(r['missed'])})" for r in (result_hier, result_flat)))]
    header = ("Metric", "Hierarchical", "Flat BM25")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
