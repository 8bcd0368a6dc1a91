"""Real test documents, generated on the fly: PDF (text layer, scanned, encrypted), DOCX, PPTX, XLSX,
legacy Word .doc, CSV, plain text in any encoding, and images of Chinese text.

Chinese PDFs and images need a CJK font with Latin glyphs too; `find_cjk_font()` finds one (Debian:
fonts-wqy-microhei) or returns None, and `require_cjk_font()` skips the calling test with the reason.
Every `make_*` function writes the file and returns its path.
"""

from __future__ import annotations

import csv
import functools
import io
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Fonts known to cover Chinese and Latin, most common first; fc-list adds whatever else is installed.
KNOWN_CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
)
CJK_FONT_PACKAGE = "fonts-wqy-microhei"
_GLYPHS_NEEDED = "中文测试，。：Aa1"


@functools.cache
def find_cjk_font() -> Path | None:
    """A font file (TrueType, first face of a collection) that has glyphs for Chinese and Latin text."""
    candidates = [Path(p) for p in KNOWN_CJK_FONTS] + _fontconfig_chinese_fonts()
    for path in candidates:
        if path.is_file() and _has_glyphs(path, _GLYPHS_NEEDED):
            return path
    return None


def require_cjk_font() -> Path:
    """The CJK font, or skip the calling test saying which package to install."""
    import pytest

    font = find_cjk_font()
    if font is None:
        pytest.skip(f"no CJK TrueType font with Latin glyphs installed (apt-get install {CJK_FONT_PACKAGE})")
    return font


def _fontconfig_chinese_fonts() -> list[Path]:
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [Path(line.split(":")[0].strip()) for line in listing.stdout.splitlines() if line.strip()]


def _has_glyphs(path: Path, characters: str) -> bool:
    from fontTools.ttLib import TTCollection, TTFont

    try:
        if path.suffix.lower() == ".ttc":
            font = TTCollection(str(path), lazy=True).fonts[0]
        else:
            font = TTFont(str(path), lazy=True)
        if "glyf" not in font:  # fpdf2 embeds TrueType outlines; CFF-only fonts are skipped
            return False
        character_map = font.getBestCmap() or {}
    except Exception:
        return False
    return all(ord(char) in character_map for char in characters)


# ---------------------------------------------------------------------------------------------
# PDF


def _new_pdf(font: Path) -> Any:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("cjk", fname=str(font))
    pdf.set_font("cjk", size=12)
    return pdf


def make_pdf(path: Path, pages: Sequence[str], bookmarks: Sequence[tuple[int, int, str]] = (),
             font: Path | None = None) -> Path:
    """A PDF with a text layer, one page per string. `bookmarks` are (page number, level, title)
    entries of the outline, level 0 outermost, in document order."""
    pdf = _new_pdf(font or require_cjk_font())
    for number, text in enumerate(pages, start=1):
        pdf.add_page()
        for _page, level, title in (mark for mark in bookmarks if mark[0] == number):
            pdf.start_section(title, level=level)
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path, text: str, user_password: str = "secret", font: Path | None = None) -> Path:
    """A one-page PDF that cannot be opened without `user_password` (RC4 encryption)."""
    pdf = _new_pdf(font or require_cjk_font())
    pdf.set_encryption(owner_password=user_password + "-owner", user_password=user_password)
    pdf.add_page()
    pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_scanned_pdf(path: Path, text: str, font: Path | None = None) -> Path:
    """A one-page PDF holding only a picture of `text` (no text layer), like a scanned page."""
    from fpdf import FPDF

    image = render_text_image(text, font=font)
    pdf = FPDF(format="A4")
    pdf.add_page()
    width_mm = 170
    pdf.image(image, x=20, y=20, w=width_mm, h=width_mm * image.height / image.width)
    pdf.output(str(path))
    return path


# ---------------------------------------------------------------------------------------------
# Images


