"""Plain text, Markdown, CSV/TSV."""

from __future__ import annotations

import csv
import io
import re
from pathlib import PurePath

from tecorag.errors import UnsupportedFormat
from tecorag.types import Section

from .common import Outline, clean_text, decode_text, table_text


def load_text(filename: str, data: bytes) -> list[Section]:
    return [Section(text=clean_text(decode_text(filename, data)), source=filename)]


_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_DELIMITER = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


def fence_after(open_fence: str, line: str) -> str:
    """The fenced code block open after `line`, given the one open before it ("" for none): the opening
    fence line itself ("```python"), so that a piece of the block cut out elsewhere can be fenced alike."""
    fence = _FENCE.match(line)
    if not fence:
        return open_fence
    if not open_fence:
        return line.strip()
    marker = fence.group(1)
    closes = marker[0] == open_fence[0] and len(marker) >= len(opening_marker(open_fence)) \
        and not line.strip()[len(marker):].strip()
    return "" if closes else open_fence


def opening_marker(open_fence: str) -> str:
    """The backticks or tildes of an opening fence line: what closes the block ("```python" -> "```")."""
    fence = _FENCE.match(open_fence)
    return fence.group(1) if fence else "```"


def load_markdown(filename: str, data: bytes) -> list[Section]:
    """Sections split at ATX headings (`#` .. `######`) with their heading path; pipe tables become
    table sections. Lines inside fenced code blocks are text, never headings or tables; the fence lines
    themselves are kept, so what reads the text (the answerer, an LLM) knows which lines are code."""
    lines = decode_text(filename, data).splitlines()
    outline = Outline(filename)
    open_fence = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if open_fence or _FENCE.match(line):
            open_fence = fence_after(open_fence, line)
            outline.add_text(line)
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


def load_csv(filename: str, data: bytes, delimiter: str = ",") -> list[Section]:
    text = decode_text(filename, data)
    rows = [list(row) for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    table = table_text(rows, has_header=True)
    return [Section(text=table, source=filename, heading_path=(PurePath(filename).stem,), kind="table")]


def load_tsv(filename: str, data: bytes) -> list[Section]:
    return load_csv(filename, data, delimiter="\t")


def load_extensionless(filename: str, data: bytes) -> list[Section]:
    """A file without an extension (LICENSE, README, NOTICE) is plain text if it decodes as text; binary data
    (NUL bytes in the first 8 KiB) is refused as an unsupported type."""
    if b"\x00" in data[:8192]:
        raise UnsupportedFormat(filename, "unsupported file type (no extension, and not text)")
    return load_text(filename, data)
