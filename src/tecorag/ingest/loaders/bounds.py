"""Limits checked before a file is parsed, so the memory and time a file costs follow the settings
(`limits.*`), not what the file claims: a 1 MB zip can inflate to gigabytes, a PDF can have a million pages
or a page a kilometre wide.

Office packages (docx, pptx, xlsx) are zip files: their directory lists each part's inflated size, so a
package is refused from the directory alone, before any part is inflated. A directory that under-states a
part's size does not get past this: Python's zipfile stops inflating a part at its declared size (and then
fails its CRC check), so the declared sizes bound what the parsers can read.
"""

from __future__ import annotations

import math
import zipfile
from typing import Any

from tecorag.config import LimitsSettings
from tecorag.errors import LoaderError

MIB = 1024 * 1024
# The compression-ratio check only applies to parts this large: small XML parts legitimately shrink 100x+.
RATIO_CHECK_MIN_BYTES = MIB
ZIP_PACKAGE_EXTENSIONS = frozenset({".docx", ".pptx", ".xlsx"})


class TooBig(LoaderError):
    """The file is over one of the `limits.*` settings; the message says which."""


def check_zip_package(filename: str, data: bytes, limits: LimitsSettings) -> None:
    """Refuse a zip package whose directory promises more than the limits allow."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            parts = package.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as error:
        raise LoaderError(filename, f"not a valid Office package (zip): {error}") from error
    if len(parts) > limits.max_zip_parts:
        raise TooBig(filename, f"{len(parts)} parts in the package, more than limits.max_zip_parts "
                               f"({limits.max_zip_parts})")
    inflated = sum(part.file_size for part in parts)
    if inflated > limits.max_unzipped_mb * MIB:
        raise TooBig(filename, f"inflates to {inflated / MIB:.0f} MiB, more than limits.max_unzipped_mb "
                               f"({limits.max_unzipped_mb} MiB)")
    for part in parts:
        if part.filename.lower().endswith((".xml", ".rels")) and part.file_size > limits.max_xml_part_mb * MIB:
            raise TooBig(filename, f"part {part.filename} inflates to {part.file_size / MIB:.0f} MiB, more than "
                                   f"limits.max_xml_part_mb ({limits.max_xml_part_mb} MiB)")
        if part.file_size >= RATIO_CHECK_MIN_BYTES:
            ratio = part.file_size / max(part.compress_size, 1)
            if ratio > limits.max_zip_ratio:
                raise TooBig(filename, f"part {part.filename} is compressed {ratio:.0f}:1, more than "
                                       f"limits.max_zip_ratio ({limits.max_zip_ratio}:1): a zip bomb?")


def check_pdf_pages(filename: str, page_count: int, limits: LimitsSettings) -> None:
    if page_count > limits.max_pdf_pages:
        raise TooBig(filename, f"{page_count} pages, more than limits.max_pdf_pages ({limits.max_pdf_pages})")


def render_scale(width_pt: float, height_pt: float, wanted_scale: float, max_pixels: int,
                 max_side: int | None = None) -> float:
    """The scale to render a page at: `wanted_scale`, or less so the bitmap stays within `max_pixels` (and its
    long side within `max_side`: OCR shrinks larger images anyway, so rendering them larger only costs memory)."""
    width_pt, height_pt = max(width_pt, 1.0), max(height_pt, 1.0)
    scale = min(wanted_scale, math.sqrt(max_pixels / (width_pt * height_pt)))
    if max_side is not None:
        scale = min(scale, max_side / max(width_pt, height_pt))
    return scale


def check_image_size(filename: str, image: Any, limits: LimitsSettings) -> None:
    """`image` opened but not decoded (PIL reads only the header on open)."""
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise TooBig(filename, f"image of {width}x{height} pixels, more than limits.max_image_pixels "
                               f"({limits.max_image_pixels})")

