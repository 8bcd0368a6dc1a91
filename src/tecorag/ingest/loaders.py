"""Document loaders: file bytes -> sections (text with file, page and heading path).

One small function per format; `DocumentLoader.load` picks it by file extension. Every error is a
`LoaderError` (or subclass) whose message names the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import Any

from tecorag.errors import LoaderError, MissingTool, UnsupportedFormat
from tecorag.ingest.ocr import OcrEngine
from tecorag.types import Section

TEXT_EXTENSIONS = frozenset({".txt", ".text"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
CSV_EXTENSIONS = frozenset({".csv", ".tsv"})
SUPPORTED_EXTENSIONS = frozenset(
    TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS | HTML_EXTENSIONS | IMAGE_EXTENSIONS | CSV_EXTENSIONS
    | {".pdf", ".docx", ".pptx", ".xlsx", ".doc"}
)

# A PDF page with fewer printable characters than this in its text layer is treated as scanned.
MIN_PDF_TEXT_CHARS = 20
# Scanned pages are rendered at 144 dpi for OCR: enough for 9-point Chinese, and fast.
PDF_OCR_SCALE = 2.0
ANTIWORD_TIMEOUT_S = 60.0

# PDFium is not thread-safe: every call into it, from any thread of the process, must be serialised.
_PDFIUM_LOCK = threading.Lock()


class DocumentLoader:
    """Turns uploaded files into sections. Holds the OCR engine so its models load once per loader;
    pass an engine to share it between loaders."""

    def __init__(self, ocr: OcrEngine | None = None):
        self.ocr = ocr if ocr is not None else OcrEngine()

    def load(self, filename: str, data: bytes) -> list[Section]:
        extension = PurePath(filename).suffix.lower()
        if extension not in SUPPORTED_EXTENSIONS:
            shown = extension or "(no extension)"
            raise UnsupportedFormat(filename, f"unsupported file type {shown}")
        if not data.strip():
            raise LoaderError(filename, "empty file")
        try:
            sections = self._read(extension, filename, data)
        except LoaderError:
            raise
        except Exception as error:  # parsers raise all kinds of errors on damaged files
            raise LoaderError(filename, f"cannot read {extension} file (corrupt?): {error}") from error
        sections = [section for section in sections if section.text.strip()]
        if not sections:
            raise LoaderError(filename, "empty: no text found in the document")
        return sections

    def _read(self, extension: str, filename: str, data: bytes) -> list[Section]:
        if extension in TEXT_EXTENSIONS:
            return load_text(filename, data)
        if extension in MARKDOWN_EXTENSIONS:
            return load_markdown(filename, data)
        if extension in HTML_EXTENSIONS:
            return load_html(filename, data)
        if extension in CSV_EXTENSIONS:
            return load_csv(filename, data, delimiter="\t" if extension == ".tsv" else ",")
        if extension in IMAGE_EXTENSIONS:
            return load_image(filename, data, self.ocr)
        if extension == ".pdf":
            return load_pdf(filename, data, self.ocr)
        if extension == ".docx":
            return load_docx(filename, data)
        if extension == ".pptx":
            return load_pptx(filename, data)
        if extension == ".xlsx":
            return load_xlsx(filename, data)
        if extension == ".doc":
            return load_doc(filename, data)
        raise UnsupportedFormat(filename, f"unsupported file type {extension}")


def load_document(filename: str, data: bytes) -> list[Section]:
    """Sections of one file. Convenience for one-off use: OCR models load anew on every call that needs
    them; keep a `DocumentLoader` to load many files."""
    return DocumentLoader().load(filename, data)


# ---------------------------------------------------------------------------------------------
# Plain text, Markdown, CSV


def decode_text(filename: str, data: bytes) -> str:
    """Text of a file in UTF-8 (with or without BOM), UTF-16 with BOM, GBK/GB18030 or whatever
    charset-normalizer recognises. Strict UTF-8 and GB18030 go first: on short Chinese texts the
    statistical detector often guesses a wrong (e.g. Cyrillic or Big5) code page."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
        if _looks_chinese(text):
            return text
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoaderError(filename, "cannot detect the text encoding (binary file?)")
    return str(best)


def _looks_chinese(text: str) -> bool:
    """Most characters outside ASCII are Chinese characters or Chinese/full-width punctuation."""
    non_ascii = [char for char in text if not char.isascii()]
    chinese = sum(1 for char in non_ascii if _is_chinese_char(char))
    return chinese >= 0.8 * len(non_ascii)


def _is_chinese_char(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x2000 <= code <= 0x206F  # general punctuation: “” ‘’ — …
    )


