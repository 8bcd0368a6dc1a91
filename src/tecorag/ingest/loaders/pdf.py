"""PDF: the text layer page by page, OCR for pages without one, bookmarks as headings."""

from __future__ import annotations

import threading
from typing import Any

from tecorag.config import LimitsSettings
from tecorag.errors import LoaderError
from tecorag.ingest.ocr import OCR_MAX_SIDE, OcrEngine
from tecorag.types import Section

from .bounds import check_pdf_pages, render_scale
from .common import clean_text
from .image import ocr_image

# A PDF page with fewer printable characters than this in its text layer is treated as scanned.
MIN_PDF_TEXT_CHARS = 20
# Scanned pages are rendered at 144 dpi for OCR: enough for 9-point Chinese, and fast.
PDF_OCR_SCALE = 2.0

# PDFium is not thread-safe: every call into it, from any thread of the process, must be serialised.
_PDFIUM_LOCK = threading.Lock()


def load_pdf(filename: str, data: bytes, ocr: OcrEngine, limits: LimitsSettings | None = None) -> list[Section]:
    """One section per page (page numbers from 1) under the heading of the PDF's bookmarks; pages
    without a usable text layer are rendered (at most `limits.max_image_pixels`) and OCRed."""
    import pypdfium2 as pdfium

    limits = limits or LimitsSettings()
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
        check_pdf_pages(filename, page_count, limits)
        with _PDFIUM_LOCK:
            page_headings = _pdf_page_headings(document)
        sections = []
        for index in range(page_count):
            with _PDFIUM_LOCK:  # released during OCR, which takes seconds per page
                text, scan = _pdf_page_content(document, index, limits.max_image_pixels)
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


def _pdf_page_content(document: Any, index: int, max_pixels: int) -> tuple[str, Any]:
    """The page's text layer, and the page rendered as an image when that layer is (nearly) empty; a huge
    page is rendered smaller, so its bitmap stays within `max_pixels`."""
    page = document[index]
    try:
        text_page = page.get_textpage()
        try:
            text = text_page.get_text_bounded()
        finally:
            text_page.close()
        if _printable_count(text) >= MIN_PDF_TEXT_CHARS:
            return text, None
        width, height = page.get_size()
        bitmap = page.render(scale=render_scale(width, height, PDF_OCR_SCALE, max_pixels, OCR_MAX_SIDE))
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
