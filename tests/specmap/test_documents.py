"""Reading hardware documents into sections: Markdown, reStructuredText, CMSIS-SVD, DT bindings, PDF."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

from firmlm.errors import DocumentError, FirmlmError
from firmlm.specmap import documents
from firmlm.specmap.documents import read_document, reader_for, register_reader
from firmlm.specmap.readers.base import DocumentReader
from firmlm.specmap.readers.svd import dim_names, parse_svd_int
from firmlm.specmap.sections import Section

DOCS = Path(__file__).parents[1] / "fixtures" / "specmap" / "documents"


def by_title(sections: list[Section]) -> dict[str, Section]:
    return {s.title: s for s in sections}


# --- Markdown -------------------------------------------------------------------------------------------------

def test_markdown_headings_build_the_hierarchy_with_line_spans():
    sections = read_document(DOCS / "usart_reference.md")
    usart = "27 Universal synchronous asynchronous receiver transmitter (USART)"
    assert [(s.title, s.path, s.span) for s in sections] == [
        ("usart_reference", ("usart_reference",), (5, 5)),
        (usart, (usart,), (7, 10)),
        ("27.3 USART functional description", (usart, "27.3 USART functional description"), (12, 19)),
        ("27.3.1 Character description",
         (usart, "27.3 USART functional description", "27.3.1 Character description"), (21, 24)),
        ("Baud rate generation", (usart, "Baud rate generation"), (26, 32)),  # setext level 2
        ("27.6.1 Status register (USART_SR)",
         (usart, "27.6 USART registers", "27.6.1 Status register (USART_SR)"), (36, 44)),
        ("27.6.4 Control register 1 (USART_CR1)",
         (usart, "27.6 USART registers", "27.6.4 Control register 1 (USART_CR1)"), (46, 51)),
        ("Appendix", ("Appendix",), (53, 56)),  # setext level 1
    ]
    assert all(s.span_unit == "line" and not s.rendered for s in sections)


def test_markdown_code_fences_and_front_matter_do_not_start_sections():
    sections = by_title(read_document(DOCS / "usart_reference.md"))
    functional = sections["27.3 USART functional description"].text
    assert "# not a heading: this is inside a fenced code block" in functional
    assert functional.endswith("```")
    assert "# an indented code line" in sections["Baud rate generation"].text
    assert "title: USART excerpt" not in "".join(s.text for s in sections.values())
    assert sections["27.6.1 Status register (USART_SR)"].text.splitlines()[-1] == \
        "| 6   | TC   | Transmission complete |"


def test_markdown_text_is_the_documents_own_lines(tmp_path):
    lines = (DOCS / "usart_reference.md").read_text().splitlines()
    for section in read_document(DOCS / "usart_reference.md"):
        n = section.text.count("\n")
        assert section.text.splitlines() == [l.rstrip() for l in lines[section.span[1] - 1 - n:section.span[1]]]


def test_document_is_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(DOCS.parent)
    sections = read_document("./documents/usart_reference.md")
    assert {s.document for s in sections} == {"./documents/usart_reference.md"}


# --- reStructuredText -----------------------------------------------------------------------------------------

def test_rst_levels_follow_the_first_appearance_of_each_adornment():
    sections = read_document(DOCS / "usart_overview.rst")
    top, hw = "STM32 USART controller", "Hardware overview"
    assert [(s.path, s.span) for s in sections] == [
        ((top,), (1, 5)),  # overline + underline "=" is its own style
        ((top, hw), (7, 10)),
        ((top, hw, "Registers"), (12, 20)),
        ((top, hw, "Registers", "Baud rate"), (22, 27)),
        ((top, hw, "Interrupts"), (29, 32)),
        ((top, "Driver usage"), (34, 41)),
    ]
    registers = by_title(sections)["Registers"].text
    assert "Not a title" in registers  # indented text in a directive is never a title
    assert "Trailing paragraph after a transition." in sections[-1].text


# --- CMSIS-SVD ------------------------------------------------------------------------------------------------

def test_svd_one_section_per_peripheral_with_registers_and_fields():
    sections = read_document(DOCS / "stm32f4_mini.svd")
    assert [s.path for s in sections] == [("STM32F4MINI", "USART", "USART2"), ("STM32F4MINI", "USART", "USART1"),
                                          ("STM32F4MINI", "TIM", "TIM2")]
    usart1 = by_title(sections)["USART1"]
    assert usart1.span == (23, 116) and usart1.rendered
    assert usart1.metadata["base_address"] == 0x40011000
    assert usart1.metadata["registers"] == ["SR", "BRR", "CR1", "CR2"]
    lines = usart1.text.splitlines()
    assert lines[0] == "USART1: Universal synchronous asynchronous receiver transmitter"
    assert "Base address: 0x40011000" in lines
    assert "Interrupt USART1 (37): USART1 global interrupt" in lines
    assert "Register SR @ 0x00, reset 0x00C00000, read-write: Status register" in lines
    assert "  TXE [7] read-only: Transmit data register empty" in lines  # bitOffset/bitWidth
    assert "  TC [6] read-write: Transmission complete" in lines  # access inherited from the device
    assert "  DIV_Mantissa [15:4] read-write: mantissa of USARTDIV" in lines  # lsb/msb
    assert "  UE [13] read-write: USART enable" in lines  # bitRange
    assert "  STOP [13:12] read-write: STOP bits" in lines
    assert "  PS [9] read-write: Parity selection (values: 0=Even, 1=Odd)" in lines
    assert "Register CR1 @ 0x0C, reset 0x00000000, read-write: Control register 1" in lines


def test_svd_derived_peripheral_inherits_registers_but_keeps_its_address_and_interrupt():
    sections = by_title(read_document(DOCS / "stm32f4_mini.svd"))
    usart2, usart1 = sections["USART2"], sections["USART1"]
    assert usart2.metadata["base_address"] == 0x40004400
    assert usart2.metadata["derived_from"] == "USART1" and usart2.metadata["group"] == "USART"
    assert usart2.metadata["registers"] == usart1.metadata["registers"]
    assert usart2.metadata["interrupts"] == ["USART2"]
    assert usart2.span == (14, 22)
    assert "Base address: 0x40004400" in usart2.text and "Derived from: USART1" in usart2.text
    assert usart2.text.split("Register SR", 1)[1] == usart1.text.split("Register SR", 1)[1]
    assert "USART1 global interrupt" not in usart2.text


def test_svd_dim_registers_are_expanded_once():
    tim2 = by_title(read_document(DOCS / "stm32f4_mini.svd"))["TIM2"]
    assert tim2.metadata["registers"] == ["CR1", "CCR1", "CCR2", "CCR3", "CCR4", "OR[0]", "OR[1]"]
    assert "Register CCR1, CCR2, CCR3, CCR4 @ 0x34 (+0x4 each), reset 0x00000000, read-write: " \
           "capture/compare register" in tim2.text
    assert tim2.text.count("CCR [31:0]") == 1
    assert "Register CR1 @ 0x00, reset 0x0000, read-write: control register 1" in tim2.text  # 16-bit register
    assert "Register OR[0], OR[1] @ 0x50 (+0x4 each)" in tim2.text


def test_svd_integers_and_dim_names():
    assert [parse_svd_int(v) for v in ("42", "0x2A", "0X2a", "#101010", "+7", "4k", "")] == [42, 42, 42, 42, 7,
                                                                                           None, None]
    assert dim_names("PIN%s", 3, "A-C") == ["PINA", "PINB", "PINC"]
    assert dim_names("CH%s_CTRL", 2, "rx, tx") == ["CHrx_CTRL", "CHtx_CTRL"]
    assert dim_names("DATA[%s]", 2, "") == ["DATA[0]", "DATA[1]"]


def test_svd_in_an_xml_file_is_sniffed(tmp_path):
    path = tmp_path / "chip.xml"
    shutil.copy(DOCS / "stm32f4_mini.svd", path)
    assert [s.title for s in read_document(path)] == ["USART2", "USART1", "TIM2"]
    other = tmp_path / "pom.xml"
    other.write_text("<project><name>x</name></project>")
    with pytest.raises(DocumentError, match=r"pom\.xml.*root element is <project>; expected .*<device>"):
        read_document(other)


SVD_HEAD = '<?xml version="1.0"?>\n<device><name>D</name><peripherals>\n'


@pytest.mark.parametrize("body, message", [
    ("<peripheral><name>P</name><baseAddress>0x4000_0000</baseAddress></peripheral>",
     r"line 3: peripheral P: <baseAddress> is not an integer \('0x4000_0000'\)"),
    ("<peripheral><name>P</name></peripheral>", r"peripheral P has no <baseAddress>"),
    ('<peripheral derivedFrom="Q"><name>P</name><baseAddress>0</baseAddress></peripheral>',
     r"peripheral P is derivedFrom unknown peripheral 'Q'"),
    ("<peripheral><name>P</name><baseAddress>0</baseAddress><registers><register><name>R</name>"
     "<addressOffset>0</addressOffset><fields><field><name>F</name></field></fields></register></registers>"
     "</peripheral>", r"field F of register R has no bit position"),
    ("<peripheral><name>P</name><baseAddress>0</baseAddress><registers><register><name>R</name>"
     "</register></registers></peripheral>", r"register R has no <addressOffset>"),
    ("<peripheral><name>P</name><baseAddress>0</baseAddress>", r"malformed XML at line 4"),
])
def test_svd_schema_errors_name_the_file_and_the_element(tmp_path, body, message):
    path = tmp_path / "bad.svd"
    path.write_text(SVD_HEAD + body + "\n</peripherals></device>\n")
    with pytest.raises(DocumentError, match=re.escape(str(path)) + r".*" + message):
        read_document(path)


def test_svd_without_peripheral_name_fixture():
    with pytest.raises(DocumentError, match=r"broken_peripheral\.svd: line 9: <peripheral> #2 has no <name>"):
        read_document(DOCS / "broken_peripheral.svd")


def test_svd_entity_declarations_are_refused(tmp_path):
    path = tmp_path / "laughs.svd"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE device [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]>\n'
                    "<device><name>&b;</name></device>\n")
    with pytest.raises(DocumentError, match=r"laughs\.svd: DOCTYPE/ENTITY declaration at line 2"):
        read_document(path)


def test_svd_without_device_root(tmp_path):
    path = tmp_path / "x.svd"
    path.write_text("<peripherals/>")
    with pytest.raises(DocumentError, match=r"x\.svd: root element is <peripherals>; expected a CMSIS-SVD"):
        read_document(path)


# --- device-tree bindings -------------------------------------------------------------------------------------

COMPATIBLES = {"st,stm32-uart", "st,stm32f7-uart", "st,stm32h7-uart", "st,stm32mp25-uart"}


def test_binding_compatibles_go_to_metadata_and_never_into_the_text():
    [section] = read_document(DOCS / "st,stm32-uart.yaml")
    assert set(section.metadata["compatible"]) == COMPATIBLES
    assert len(section.metadata["compatible"]) == len(COMPATIBLES)
    for compatible in COMPATIBLES:
        assert compatible.lower() not in section.text.lower()
        assert compatible.lower() not in section.title.lower()
    assert "Compatible <compatible> adds an RX FIFO; <compatible> adds TX and RX FIFOs." in section.text
    assert 'compatible = "<compatible>";' in section.text


def test_binding_section_shape():
    [section] = read_document(DOCS / "st,stm32-uart.yaml")
    assert section.title == "STMicroelectronics STM32 USART"
    assert section.path == ("bindings", "serial", "STMicroelectronics STM32 USART")  # the file name is a compatible
    for compatible in section.metadata["compatible"]:
        assert not any(compatible.lower() in part.lower() for part in section.path)
    assert section.span == (1, 83) and section.rendered
    lines = section.text.splitlines()
    assert "Inherits: /schemas/serial/serial.yaml#" in lines
    assert "  rx-threshold: RX FIFO threshold in bytes (only on <compatible>); type uint32; " \
           "enum [1, 2, 4, 8, 12, 14, 16]; default 8" in lines
    assert "  st,hw-flow-ctrl: enable hardware flow control (deprecated, use uart-has-rtscts); type flag; " \
           "deprecated" in lines
    assert "  reg: maxItems 1" in lines and "  rx-tx-swap" in lines and "  compatible" in lines
    assert "Required: compatible, reg, interrupts, clocks" in lines
    assert "    reg = <0x40011000 0x400>;" in lines
    assert section.metadata["required"] == ["compatible", "reg", "interrupts", "clocks"]
    assert "jane.doe" not in section.text


def test_yaml_that_is_not_a_binding_says_what_was_expected():
    with pytest.raises(DocumentError) as caught:
        read_document(DOCS / "not_a_binding.yaml")
    message = str(caught.value)
    assert str(DOCS / "not_a_binding.yaml") in message
    assert "expected top-level keys $id or $schema, and properties" in message
    assert "found: board, flash, mcu, properties" in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("$id: x\nproperties: [a\nb: c\n")
    with pytest.raises(DocumentError, match=r"bad\.yaml: invalid YAML at line \d"):
        read_document(path)


def test_binding_with_compatibles_in_list_forms(tmp_path):
    path = tmp_path / "vendor,dev.yaml"
    path.write_text("$schema: http://devicetree.org/meta-schemas/core.yaml#\ntitle: Dev vendor,dev-a\n"
                    "properties:\n  compatible:\n    items:\n      - const: vendor,dev-a\n"
                    "      - anyOf:\n          - const: vendor,dev\n          - enum:\n              - vendor,dev-b\n"
                    "  vendor,mode:\n    description: like vendor,dev-b but slower\n")
    [section] = read_document(path)
    assert section.metadata["compatible"] == ["vendor,dev-a", "vendor,dev", "vendor,dev-b"]
    assert section.path == ("bindings", section.title)
    assert section.title == "Dev <compatible>"
    assert "  vendor,mode: like <compatible> but slower" in section.text


# --- registry -------------------------------------------------------------------------------------------------

def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "manual.docx"
    path.write_bytes(b"PK")
    with pytest.raises(DocumentError, match=r"manual\.docx: unsupported document type '\.docx'; expected one of "
                                            r"\.markdown, \.md, \.pdf"):
        read_document(path)
    with pytest.raises(DocumentError, match=r"absent\.md: no such file"):
        read_document(tmp_path / "absent.md")
    assert issubclass(DocumentError, FirmlmError)


def test_a_plugin_reader_and_sniffing_between_readers(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "READERS", list(documents.READERS))

    class BoardReader(DocumentReader):
        kind, suffixes, expects = "board", (".yaml",), "a board file (top-level board key)"

        def sniff(self, path: Path) -> bool:
            return path.read_text().startswith("board:") or "\nboard:" in path.read_text()

        def read(self, path: Path) -> list[Section]:
            return [Section(str(path), "board", ("board",), path.read_text(), (1, 1))]

    register_reader(BoardReader)
    assert reader_for(DOCS / "st,stm32-uart.yaml").kind == "dt-binding"
    assert reader_for(DOCS / "not_a_binding.yaml").kind == "board"
    nothing = tmp_path / "x.yaml"
    nothing.write_text("a: 1\n")
    with pytest.raises(DocumentError, match=r"x\.yaml: not a known \.yaml document; expected a device-tree "
                                            r"binding .* or a board file"):
        read_document(nothing)
    with pytest.raises(ValueError):
        register_reader(type("Bad", (DocumentReader,), {"suffixes": ("TXT",)}))


# --- PDF ------------------------------------------------------------------------------------------------------

def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_op(x: float, y: float, size: float, text: str, bold: bool = False) -> str:
    return f"BT /{'F2' if bold else 'F1'} {size} Tf {x} {y} Td ({_escape(text)}) Tj ET"


def table_ops(x: float, top: float, widths: list[float], rows: list[list[str]], height: float = 16) -> list[str]:
    """A ruled table: one stroked rectangle per cell and its text (size 9)."""
    ops = []
    for r, row in enumerate(rows):
        y = top - (r + 1) * height
        left = x
        for width, cell in zip(widths, row):
            ops.append(f"{left} {y} {width} {height} re S")
            ops.append(text_op(left + 3, y + 4, 9, cell))
            left += width
    return ops


def make_pdf(pages: list[list[str]], trailer: str = "") -> bytes:
    """A valid PDF 1.4 whose pages draw the given content-stream operators (Helvetica fonts, no compression)."""
    page_ids = [5 + 2 * i for i in range(len(pages))]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    }
    for page_id, ops in zip(page_ids, pages):
        stream = "\n".join(ops)
        objects[page_id] = ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << "
                            f"/F1 3 0 R /F2 4 0 R >> >> /Contents {page_id + 1} 0 R >>")
        objects[page_id + 1] = f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream"
    out, offsets = b"%PDF-1.4\n", {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    xref, size = len(out), max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offsets[n]:010d} 00000 n \n" for n in range(1, size)).encode()
    out += f"trailer\n<< /Size {size} /Root 1 0 R{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def body(y: float, *lines: str) -> list[str]:
    return [text_op(72, y - 14 * i, 10, line) for i, line in enumerate(lines)]


def footer(page: int) -> str:
    return text_op(72, 30, 8, f"RM0090 Rev 19   {page}/3")


@pytest.fixture
def manual_pdf(tmp_path) -> Path:
    """Three pages: a title, numbered headings in larger fonts, a ruled table, a running footer."""
    page1 = [text_op(72, 740, 20, "STM32F4 reference manual excerpt"),
             text_op(72, 700, 16, "27 USART", bold=True),
             *body(680, "The USART offers a flexible means of full-duplex data exchange with external",
                   "equipment requiring an industry standard NRZ asynchronous serial data format.",
                   "The USART uses a fractional baud rate generator with a 12-bit mantissa"),
             text_op(72, 620, 12, "27.6.1 Status register (USART_SR)", bold=True),
             *body(600, "Address offset: 0x00", "Reset value: 0x00C0 0000"),
             *table_ops(72, 560, [40, 60, 220], [["Bit", "Name", "Description"],
                                                 ["7", "TXE", "Transmit data register empty"],
                                                 ["6", "TC", "Transmission complete"]]),
             footer(1)]
    page2 = [*body(740, "TXE is set by hardware when the content of the TDR register has been",
                   "transferred into the shift register."),
             text_op(72, 690, 12, "27.6.4 Control register 1 (USART_CR1)", bold=True),
             *body(670, "Address offset: 0x0C", "Bit 13 UE: USART enable, cleared to reduce power consumption"),
             footer(2)]
    page3 = [text_op(72, 740, 12, "27.6.5 Control register 2 (USART_CR2)", bold=True),
             *body(720, "Bits 13:12 STOP: STOP bits, used for programming the stop bits."),
             footer(3)]
    path = tmp_path / "rm0090-usart.pdf"
    path.write_bytes(make_pdf([page1, page2, page3]))
    return path


def test_pdf_sections_from_numbered_and_large_font_headings_with_page_spans(manual_pdf):
    sections = read_document(manual_pdf)  # the title heading has no body of its own: no section
    assert [(s.title, s.path, s.span) for s in sections] == [
        ("27 USART", ("27 USART",), (1, 1)),
        ("27.6.1 Status register (USART_SR)", ("27 USART", "27.6.1 Status register (USART_SR)"), (1, 2)),
        ("27.6.4 Control register 1 (USART_CR1)", ("27 USART", "27.6.4 Control register 1 (USART_CR1)"), (2, 2)),
        ("27.6.5 Control register 2 (USART_CR2)", ("27 USART", "27.6.5 Control register 2 (USART_CR2)"), (3, 3)),
    ]
    assert all(s.span_unit == "page" for s in sections)


def test_pdf_tables_are_rows_and_not_repeated_and_running_footers_are_dropped(manual_pdf):
    sections = by_title(read_document(manual_pdf))
    status = sections["27.6.1 Status register (USART_SR)"].text
    assert "Bit | Name | Description\n7 | TXE | Transmit data register empty\n6 | TC | Transmission complete" \
        in status
    assert status.count("Transmit data register empty") == 1
    assert status.index("Reset value") < status.index("Bit | Name") < status.index("TXE is set by hardware")
    assert status.count("\f") == 1  # the page break between pages 1 and 2
    assert not any("RM0090" in s.text for s in sections.values())
    assert "Bit 13 UE: USART enable" in sections["27.6.4 Control register 1 (USART_CR1)"].text


def test_pdf_without_text_is_refused(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([["0.5 g", "72 72 400 600 re f"]]))
    with pytest.raises(DocumentError, match=r"scan\.pdf: the PDF has no extractable text .*OCR is not supported"):
        read_document(path)


def test_garbled_and_fake_pdfs_name_the_file(tmp_path):
    garbled = tmp_path / "garbled.pdf"
    garbled.write_bytes(b"%PDF-1.7\n" + random.Random(7).randbytes(4000))
    with pytest.raises(DocumentError, match=re.escape(str(garbled))):
        read_document(garbled)
    fake = tmp_path / "fake.pdf"
    fake.write_text("<html>not a pdf</html>")
    with pytest.raises(DocumentError, match=r"fake\.pdf: not a PDF"):
        read_document(fake)
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(make_pdf([[text_op(72, 700, 10, "hello")]])[:60])
    with pytest.raises(DocumentError, match=re.escape(str(truncated))):
        read_document(truncated)


def test_encrypted_pdf_is_refused(tmp_path):
    path = tmp_path / "locked.pdf"
    o, u = "11" * 32, "22" * 32
    encrypt = f" /Encrypt << /Filter /Standard /V 1 /R 2 /O <{o}> /U <{u}> /P -4 >> /ID [<{'ab' * 16}> <{'ab' * 16}>]"
    path.write_bytes(make_pdf([[text_op(72, 700, 10, "secret")]], trailer=encrypt))
    with pytest.raises(DocumentError, match=r"locked\.pdf: the PDF is encrypted"):
        read_document(path)