def load_text(filename: str, data: bytes) -> list[Section]:
    return [Section(text=clean_text(decode_text(filename, data)), source=filename)]


_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_DELIMITER = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


def load_markdown(filename: str, data: bytes) -> list[Section]:
    """Sections split at ATX headings (`#` .. `######`) with their heading path; pipe tables become
    table sections. Lines inside fenced code blocks are text, never headings or tables."""
    lines = decode_text(filename, data).splitlines()
    outline = Outline(filename)
    open_fence = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if open_fence:
            if fence and fence.group(1)[0] == open_fence[0] and len(fence.group(1)) >= len(open_fence) \
                    and not line.strip()[len(fence.group(1)):].strip():
                open_fence = ""
            else:
                outline.add_text(line)
            index += 1
            continue
        if fence:
            open_fence = fence.group(1)
            index += 1
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            title = _CLOSING_HASHES.sub("", heading.group(2) or "").strip()
            outline.add_heading(len(heading.group(1)), title)
            index += 1
            continue
        if _starts_markdown_table(lines, index):
            rows = [_markdown_cells(line)]
            index += 2
            while index < len(lines) and lines[index].strip() and "|" in lines[index]:
                rows.append(_markdown_cells(lines[index]))
                index += 1
            outline.add_table(rows, has_header=True)
            continue
        outline.add_text(line)
        index += 1
    return outline.finish()


def _starts_markdown_table(lines: list[str], index: int) -> bool:
    """A pipe table starts with a header row followed by a delimiter row of as many columns."""
    if "|" not in lines[index] or index + 1 >= len(lines) or not _TABLE_DELIMITER.match(lines[index + 1]):
        return False
    return len(_markdown_cells(lines[index])) == len(_markdown_cells(lines[index + 1]))


def _markdown_cells(line: str) -> list[str]:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.replace("\\|", "|").strip() for cell in re.split(r"(?<!\\)\|", row)]