def render_text_image(text: str, font: Path | None = None, font_size: int = 40) -> Any:
    """A white PIL image with `text` (lines split at newlines) in black."""
    from PIL import Image, ImageDraw, ImageFont

    typeface = ImageFont.truetype(str(font or require_cjk_font()), font_size)
    lines = text.split("\n")
    line_height = int(font_size * 1.8)
    width = max(int(typeface.getlength(line)) for line in lines) + 2 * font_size
    height = line_height * len(lines) + 2 * font_size
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((font_size, font_size + row * line_height), line, font=typeface, fill="black")
    return image


def make_image(path: Path, text: str, font: Path | None = None) -> Path:
    """A picture of `text`; the format follows the extension (.png, .jpg, .bmp)."""
    render_text_image(text, font=font).save(path)
    return path


# ---------------------------------------------------------------------------------------------
# Office


def make_docx(path: Path, heading: str, paragraphs: Sequence[str], table_rows: Sequence[Sequence[str]] = (),
              subheading: str | None = None, after_table: Sequence[str] = (),
              chinese_style_names: bool = False, header_row: bool = True) -> Path:
    """A Word document: `heading` (Heading 1), optional `subheading` (Heading 2), the paragraphs,
    a table, then `after_table` paragraphs. With `header_row` the table's first row is marked as
    Word's "repeat as header row"; with `chinese_style_names` the heading styles are called "标题 1",
    "标题 2" as in a Chinese Word or WPS."""
    import docx

    document = docx.Document()
    heading_1, heading_2 = document.styles["Heading 1"], document.styles["Heading 2"]
    if chinese_style_names:
        heading_1.name, heading_2.name = "标题 1", "标题 2"
    document.add_paragraph(heading, style=heading_1)
    if subheading:
        document.add_paragraph(subheading, style=heading_2)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table_rows:
        table = document.add_table(rows=len(table_rows), cols=max(len(row) for row in table_rows))
        for row_cells, values in zip(table.rows, table_rows):
            for cell, value in zip(row_cells.cells, values):
                cell.text = value
        if header_row:
            from docx.oxml import OxmlElement

            table.rows[0]._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))
    for paragraph in after_table:
        document.add_paragraph(paragraph)
    document.save(str(path))
    return path


def make_pptx(path: Path, slides: Sequence[tuple[str, str, str]],
              table_rows: Sequence[Sequence[str]] = (), grouped_texts: Sequence[str] = ()) -> Path:
    """A presentation, one slide per (title, body, notes). `table_rows` and `grouped_texts` (text
    boxes inside one group shape) go on the first slide, below its body."""
    import pptx
    from pptx.util import Cm

    presentation = pptx.Presentation()
    layout = presentation.slide_layouts[1]  # "Title and Content"
    for number, (title, body, notes) in enumerate(slides, start=1):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
        if number != 1:
            continue
        if table_rows:
            shape = slide.shapes.add_table(len(table_rows), max(len(row) for row in table_rows),
                                           Cm(2), Cm(14), Cm(20), Cm(3))
            for row, values in zip(shape.table.rows, table_rows):
                for cell, value in zip(row.cells, values):
                    cell.text = value
        if grouped_texts:
            group = slide.shapes.add_group_shape()
            for index, text in enumerate(grouped_texts):
                box = group.shapes.add_textbox(Cm(2 + 6 * index), Cm(17), Cm(5), Cm(1))
                box.text_frame.text = text
    presentation.save(str(path))
    return path


