"""Office formats: Word (.docx, legacy .doc through antiword), PowerPoint (.pptx), Excel (.xlsx)."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from typing import Any

from tecorag.errors import LoaderError, MissingTool
from tecorag.types import Section

from .common import Outline, clean_text, table_text

ANTIWORD_TIMEOUT_S = 60.0


_WORD_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
_WORD_TITLE_STYLES = frozenset({"title", "标题"})


def load_docx(filename: str, data: bytes) -> list[Section]:
    """Paragraphs and tables in document order; Heading n / 标题 n styles build the heading path
    (the Title style sits above Heading 1)."""
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    style_names = _docx_style_names(document)
    outline = Outline(filename)
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            outline.add_table(_docx_table_rows(block), has_header=_docx_has_header_row(block))
            continue
        level = _docx_heading_level(style_names.get(block._p.style, style_names[None]))
        if level is not None:
            outline.add_heading(level, block.text)
        else:
            outline.add_text(block.text)
    return outline.finish()


def _docx_style_names(document: Any) -> dict[str | None, str]:
    """Paragraph style id -> name, read once; None -> the default paragraph style's name. (python-docx's
    `paragraph.style` scans every style for each paragraph: minutes for a document of 50 000 paragraphs.)"""
    from docx.enum.style import WD_STYLE_TYPE

    names: dict[str | None, str] = {None: ""}
    for style in document.styles:
        if style.type == WD_STYLE_TYPE.PARAGRAPH:
            names[style.style_id] = style.name or ""
            if style._element.default:
                names[None] = style.name or ""
    return names


def _docx_heading_level(style_name: str) -> int | None:
    style_name = style_name.strip()
    if style_name.lower() in _WORD_TITLE_STYLES:
        return 0
    match = _WORD_HEADING_STYLE.match(style_name)
    return int(match.group(1)) if match else None


def _docx_has_header_row(table: Any) -> bool:
    """Word marks a header row with "repeat as header row at the top of each page" (w:tblHeader)."""
    from docx.oxml.ns import qn

    rows = table._tbl.tr_lst
    properties = rows[0].trPr if rows else None
    return properties is not None and properties.find(qn("w:tblHeader")) is not None


def _docx_table_rows(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells = []
        seen = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is returned once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(cell.text)
        rows.append(cells)
    return rows


def load_pptx(filename: str, data: bytes) -> list[Section]:
    """One section per slide (page = slide number): title as heading, the text of every shape
    (tables and groups included) in reading order, then the speaker notes."""
    import pptx

    presentation = pptx.Presentation(io.BytesIO(data))
    sections = []
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        lines = [text for shape in _reading_order(slide.shapes)
                 if title_shape is None or shape.shape_id != title_shape.shape_id
                 for text in _pptx_shape_texts(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"备注：{notes}")
        body = clean_text("\n".join(lines)) or title  # a title-only slide still says something
        sections.append(Section(text=body, source=filename, page=number,
                                heading_path=(title,) if title else ()))
    return sections


def _reading_order(shapes: Iterable[Any]) -> list[Any]:
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _pptx_shape_texts(shape: Any) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [text for member in _reading_order(shape.shapes) for text in _pptx_shape_texts(member)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return table_text(rows, has_header=False).split("\n")
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return [shape.text_frame.text]
    return []


def load_xlsx(filename: str, data: bytes) -> list[Section]:
    """One table section per worksheet, heading path (sheet name,); cached values of formulas."""
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sections = []
        for sheet in workbook.worksheets:
            rows = [[_cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
            table = table_text(rows, has_header=True)
            if table:
                sections.append(Section(text=table, source=filename, heading_path=(sheet.title,), kind="table"))
        return sections
    finally:
        workbook.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def load_doc(filename: str, data: bytes) -> list[Section]:
    """Legacy Word (.doc) through Debian's `antiword`."""
    antiword = shutil.which("antiword")
    if antiword is None:
        raise MissingTool(filename, "reading .doc files needs the program antiword, which is not installed "
                                    "(apt-get install antiword), or save the file as .docx")
    with tempfile.NamedTemporaryFile(suffix=".doc") as temporary:
        temporary.write(data)
        temporary.flush()
        try:
            result = subprocess.run([antiword, "-m", "UTF-8.txt", temporary.name], capture_output=True,
                                    timeout=ANTIWORD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as error:
            raise LoaderError(filename, f"antiword took longer than {ANTIWORD_TIMEOUT_S:.0f} s") from error
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").replace(temporary.name, filename).strip()
        raise LoaderError(filename, f"antiword cannot read it: {message or f'exit status {result.returncode}'}")
    return [Section(text=clean_text(result.stdout.decode("utf-8", errors="replace")), source=filename)]
