"""HTML: headings, tables, and the text of block elements; scripts, styles and navigation dropped."""

from __future__ import annotations

import re
from typing import Any

from tecorag.types import Section

from .common import Outline, decode_text


_HTML_DROPPED = ("script", "style", "nav", "noscript", "template", "head")
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre",
    "ul", "ol", "li", "dl", "dt", "dd", "figure", "figcaption", "address", "details", "summary",
    "form", "fieldset", "hr", "body", "caption", "tr",
})


def load_html(filename: str, data: bytes) -> list[Section]:
    """Sections split at h1-h6 with their heading path; tables become table sections; scripts,
    styles and navigation are dropped."""
    from bs4 import BeautifulSoup
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    markup: bytes | str = data if declared or data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) \
        else decode_text(filename, data)
    soup = BeautifulSoup(markup, "lxml")
    for element in soup.find_all(_HTML_DROPPED):
        element.decompose()
    outline = Outline(filename)
    pieces: list[str] = []
    _walk_html(soup.body or soup, outline, pieces)
    _flush_html_text(outline, pieces)
    return outline.finish()


def _walk_html(node: Any, outline: Outline, pieces: list[str]) -> None:
    from bs4.element import NavigableString, PreformattedString, Tag

    for child in node.children:
        if isinstance(child, PreformattedString):  # comments, doctype, CDATA, processing instructions
            continue
        if isinstance(child, NavigableString):
            pieces.append(re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        if child.name in _HTML_HEADINGS:
            _flush_html_text(outline, pieces)
            outline.add_heading(int(child.name[1]), child.get_text(" ", strip=True))
        elif child.name == "table":
            _flush_html_text(outline, pieces)
            rows, has_header = _html_table_rows(child)
            outline.add_table(rows, has_header)
        elif child.name == "br":
            pieces.append("\n")
        elif child.name == "pre":  # code and the like: its line breaks matter
            pieces.append("\n" + child.get_text() + "\n")
        elif child.name in _HTML_BLOCKS:
            pieces.append("\n")
            _walk_html(child, outline, pieces)
            pieces.append("\n")
        else:
            _walk_html(child, outline, pieces)


def _flush_html_text(outline: Outline, pieces: list[str]) -> None:
    for line in "".join(pieces).split("\n"):
        outline.add_text(line.strip())
    pieces.clear()


def _html_table_rows(table: Any) -> tuple[list[list[str]], bool]:
    """The table's rows, and whether the first one is a header (all <th>)."""
    rows = []
    first_is_header = False
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:  # rows of a nested table are read with their cell
            continue
        cells = row.find_all(["th", "td"], recursive=False)
        if not rows:
            first_is_header = bool(cells) and all(cell.name == "th" for cell in cells)
        rows.append([cell.get_text(" ", strip=True) for cell in cells])
    return rows, first_is_header