def load_csv(filename: str, data: bytes, delimiter: str) -> list[Section]:
    text = decode_text(filename, data)
    rows = [list(row) for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    table = table_text(rows, has_header=True)
    return [Section(text=table, source=filename, heading_path=(PurePath(filename).stem,), kind="table")]


# ---------------------------------------------------------------------------------------------
# HTML

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


# ---------------------------------------------------------------------------------------------
# PDF


def load_pdf(filename: str, data: bytes, ocr: OcrEngine) -> list[Section]:
    """One section per page (page numbers from 1) under the heading of the PDF's bookmarks; pages
    without a usable text layer are rendered and OCRed."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as error:
            if "password" in str(error).lower():
                raise LoaderError(filename, "encrypted PDF (password-protected); remove the password first") from error
            raise LoaderError(filename, f"corrupt or unreadable PDF: {error}") from error
    try:
        with _PDFIUM_LOCK:
            page_count = len(document)
            page_headings = _pdf_page_headings(document)
        sections = []
        for index in range(page_count):
            with _PDFIUM_LOCK:  # released during OCR, which takes seconds per page
                text, scan = _pdf_page_content(document, index)
            if scan is not None:
                ocr_text = ocr_image(filename, ocr, scan)
                if _printable_count(ocr_text) > _printable_count(text):
                    text = ocr_text
            sections.append(Section(text=clean_text(text), source=filename, page=index + 1,
                                    heading_path=page_headings[index]))
        return sections
    finally:
        with _PDFIUM_LOCK:
            document.close()


def _pdf_page_content(document: Any, index: int) -> tuple[str, Any]:
    """The page's text layer, and the page rendered as an image when that layer is (nearly) empty."""
    page = document[index]
    try:
        text_page = page.get_textpage()
        try:
            text = text_page.get_text_bounded()
        finally:
            text_page.close()
        if _printable_count(text) >= MIN_PDF_TEXT_CHARS:
            return text, None
        bitmap = page.render(scale=PDF_OCR_SCALE)
        try:
            return text, bitmap.to_pil().copy()  # a copy: the bitmap's memory is freed here, under the lock
        finally:
            bitmap.close()
    finally:
        page.close()


def _pdf_page_headings(document: Any) -> list[tuple[str, ...]]:
    """For each page, the bookmark path (outline) in force on it: the last bookmark pointing at or
    before the page."""
    marks: list[tuple[int, tuple[str, ...]]] = []
    path: list[str] = []
    for bookmark in document.get_toc():
        title = " ".join((bookmark.get_title() or "").split())
        destination = bookmark.get_dest()
        del path[bookmark.level:]
        path.append(title)
        page_index = destination.get_index() if destination is not None else None
        if page_index is not None and title:
            marks.append((page_index, tuple(path)))
    headings: list[tuple[str, ...]] = []
    current: tuple[str, ...] = ()
    ordered = sorted(marks, key=lambda mark: mark[0])  # stable: document order within a page
    for index in range(len(document)):
        while ordered and ordered[0][0] <= index:
            current = ordered.pop(0)[1]
        headings.append(current)
    return headings


def _printable_count(text: str) -> int:
    return sum(1 for char in text if not char.isspace() and char.isprintable())


# ---------------------------------------------------------------------------------------------
# Images


def load_image(filename: str, data: bytes, ocr: OcrEngine) -> list[Section]:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise LoaderError(filename, "corrupt or unreadable image") from error
    return [Section(text=clean_text(ocr_image(filename, ocr, image)), source=filename)]


def ocr_image(filename: str, ocr: OcrEngine, image: Any) -> str:
    try:
        return ocr.read(image)
    except (ImportError, OSError) as error:
        raise MissingTool(filename, f"the OCR engine (rapidocr-onnxruntime) cannot be loaded: {error}") from error


# ---------------------------------------------------------------------------------------------
# Office formats

_WORD_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
_WORD_TITLE_STYLES = frozenset({"title", "标题"})


def load_docx(filename: str, data: bytes) -> list[Section]:
    """Paragraphs and tables in document order; Heading n / 标题 n styles build the heading path
    (the Title style sits above Heading 1)."""
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    outline = Outline(filename)
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            outline.add_table(_docx_table_rows(block), has_header=_docx_has_header_row(block))
            continue
        level = _docx_heading_level(block)
        if level is not None:
            outline.add_heading(level, block.text)
        else:
            outline.add_text(block.text)
    return outline.finish()


def _docx_heading_level(paragraph: Any) -> int | None:
    style_name = (paragraph.style.name if paragraph.style is not None else "").strip()
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


# ---------------------------------------------------------------------------------------------
# Shared helpers


class Outline:
    """Collects a document's headings, text lines and tables, in order, into sections: text between
    two headings becomes one section carrying the heading path in force."""

    def __init__(self, source: str, page: int | None = None):
        self.source = source
        self.page = page
        self._sections: list[Section] = []
        self._headings: list[tuple[int, str]] = []  # (level, title), outermost first
        self._lines: list[str] = []

    @property
    def heading_path(self) -> tuple[str, ...]:
        return tuple(title for _level, title in self._headings)

    def add_heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        self._flush_text()
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, title))

    def add_text(self, line: str) -> None:
        self._lines.append(line)

    def add_table(self, rows: Sequence[Sequence[str]], has_header: bool) -> None:
        self._flush_text()
        table = table_text(rows, has_header)
        if table:
            self._sections.append(Section(text=table, source=self.source, page=self.page,
                                          heading_path=self.heading_path, kind="table"))

    def finish(self) -> list[Section]:
        self._flush_text()
        return self._sections

    def _flush_text(self) -> None:
        text = clean_text("\n".join(self._lines))
        self._lines = []
        if text:
            self._sections.append(Section(text=text, source=self.source, page=self.page,
                                          heading_path=self.heading_path))


def table_text(rows: Iterable[Sequence[str]], has_header: bool) -> str:
    """A table as text, one row per line, first row first. With `has_header` (the first row names the
    columns) every later row labels its values ("列A: 值；列B: 值"), so a row read on its own still says
    what its values are; without it (a Word table may be a form, not a list) cells are joined with
    " | ". Empty rows and repeated header rows are dropped; blank column names become 列1, 列2..."""
    cleaned = [_trim_trailing_blanks([" ".join(cell.split()) for cell in row]) for row in rows]
    cleaned = [row for row in cleaned if row]
    if not cleaned:
        return ""
    header = cleaned[0]
    width = max(len(row) for row in cleaned)
    names = [header[i] if i < len(header) and header[i] else f"列{i + 1}" for i in range(width)]
    lines = [" | ".join(header)]
    for row in cleaned[1:]:
        if row == header:
            continue
        if has_header:
            lines.append("；".join(f"{names[i]}: {value}" for i, value in enumerate(row) if value))
        else:
            lines.append(" | ".join(row))
    return "\n".join(lines)


def _trim_trailing_blanks(row: list[str]) -> list[str]:
    end = len(row)
    while end and not row[end - 1]:
        end -= 1
    return row[:end]


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Unix line ends, no control characters or trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = _CONTROL_CHARS.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n").strip()

