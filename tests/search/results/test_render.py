from __future__ import annotations

import base64
from pathlib import Path

from search.results.render import Image, Section, Table, Text, html_page, markdown

PNG = base64.b64decode(  # a 1x1 transparent PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _sections(tmp_path: Path) -> list[Section]:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(PNG)
    return [Section("Data <raw>", [Text("a & b"), Table(("k", "v"), [("x|y", "<b>")]),
                                   Image("plot a", tmp_path / "plots" / "a.png"),
                                   Image("plot b", None, "not drawn: too few trials")])]


def test_render_html_embeds_images_and_escapes_text(tmp_path: Path) -> None:
    page = html_page("t", _sections(tmp_path))
    # Rule: images are inlined as base64 and every piece of text is HTML-escaped.
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page
    assert "Data &lt;raw&gt;" in page and "a &amp; b" in page and "<td>&lt;b&gt;</td>" in page
    assert "not drawn: too few trials" in page


def test_render_markdown_links_images_relative_to_the_report(tmp_path: Path) -> None:
    text = markdown("t", _sections(tmp_path), tmp_path)
    # Rule: Markdown links plots by relative path, escapes table pipes, and says why a plot is missing.
    assert "![plot a](plots/a.png)" in text
    assert "| x\\|y | <b> |" in text
    assert "**plot b**: not drawn: too few trials" in text
