"""A PDF page as a PNG, with a cited passage highlighted: rendered server-side with pypdfium2 (already the PDF
loader's engine), so the page needs no PDF viewer and nothing from a CDN."""

from __future__ import annotations

import io
import re

from ..errors import InputError, LoaderError

RENDER_SCALE = 1.6                     # 72 dpi * 1.6: readable on a phone, ~100-200 KB per page
HIGHLIGHT_FILL = (255, 213, 0, 90)     # translucent yellow
HIGHLIGHT_EDGE = (234, 179, 8, 255)
MIN_LINE_CHARS = 4                     # shorter lines match too much of the page to be worth marking
SEARCH_CHARS = 40                      # long lines are searched in pieces of this many characters


def render_page(data: bytes, filename: str, page_number: int, highlight: str = "") -> bytes:
    """Page `page_number` (1-based) of the PDF as PNG bytes; every line of `highlight` found on the page is
    marked. Lines are searched piece by piece because the PDF's text is broken into lines differently."""
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        raise LoaderError(filename, f"corrupt or unreadable PDF: {error}") from error
    try:
        if not 1 <= page_number <= len(pdf):
            raise InputError(f"{filename} has {len(pdf)} pages, there is no page {page_number}")
        page = pdf[page_number - 1]
        image = page.render(scale=RENDER_SCALE).to_pil().convert("RGB")
        boxes = _passage_boxes(page, highlight)
        if boxes:
            overlay = ImageDraw.Draw(image, "RGBA")
            height = page.get_height()
            for left, bottom, right, top in boxes:   # PDF points, origin bottom-left
                overlay.rectangle([left * RENDER_SCALE - 2, (height - top) * RENDER_SCALE - 2,
                                   right * RENDER_SCALE + 2, (height - bottom) * RENDER_SCALE + 2],
                                  fill=HIGHLIGHT_FILL, outline=HIGHLIGHT_EDGE)
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()
    finally:
        pdf.close()


def _passage_boxes(page, passage: str) -> list[tuple[float, float, float, float]]:
    text_page = page.get_textpage()
    boxes: list[tuple[float, float, float, float]] = []
    pieces = [line[begin:begin + SEARCH_CHARS] for line in (raw.strip() for raw in re.split(r"[\n\r]+", passage))
              for begin in range(0, len(line), SEARCH_CHARS)]
    for piece in pieces:
        if len(piece) < MIN_LINE_CHARS:
            continue
        found = text_page.search(piece, match_case=False).get_next()
        if found is not None:
            start, count = found
            boxes.extend(text_page.get_rect(index) for index in range(text_page.count_rects(start, count)))
    return boxes
