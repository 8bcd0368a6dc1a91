"""Hostile inputs, made for real: zip bombs that are valid Office packages, PDFs with too many or too large
pages, images whose header promises billions of pixels, and the request bodies that broke the server before
(infinity, unpaired surrogates, JSON nested thousands deep). Shared by the loader tests and the server's
hostile suite (tests/server/test_hostile.py)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import docgen

MIB = 1024 * 1024

# The part each Office format parses first, and the XML that makes it inflate: the same empty element again
# and again compresses about 1000:1.
BOMB_PARTS = {".docx": "word/document.xml", ".pptx": "ppt/slides/slide1.xml", ".xlsx": "xl/worksheets/sheet1.xml"}
_FILLER = b"<!-- padding padding padding padding padding padding padding padding padding -->\n" * 1000


def office_package(kind: str, folder: Path) -> bytes:
    """A small real package of that kind (.docx, .pptx or .xlsx)."""
    if kind == ".docx":
        path = docgen.make_docx(folder / "base.docx", "差旅管理办法", ["员工出差住宿标准为每晚不超过五百元。"])
    elif kind == ".pptx":
        path = docgen.make_pptx(folder / "base.pptx", [("差旅", "住宿标准每晚五百元", "")])
    else:
        path = docgen.make_xlsx(folder / "base.xlsx", [["项目", "标准"], ["住宿", "500"]])
    return path.read_bytes()


def zip_bomb(package: bytes, member: str, inflated_bytes: int) -> bytes:
    """`package` with `member` replaced by valid XML that inflates to about `inflated_bytes` (written in
    pieces, so making a 1 GiB bomb costs little memory)."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for info in source.infolist():
            if info.filename != member:
                bomb.writestr(info, source.read(info.filename))
                continue
            original = source.read(member)
            head, _, tail = original.rpartition(b"</")       # keep the root element closed: still valid XML
            info = zipfile.ZipInfo(member)
            info.compress_type = zipfile.ZIP_DEFLATED
            with bomb.open(info, "w", force_zip64=True) as part:
                part.write(head)
                written = len(head)
                while written < inflated_bytes:
                    part.write(_FILLER)
                    written += len(_FILLER)
                part.write(b"</" + tail)
    return out.getvalue()


def dense_docx(package: bytes, xml_bytes: int, seed: int = 7) -> bytes:
    """`package` (a .docx) whose body holds empty paragraphs with random revision ids, about `xml_bytes` of
    XML that compresses only ~3:1: the largest parse a package within the zip limits can ask for."""
    import random

    rng = random.Random(seed)
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dense:
        for info in source.infolist():
            if info.filename != BOMB_PARTS[".docx"]:
                dense.writestr(info, source.read(info.filename))
                continue
            head, body_end, tail = source.read(info.filename).partition(b"</w:body>")
            part_info = zipfile.ZipInfo(info.filename)
            part_info.compress_type = zipfile.ZIP_DEFLATED
            with dense.open(part_info, "w", force_zip64=True) as part:
                part.write(head)
                written = len(head)
                while written < xml_bytes:
                    block = b"".join(b'<w:p w:rsidR="%08X" w:rsidRDefault="%08X"/>'
                                     % (rng.getrandbits(32), rng.getrandbits(32)) for _ in range(10_000))
                    part.write(block)
                    written += len(block)
                part.write(body_end + tail)
    return out.getvalue()


def many_parts(package: bytes, count: int) -> bytes:
    """`package` plus `count` tiny extra parts."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as crowded:
        for info in source.infolist():
            crowded.writestr(info, source.read(info.filename))
        for number in range(count):
            crowded.writestr(f"customXml/item{number}.xml", b"<a/>")
    return out.getvalue()


def blank_pdf(pages: int, width_pt: float = 595, height_pt: float = 842) -> bytes:
    """A PDF of blank pages (no text layer, so each is rendered for OCR)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    try:
        for _ in range(pages):
            document.new_page(width_pt, height_pt)
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()
    finally:
        document.close()


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one row of data: decoding it would need
    width*height bytes; opening it reads only the header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)       # 8-bit greyscale
    data = zlib.compress(b"\x00" + b"\xff" * min(width, 1 << 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# Request bodies that once gave 500s, for every JSON route: (what it is, the raw JSON text of one field value)
HOSTILE_JSON_VALUES = {
    "infinity": "1e309",
    "minus infinity": "-1e309",
    "NaN": "NaN",
    "lone surrogate": '"\\ud800"',
    "surrogate in text": '"差旅\\udfff标准"',
    "nested 3000 deep": nested_json(3000),
    "nested 900 deep": nested_json(900),
}
