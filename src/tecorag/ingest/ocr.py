"""Optical character recognition for scanned pages and images (RapidOCR 3 on onnxruntime, with the PP-OCR
Chinese + English detection, classification and recognition models shipped inside the rapidocr wheel: nothing
is downloaded, which a test checks with the network switched off)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class OcrBox:
    """One recognised piece of text and where it lies on the image (pixels)."""

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def height(self) -> float:
        return self.bottom - self.top


class OcrEngine:
    """Reads the text of an image, lines in reading order (top to bottom, left to right).

    The ONNX models take a while to load, so they are loaded on the first `read`, once per engine;
    share one engine between loaders to pay that only once. Safe to call from several threads.
    """

    def __init__(self, min_score: float = 0.5):
        self._min_score = min_score
        self._rapidocr: Any = None
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        """Whether the models have been loaded (by a first `read`)."""
        return self._rapidocr is not None

    def read(self, image: Image.Image) -> str:
        """The image's text, one line per visual line. Raises ImportError/OSError when the OCR runtime
        cannot be loaded (e.g. a non-headless OpenCV on a machine without libGL)."""
        boxes = self.read_boxes(image)
        return "\n".join(_join_line(line) for line in _group_into_lines(boxes))

    def read_boxes(self, image: Image.Image) -> list[OcrBox]:
        rgb = _to_rgb(image)
        rgb.thumbnail((OCR_MAX_SIDE, OCR_MAX_SIDE))   # RapidOCR shrinks to this anyway; do it before the copies
        with self._lock:
            if self._rapidocr is None:
                from rapidocr import RapidOCR  # heavy import: only when OCR is needed

                # log level "error": RapidOCR logs every model path at INFO on each start
                self._rapidocr = RapidOCR(params={"Global.text_score": self._min_score,
                                                  "Global.log_level": "error"})
            import numpy as np

            result = self._rapidocr(np.asarray(rgb))
        boxes = []
        for corners, text, score in zip(result.boxes if result.boxes is not None else [], result.txts or (),
                                        result.scores or ()):
            if float(score) < self._min_score or not text.strip():
                continue
            xs = [point[0] for point in corners]
            ys = [point[1] for point in corners]
            boxes.append(OcrBox(text.strip(), min(xs), min(ys), max(xs), max(ys)))
        return boxes


# RapidOCR's Global.max_side_len: larger images are shrunk to this before detection.
OCR_MAX_SIDE = 2000


def _to_rgb(image: Image.Image) -> Image.Image:
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are black underneath: lay the image on white paper instead.
        rgba = image.convert("RGBA")
        paper = Image.new("RGB", rgba.size, "white")
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    return image.convert("RGB")


def _group_into_lines(boxes: list[OcrBox]) -> list[list[OcrBox]]:
    """Boxes whose vertical middles fall inside each other's extent are on one line (RapidOCR may split
    a line into several boxes and does not always return them in reading order)."""
    lines: list[list[OcrBox]] = []
    for box in sorted(boxes, key=lambda b: (b.middle, b.left)):
        if lines:
            line = lines[-1]
            line_top = min(b.top for b in line)
            line_bottom = max(b.bottom for b in line)
            line_middle = (line_top + line_bottom) / 2
            if line_top <= box.middle <= line_bottom and box.top <= line_middle <= box.bottom:
                line.append(box)
                continue
        lines.append([box])
    return [sorted(line, key=lambda b: b.left) for line in lines]


def _join_line(line: list[OcrBox]) -> str:
    text = line[0].text
    for previous, box in zip(line, line[1:]):
        # Chinese needs no space between pieces of one phrase; Latin words do, and so do pieces set
        # apart on the page (table columns, label and value).
        far_apart = box.left - previous.right > 0.5 * max(previous.height, box.height)
        latin_words = _is_word_char(text[-1]) and _is_word_char(box.text[0])
        text += (" " if far_apart or latin_words else "") + box.text
    return text


def _is_word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()
