"""What every loader family shares: text decoding, cleaning, and the Outline that turns headings, lines and
tables into sections."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tecorag.errors import LoaderError
from tecorag.types import Section


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