def make_xlsx(path: Path, rows: Sequence[Sequence[Any]], sheet_name: str = "Sheet1",
              more_sheets: dict[str, Sequence[Sequence[Any]]] | None = None) -> Path:
    """A workbook: `rows` (first row is the header) on `sheet_name`, plus any `more_sheets`."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = sheet_name
    for row in rows:
        sheet.append(list(row))
    for name, sheet_rows in (more_sheets or {}).items():
        extra = workbook.create_sheet(name)
        for row in sheet_rows:
            extra.append(list(row))
    workbook.save(str(path))
    return path


def make_doc(path: Path, paragraphs: Sequence[str]) -> Path:
    """A minimal legacy Word 97 (.doc) file: an OLE compound file holding a WordDocument stream (FIB +
    UTF-16 text) and a 1Table stream with a one-piece piece table. No styles or fonts, but a real
    reader such as antiword finds the text."""
    text = "".join(paragraph + "\r" for paragraph in paragraphs)  # Word ends paragraphs with CR
    encoded = text.encode("utf-16-le")
    text_offset = 0x400
    fib = bytearray(text_offset)
    struct.pack_into("<HH", fib, 0x00, 0xA5EC, 0x00C1)  # wIdent, nFib of Word 97
    struct.pack_into("<H", fib, 0x0A, 0x0200)  # fWhichTblStm: the table stream is "1Table"
    struct.pack_into("<II", fib, 0x18, text_offset, text_offset + len(encoded))  # fcMin, fcMac
    struct.pack_into("<I", fib, 0x4C, len(text))  # ccpText: characters of main text
    # Table stream: an empty style sheet (readers choke on none), then the piece table: CPs 0..n and
    # one piece descriptor (flags, file offset of the UTF-16 text, prm).
    stylesheet = struct.pack("<HHH", 18, 0, 10) + bytes(14)  # cbStshi, cstd = 0, cbSTDBaseInFile
    pieces = struct.pack("<II", 0, len(text)) + struct.pack("<HIH", 0, text_offset, 0)
    clx = b"\x02" + struct.pack("<I", len(pieces)) + pieces
    struct.pack_into("<II", fib, 0xA2, 0, len(stylesheet))  # fcStshf, lcbStshf
    struct.pack_into("<II", fib, 0x01A2, len(stylesheet), len(clx))  # fcClx, lcbClx
    path.write_bytes(_compound_file({"WordDocument": bytes(fib) + encoded, "1Table": stylesheet + clx}))
    return path


def _compound_file(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file (version 3, 512-byte sectors). Streams are padded to the 4096-byte
    mini-stream cutoff so that all live in regular sectors; one directory sector (at most 3 streams)."""
    sector, end_of_chain, free, fat_sector = 512, 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    assert len(streams) <= 3
    padded = [data.ljust(max(4096, -(-len(data) // sector) * sector), b"\0") for data in streams.values()]
    data_sectors = sum(len(data) // sector for data in padded)
    fat_count = 1
    while fat_count + 1 + data_sectors > fat_count * sector // 4:
        fat_count += 1
    fat = [fat_sector] * fat_count
    directory_start = len(fat)
    fat.append(end_of_chain)
    starts = []
    for data in padded:
        starts.append(len(fat))
        count = len(data) // sector
        fat.extend(range(len(fat) + 1, len(fat) + count))
        fat.append(end_of_chain)
    fat += [free] * (fat_count * sector // 4 - len(fat))

    def entry(name: str, kind: int, start: int, size: int, right: int = free, child: int = free) -> bytes:
        encoded_name = (name + "\0").encode("utf-16-le") if name else b""
        return (encoded_name.ljust(64, b"\0") + struct.pack("<HBB", len(encoded_name), kind, 1)
                + struct.pack("<III", free, right, child) + bytes(36) + struct.pack("<IQ", start, size))

    # The root's child is entry 1; the streams hang off each other as right siblings.
    directory = [entry("Root Entry", 5, end_of_chain, 0, child=1)]
    for number, (start, data) in enumerate(zip(starts, padded), start=1):
        directory.append(entry(list(streams)[number - 1], 2, start, len(data),
                               right=number + 1 if number < len(padded) else free))
    directory += [entry("", 0, 0, 0)] * (4 - len(directory))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
              + struct.pack("<9I", 0, fat_count, directory_start, 0, 4096, end_of_chain, 0, end_of_chain, 0)
              + struct.pack("<109I", *(list(range(fat_count)) + [free] * (109 - fat_count))))
    return header + struct.pack(f"<{len(fat)}I", *fat) + b"".join(directory) + b"".join(padded)


# ---------------------------------------------------------------------------------------------
# Text


def make_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """A text file in `encoding` ("utf-8", "utf-8-sig" for a BOM, "gbk", "gb18030"...)."""
    path.write_bytes(text.encode(encoding))
    return path


def make_csv(path: Path, rows: Sequence[Sequence[Any]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return make_text(path, buffer.getvalue(), encoding)
