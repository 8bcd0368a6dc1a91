"""Document loaders: file bytes -> sections (text with file, page and heading path).

One module per family of formats (text, html, pdf, image, office); `LOADERS` maps a file extension to its
loader function, imported on first use. A loader is `load_x(filename, data) -> list[Section]`; one registered
with `needs_ocr=True` also gets the OCR engine as a third argument, one registered with `needs_limits=True`
the `limits` settings as a keyword (bounds.py: pages, pixels); zip packages are checked before any loader runs. Every error is a `LoaderError` (or
subclass) whose message names the file. Adding a format is one function and one `register` line
(docs/extending.md).
"""

from __future__ import annotations

from pathlib import PurePath

from tecorag.config import LimitsSettings
from tecorag.errors import LoaderError, UnsupportedFormat
from tecorag.ingest.ocr import OcrEngine
from tecorag.registry import Registry
from tecorag.types import Section

from .bounds import ZIP_PACKAGE_EXTENSIONS, check_zip_package
from .common import Outline, clean_text, decode_text, table_text

LOADERS = Registry("file type", entry_point_group="tecorag.loaders")
for _extensions, _target, _needs_ocr in [
    ((".txt", ".text"), "text:load_text", False),
    ((".md", ".markdown"), "text:load_markdown", False),
    ((".csv",), "text:load_csv", False),
    ((".tsv",), "text:load_tsv", False),
    ((".html", ".htm"), "html:load_html", False),
    ((".pdf",), "pdf:load_pdf", True),
    ((".png", ".jpg", ".jpeg", ".bmp"), "image:load_image", True),
    ((".docx",), "office:load_docx", False),
    ((".pptx",), "office:load_pptx", False),
    ((".xlsx",), "office:load_xlsx", False),
    ((".doc",), "office:load_doc", False),
]:
    for _extension in _extensions:
        LOADERS.register(_extension, f"{__name__}.{_target}", needs_ocr=_needs_ocr, needs_limits=_needs_ocr)

# Files without an extension (LICENSE, README, Makefile) are read as plain text when they decode as text.
NO_EXTENSION = ""
LOADERS.register(NO_EXTENSION, f"{__name__}.text:load_extensionless", needs_ocr=False)


def supported_extensions() -> list[str]:
    return [name for name in LOADERS.names() if name]


class DocumentLoader:
    """Turns uploaded files into sections. Holds the OCR engine so its models load once per loader;
    pass an engine to share it between loaders. `limits` bound what one file may cost (default settings)."""

    def __init__(self, ocr: OcrEngine | None = None, limits: LimitsSettings | None = None):
        self.ocr = ocr if ocr is not None else OcrEngine()
        self.limits = limits if limits is not None else LimitsSettings()

    def load(self, filename: str, data: bytes) -> list[Section]:
        extension = PurePath(filename).suffix.lower()
        if extension not in LOADERS.names():
            raise UnsupportedFormat(filename, f"unsupported file type {extension}")
        if not data.strip():
            raise LoaderError(filename, "empty file")
        if extension in ZIP_PACKAGE_EXTENSIONS:
            check_zip_package(filename, data, self.limits)
        entry = LOADERS.entry(extension)
        load = LOADERS.get(extension)
        options = {"limits": self.limits} if entry.metadata.get("needs_limits") else {}
        try:
            if entry.metadata.get("needs_ocr"):
                sections = load(filename, data, self.ocr, **options)
            else:
                sections = load(filename, data, **options)
        except LoaderError:
            raise
        except Exception as error:  # parsers raise all kinds of errors on damaged files
            kind = extension or "extension-less"
            raise LoaderError(filename, f"cannot read {kind} file (corrupt?): {error}") from error
        sections = [section for section in sections if section.text.strip()]
        if not sections:
            raise LoaderError(filename, "empty: no text found in the document")
        return sections


def load_document(filename: str, data: bytes) -> list[Section]:
    """Sections of one file. Convenience for one-off use: OCR models load anew on every call that needs
    them; keep a `DocumentLoader` to load many files."""
    return DocumentLoader().load(filename, data)


__all__ = ["LOADERS", "DocumentLoader", "Outline", "clean_text", "decode_text", "load_document",
           "supported_extensions", "table_text"]
