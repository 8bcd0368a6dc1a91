"""Limits checked before parsing (ingest/loaders/bounds.py), on real hostile files from tests/hostile.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import hostile
from tecorag.config import LimitsSettings
from tecorag.ingest.loaders import DocumentLoader
from tecorag.ingest.loaders.bounds import TooBig, render_scale
from tecorag.ingest.ocr import OcrEngine


@pytest.fixture(scope="module")
def ocr_engine() -> OcrEngine:
    return OcrEngine()


def loader_with(ocr_engine: OcrEngine, **limits) -> DocumentLoader:
    return DocumentLoader(ocr=ocr_engine, limits=LimitsSettings(**limits))


@pytest.mark.parametrize("kind", [".docx", ".pptx", ".xlsx"])
def test_office_zip_bombs_are_refused_from_the_zip_directory(kind: str, tmp_path: Path, ocr_engine) -> None:
    package = hostile.office_package(kind, tmp_path)
    assert loader_with(ocr_engine).load(f"ok{kind}", package)        # the real package itself is fine

    bomb = hostile.zip_bomb(package, hostile.BOMB_PARTS[kind], 24 * hostile.MIB)
    assert len(bomb) < hostile.MIB // 4
    started = time.perf_counter()
    with pytest.raises(TooBig, match=r"limits\.max_unzipped_mb") as refused:
        loader_with(ocr_engine, max_unzipped_mb=8).load(f"bomb{kind}", bomb)
    assert f"bomb{kind}" in str(refused.value)
    assert time.perf_counter() - started < 1.0                           # nothing was inflated

    with pytest.raises(TooBig, match=r"limits\.max_xml_part_mb"):
        loader_with(ocr_engine, max_xml_part_mb=16).load(f"bomb{kind}", bomb)
    with pytest.raises(TooBig, match=r"limits\.max_zip_ratio .*zip bomb"):
        loader_with(ocr_engine).load(f"bomb{kind}", bomb)
    with pytest.raises(TooBig, match=r"limits\.max_zip_parts"):
        loader_with(ocr_engine, max_zip_parts=100).load(f"crowded{kind}", hostile.many_parts(package, 200))


def test_a_package_that_is_not_a_zip_names_the_file(ocr_engine) -> None:
    with pytest.raises(Exception, match=r"fake\.docx: not a valid Office package"):
        loader_with(ocr_engine).load("fake.docx", b"PK\x03\x04 not really a zip" * 10)


def test_pdf_page_count_is_limited_before_any_page_is_read(ocr_engine) -> None:
    pdf = hostile.blank_pdf(30)
    with pytest.raises(TooBig, match=r"30 pages, more than limits\.max_pdf_pages \(20\)"):
        loader_with(ocr_engine, max_pdf_pages=20).load("long.pdf", pdf)


def test_a_huge_scanned_page_is_rendered_within_the_pixel_limit(ocr_engine) -> None:
    assert render_scale(595, 842, 2.0, 25_000_000) == 2.0                # A4 at 144 dpi: unchanged
    scale = render_scale(14_400, 14_400, 2.0, 1_000_000)                 # PDF's largest page, 200 in x 200 in
    assert (14_400 * scale) ** 2 <= 1_000_000 * 1.001
    assert 14_400 * render_scale(14_400, 7_200, 2.0, 25_000_000, max_side=2000) == pytest.approx(2000)
    huge_page = hostile.blank_pdf(1, 14_400, 14_400)                     # blank: rendered for OCR, no text
    with pytest.raises(Exception, match="no text"):
        loader_with(ocr_engine, max_image_pixels=1_000_000).load("huge.pdf", huge_page)


def test_image_pixel_count_is_checked_from_the_header(ocr_engine) -> None:
    started = time.perf_counter()
    for width, height in [(10_000, 10_000), (100_000, 100_000)]:        # 100 M and 10 G pixels claimed
        with pytest.raises(TooBig, match=r"more than limits\.max_image_pixels"):
            loader_with(ocr_engine).load("bomb.png", hostile.png_header_bomb(width, height))
    with pytest.raises(TooBig, match=r"10000x10000 pixels"):
        loader_with(ocr_engine).load("bomb.png", hostile.png_header_bomb(10_000, 10_000))
    assert time.perf_counter() - started < 1.0
