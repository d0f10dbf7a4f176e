"""Chunking sections: adaptive splits at paragraph and line boundaries, merges of small siblings."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmlm.specmap.documents import read_document
from firmlm.specmap.sections import Section, chunk_sections, split_section

DOCS = Path(__file__).parents[1] / "fixtures" / "specmap" / "documents"


def paragraph(k: int, lines: int = 3, width: int = 60) -> str:
    return "\n".join([f"Paragraph {k}"] + [f"p{k} line {i} ".ljust(width, "x") for i in range(1, lines)])


def section(text: str, title: str = "Registers", path: tuple[str, ...] = ("USART", "Registers"),
            span: tuple[int, int] | None = None, **kw) -> Section:
    """A line-unit section whose heading is at line 10 and whose text fills the lines after it."""
    return Section(document="rm.md", title=title, path=path, text=text,
                   span=span or (10, 11 + text.count("\n")), **kw)


def test_a_section_that_fits_is_returned_unchanged():
    s = section(paragraph(1))
    assert chunk_sections([s], max_chars=4000, min_chars=0) == [s]
    assert split_section(s, 4000)[0] is s


def test_long_sections_split_at_paragraphs_with_part_titles_and_exact_line_spans():
    text = "\n\n".join(paragraph(k) for k in range(1, 11))  # 10 paragraphs of ~135 chars
    parts = chunk_sections([section(text)], max_chars=500, min_chars=0)
    n = len(parts)
    assert n == 4
    assert [p.title for p in parts] == [f"Registers (part {i}/{n})" for i in range(1, n + 1)]
    assert all(p.path == ("USART", "Registers") and len(p.text) <= 500 for p in parts)
    assert all(p.text.startswith("Paragraph ") for p in parts)  # cuts fall between paragraphs
    assert "\n\n".join(p.text for p in parts) == text
    lines = text.split("\n")
    for p in parts:
        first = lines.index(p.text.split("\n")[0]) + 11
        last = first + p.text.count("\n")
        assert p.span == ((10 if p.metadata["part"] == 1 else first), last)
    assert parts[0].span[0] == 10 and parts[-1].span[1] == 11 + text.count("\n")
    assert [p.metadata["part"] for p in parts] == list(range(1, n + 1)) and parts[0].metadata["parts"] == n


def test_parts_are_balanced_rather_than_greedy():
    text = "\n\n".join(paragraph(k, lines=4, width=70) for k in range(1, 6))  # 5 paragraphs of ~222 chars
    parts = split_section(section(text), max_chars=1000)
    sizes = [len(p.text) for p in parts]
    assert len(parts) == 2  # greedy packing would give 4 paragraphs + 1
    assert [p.text.count("Paragraph") for p in parts] == [2, 3]  # the smallest largest part
    assert max(sizes) < 750


def test_an_oversized_paragraph_is_cut_at_line_boundaries_and_a_long_line_at_spaces():
    lines = [f"line {i:02d} " + " ".join(["word"] * 8) for i in range(30)]
    parts = split_section(section("\n".join(lines)), max_chars=200)
    assert all(len(p.text) <= 200 for p in parts)
    assert [line for p in parts for line in p.text.split("\n")] == lines
    long_line = " ".join(f"w{i:03d}" for i in range(200))  # 999 chars, one line
    cut = split_section(section(long_line), max_chars=100)
    assert all(len(p.text) <= 100 for p in cut)
    assert " ".join(p.text for p in cut) == long_line
    assert cut[0].span == (10, 11) and {p.span for p in cut[1:]} == {(11, 11)}


def test_page_spans_of_parts_follow_form_feeds():
    pages = ["\n".join(f"page {p} line {i} " + "x" * 40 for i in range(6)) for p in range(3, 7)]
    s = Section("dm.pdf", "27.6 Registers", ("27 USART", "27.6 Registers"), "\n\f\n".join(pages), (3, 6), "page")
    parts = split_section(s, max_chars=700)
    assert len(parts) > 1
    for part in parts:
        first_page = int(part.text.split()[1])
        last_page = int(part.text.split("\n")[-1].split()[1])
        assert part.span == ((3 if part.metadata["part"] == 1 else first_page), last_page)


def test_rendered_sections_keep_the_whole_span_in_every_part():
    text = "\n".join(f"Register R{i} @ 0x{4 * i:02X}: register {i}" for i in range(100))
    parts = split_section(section(text, span=(40, 90), rendered=True), max_chars=800)
    assert len(parts) > 1 and {p.span for p in parts} == {(40, 90)}


def test_small_consecutive_siblings_merge_up_to_max_chars():
    parent = ("USART", "Registers")
    small = [Section("rm.md", f"USART_{r}", parent + (f"USART_{r}",), f"{r} register, offset {i}.",
                     (i * 3 + 1, i * 3 + 2), metadata={"offset": i}) for i, r in enumerate(["SR", "DR", "BRR", "CR1"])]
    [merged] = chunk_sections(small, max_chars=4000, min_chars=300)
    assert merged.title == "USART_SR + USART_DR + USART_BRR + USART_CR1"
    assert merged.path == parent + (merged.title,)
    assert merged.span == (1, 11) and merged.rendered
    assert merged.text.startswith("USART_SR\nSR register, offset 0.\n\nUSART_DR\n")
    assert [m["metadata"]["offset"] for m in merged.metadata["merged"]] == [0, 1, 2, 3]
    assert [m["span"] for m in merged.metadata["merged"]][1] == [4, 5]
    capped = chunk_sections(small, max_chars=70, min_chars=60)  # two fit per chunk
    assert [c.title for c in capped] == ["USART_SR + USART_DR", "USART_BRR + USART_CR1"]


def test_no_merge_across_parents_documents_or_between_large_sections():
    a = Section("rm.md", "A", ("X", "A"), "a" * 50, (1, 2))
    b = Section("rm.md", "B", ("Y", "B"), "b" * 50, (3, 4))  # another parent
    c = Section("other.md", "C", ("Y", "C"), "c" * 50, (1, 2))  # another document
    big1 = Section("rm.md", "D", ("Y", "D"), "d" * 400, (5, 6))
    big2 = Section("rm.md", "E", ("Y", "E"), "e" * 400, (7, 8))
    assert chunk_sections([a, b, c, big1, big2], max_chars=4000, min_chars=300) == [a, b, c, big1, big2]
    tiny = Section("rm.md", "F", ("Y", "F"), "f" * 20, (9, 9))
    out = chunk_sections([big1, big2, tiny], max_chars=4000, min_chars=300)
    assert [s.title for s in out] == ["D", "E + F"]


def test_chunking_a_read_document_is_deterministic_and_keeps_line_spans_exact():
    path = DOCS / "usart_reference.md"
    lines = path.read_text().splitlines()
    parts = chunk_sections(read_document(path), max_chars=120, min_chars=0)
    assert parts == chunk_sections(read_document(path), max_chars=120, min_chars=0)
    assert len(parts) == 13 and all(len(p.text) <= 120 and not p.rendered for p in parts)
    for part in parts:  # each part's text is exactly the document's lines ending at span[1]
        n = part.text.count("\n")
        assert part.text.splitlines() == [l.rstrip() for l in lines[part.span[1] - 1 - n:part.span[1]]]
    assert [p.span for p in parts if p.title.startswith("27.6.4")] == [(46, 50), (51, 51)]
    merged = chunk_sections(read_document(path), max_chars=400, min_chars=100)
    assert merged[0].title == "usart_reference + 27 Universal synchronous asynchronous receiver transmitter (USART)"
    assert merged[0].span == (5, 10) and merged[0].path == (merged[0].title,)
    assert all(s.as_dict()["path"] == list(s.path) for s in merged)


def test_bad_limits():
    with pytest.raises(ValueError):
        chunk_sections([], max_chars=100, min_chars=200)
    with pytest.raises(ValueError):
        chunk_sections([], max_chars=0, min_chars=0)
