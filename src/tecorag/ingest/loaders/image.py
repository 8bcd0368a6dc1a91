"""Images (PNG, JPEG, BMP) through OCR."""

from __future__ import annotations

import io
from typing import Any

from tecorag.config import LimitsSettings
from tecorag.errors import LoaderError, MissingTool
from tecorag.ingest.ocr import OcrEngine
from tecorag.types import Section

from .bounds import TooBig, check_image_size
from .common import clean_text


def load_image(filename: str, data: bytes, ocr: OcrEngine, limits: LimitsSettings | None = None) -> list[Section]:
    from PIL import Image, UnidentifiedImageError

    limits = limits or LimitsSettings()
    try:
        image = Image.open(io.BytesIO(data))   # reads the header only
        check_image_size(filename, image, limits)
        image.load()
    except Image.DecompressionBombError as error:   # Pillow's own, stricter-than-ours check on open
        raise TooBig(filename, f"more than limits.max_image_pixels ({limits.max_image_pixels}) pixels: "
                               f"{error}") from error
    except (UnidentifiedImageError, OSError) as error:
        raise LoaderError(filename, "corrupt or unreadable image") from error
    return [Section(text=clean_text(ocr_image(filename, ocr, image)), source=filename)]


def ocr_image(filename: str, ocr: OcrEngine, image: Any) -> str:
    try:
        return ocr.read(image)
    except (ImportError, OSError) as error:
        raise MissingTool(filename, f"the OCR engine (rapidocr) cannot be loaded: {error}") from error
