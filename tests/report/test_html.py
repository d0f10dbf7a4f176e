from firmlm.report.html import page, render_markdown


def test_markdown_constructs_render_as_html(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    text = "\n".join(["## Perplexity", "", "Model `bundled:smollm2-135m`, **positive** is better.", "",
                      "| category | reduction |", "|---|---:|", "| **overall** | +12.3% [+10.5, +14.0] |", "",
                      "- heldout: control (crypto)", "", "![Reduction](figures/a.png)", "", "<script>x()</script>"])
    html = render_markdown(text, tmp_path)
    assert "<h2>Perplexity</h2>" in html and "<code>bundled:smollm2-135m</code>" in html
    assert "<strong>positive</strong>" in html and "<li>heldout: control (crypto)</li>" in html
    assert '<td style="text-align:right">+12.3% [+10.5, +14.0]</td>' in html and "<td><strong>overall</strong></td>" in html
    assert 'src="data:image/png;base64,iVBORw0KGgpmYWtl"' in html and 'alt="Reduction"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # raw HTML in the text is escaped
    assert "`" not in html and "**" not in html


def test_page_wraps_classed_sections(tmp_path):
    html = page([(None, ["# firmlm report"]), ("headline", ["## Headline", "", "text"])], tmp_path)
    assert html.startswith("<!doctype html>") and '<section class="headline">\n<h2>Headline</h2>' in html
