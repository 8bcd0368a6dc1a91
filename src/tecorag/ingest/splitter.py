"""Chinese-aware text splitter: loader sections -> retrieval chunks.

Each section is split on its own (citations need its file, page and heading path): paragraphs first,
then sentences, then - only for a sentence longer than the chunk - clauses and hard cuts. The pieces
are packed greedily into chunks of at most `chunk_size` characters; consecutive chunks share the
trailing whole sentences of the earlier one (at most `chunk_overlap` characters). Table sections are
cut between rows, and every table chunk starts with the header row.

A chunk cut inside a fenced code block closes it, and the next one reopens it with the same fence line
("```python"), so that each chunk says which of its lines are code. Every chunk's title (what is indexed
with it) is the file's name followed by its heading path.

Where a chunk is longer than `chunk_size`: a table chunk holding the header and a single row that together do
not fit (a row is never split), and a chunk with a repaired fence line at either end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Sequence

from ..config import TextSplitterSettings
from ..errors import ConfigError
from ..normalize import normalize_text
from ..types import Chunk, Section
from .loaders.text import fence_after, opening_marker

_CLOSERS = re.escape("”’\"'」』）)】]》〉")
# A sentence ends at Chinese end punctuation, or at ASCII . ! ? ; followed by whitespace or the end
# (so 3.14 and example.com stay whole); closing quotes/brackets and the whitespace after stay with it.
# A line break ends a sentence too: headings, list items and table-like lines carry no punctuation.
_SENTENCE_END = re.compile(
    rf"(?:[。！？；…]+|[.!?;]+(?=[{_CLOSERS}]*(?:\s|$)))[{_CLOSERS}]*\s*|\n\s*"
)
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_CLAUSE_END = re.compile(r"(?:[，、]|,(?!\d))\s*")   # 1,000 is a number, not two clauses
_TRAILING_SPACES = re.compile(r"[^\S\n]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_NAME_SEPARATORS = re.compile(r"[_\s]+")
_TABLE_RULE = re.compile(r"^[\s|:+\-]*-[\s|:+\-]*$")


def split_sentences(text: str) -> list[str]:
    """Cut `text` into sentences; `"".join(split_sentences(text)) == text` always holds."""
    return _split_after(text, _SENTENCE_END)


def _split_after(text: str, boundary: re.Pattern[str]) -> list[str]:
    """Cut `text` after every match of `boundary`; the pieces concatenate back to `text` exactly.

    A piece that would be whitespace only is kept with its neighbour instead of standing alone.
    """
    pieces: list[str] = []
    start = 0
    for match in boundary.finditer(text):
        if text[start:match.end()].strip():
            pieces.append(text[start:match.end()])
            start = match.end()
    tail = text[start:]
    if tail.strip() or not pieces:
        if tail:
            pieces.append(tail)
    else:
        pieces[-1] += tail
    return pieces


def _normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACES.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


@dataclass(frozen=True)
class _Piece:
    """A unit the packer never cuts: a sentence, or a clause / hard-cut part of an over-long sentence."""

    text: str
    paragraph: int
    whole_sentence: bool
    fence: str = ""        # the opening line of the fenced code block this piece is in ("```python"), or ""


def _text_len(pieces: Sequence[_Piece]) -> int:
    return len("".join(piece.text for piece in pieces).strip())


def _hard_cut(text: str, size: int) -> list[str]:
    parts: list[str] = []
    start, content_end = 0, len(text.rstrip())
    while content_end - start > size:
        window = text[start:start + size]
        space = max(window.rfind(" "), window.rfind("\t"))
        # Prefer cutting between ASCII words, unless that leaves a tiny part.
        cut = start + (space + 1 if space >= size // 2 else size)
        parts.append(text[start:cut])
        start = cut
    parts.append(text[start:])
    return parts


def _pieces(text: str, size: int) -> list[_Piece]:
    pieces: list[_Piece] = []
    for paragraph_index, paragraph in enumerate(_split_after(text, _PARAGRAPH_BREAK)):
        for sentence in split_sentences(paragraph):
            if len(sentence.strip()) <= size:
                pieces.append(_Piece(sentence, paragraph_index, whole_sentence=True))
                continue
            for clause in _split_after(sentence, _CLAUSE_END):
                pieces.extend(_Piece(part, paragraph_index, whole_sentence=False)
                              for part in _hard_cut(clause, size))
    fenced, fence = [], ""
    for piece in pieces:
        if piece.text.strip():
            fenced.append(dataclasses.replace(piece, fence=fence) if fence else piece)
        for line in piece.text.splitlines():
            fence = fence_after(fence, line)
    return fenced


def _fenced_text(chunk: Sequence[_Piece]) -> str:
    """A chunk's text with the code fences it cuts repaired: a chunk that starts inside a code block opens it
    again ("```python"), one that ends inside closes it, so every chunk says which of its lines are code."""
    lines = "".join(piece.text for piece in chunk).strip().split("\n")
    opened = chunk[0].fence
    if opened and not fence_after(opened, lines[0]):
        lines, opened = lines[1:], ""            # starts with the block's closing fence: nothing to reopen
    fence = opened
    for line in lines:
        fence = fence_after(fence, line)
    if fence and lines and fence_after("", lines[-1]) == fence:
        lines, fence = lines[:-1], ""            # ends with an opening fence: the block is all in the next chunk
    text = "\n".join(lines).strip()
    if not text:
        return ""
    if opened:
        text = f"{opened}\n{text}"
    if fence:
        text = f"{text}\n{opening_marker(fence)}"
    return text


def _overlap_tail(chunk: list[_Piece], overlap: int) -> list[_Piece]:
    tail: list[_Piece] = []
    for piece in reversed(chunk):
        if not piece.whole_sentence or _text_len([piece, *tail]) > overlap:
            break
        tail.insert(0, piece)
    return tail


def _pack(pieces: list[_Piece], size: int, overlap: int) -> list[list[_Piece]]:
    """Greedy packing that keeps a paragraph whole when it fits in a chunk of its own."""
    paragraphs: list[list[_Piece]] = []
    for piece in pieces:
        if paragraphs and paragraphs[-1][0].paragraph == piece.paragraph:
            paragraphs[-1].append(piece)
        else:
            paragraphs.append([piece])

    chunks: list[list[_Piece]] = []
    current: list[_Piece] = []
    new_in_current = 0          # pieces not carried over from the previous chunk as overlap
    for paragraph in paragraphs:
        paragraph_fits_alone = _text_len(paragraph) <= size
        if new_in_current and paragraph_fits_alone and _text_len(current + paragraph) > size:
            chunks.append(current)
            current, new_in_current = _overlap_tail(current, overlap), 0
        for index, piece in enumerate(paragraph):
            if new_in_current and _text_len([*current, piece]) > size:
                chunks.append(current)
                current, new_in_current = _overlap_tail(current, overlap), 0
            if not new_in_current:
                wanted = paragraph if index == 0 and paragraph_fits_alone else [piece]
                while current and _text_len(current + wanted) > size:
                    current.pop(0)
            current.append(piece)
            new_in_current += 1
    if new_in_current:
        chunks.append(current)
    return chunks


def _text_chunks(text: str, size: int, overlap: int) -> list[str]:
    packed = _pack(_pieces(text, size), size, overlap)
    return [joined for joined in (_fenced_text(chunk) for chunk in packed) if joined]


def _table_chunks(text: str, size: int) -> list[str]:
    lines = [line.rstrip() for line in _normalize(text).split("\n") if line.strip()]
    if not lines:
        return []
    # A markdown table's |---| rule belongs to the header.
    is_rule = len(lines) > 1 and bool(_TABLE_RULE.match(lines[1])) and ("|" in lines[1] or "---" in lines[1])
    header_len = 2 if is_rule else 1
    header, rows = lines[:header_len], lines[header_len:]
    if not rows:
        return ["\n".join(header)]
    groups: list[list[str]] = [[]]
    for row in rows:
        if groups[-1] and len("\n".join([*header, *groups[-1], row])) > size:
            groups.append([])
        groups[-1].append(row)
    return ["\n".join([*header, *group]) for group in groups]


def _merge_neighbours(sections: Sequence[Section]) -> list[Section]:
    """Join consecutive text sections of the same file, page and heading path: small ones then share chunks."""
    merged: list[Section] = []
    for section in sections:
        text = _normalize(section.text) if section.kind != "table" else section.text
        previous = merged[-1] if merged else None
        if (previous is not None and section.kind != "table" and previous.kind != "table"
                and (previous.source, previous.page, previous.heading_path)
                == (section.source, section.page, section.heading_path)):
            merged[-1] = dataclasses.replace(previous, text=f"{previous.text}\n\n{text}".strip())
        else:
            merged.append(dataclasses.replace(section, text=text))
    return merged


def document_name(source: str) -> str:
    """A file name as words for the title: "teco-rag__docs_deployment.md" -> "teco-rag docs deployment"."""
    return " ".join(_NAME_SEPARATORS.split(PurePath(source).stem)).strip()


def _chunk_id(source: str, position: int, index_text: str) -> str:
    return hashlib.sha1(f"{source}\x1f{position}\x1f{index_text}".encode("utf-8")).hexdigest()[:32]


class ChineseTextSplitter:
    """Splits loader sections into chunks; see the module docstring for the rules."""

    def __init__(self, settings: TextSplitterSettings):
        if settings.chunk_size <= 0:
            raise ConfigError(f"text_splitter.chunk_size must be positive, got {settings.chunk_size}")
        if not 0 <= settings.chunk_overlap < settings.chunk_size:
            raise ConfigError(f"text_splitter.chunk_overlap must be in [0, chunk_size), "
                              f"got {settings.chunk_overlap} with chunk_size {settings.chunk_size}")
        if settings.smaller_chunk_size < 0:
            raise ConfigError(f"text_splitter.smaller_chunk_size must be >= 0, got {settings.smaller_chunk_size}")
        self._settings = settings

    @property
    def settings(self) -> TextSplitterSettings:
        return self._settings

    def split(self, sections: Sequence[Section]) -> list[Chunk]:
        settings = self._settings
        next_position: dict[str, int] = {}
        parent_positions: dict[str, int] = {}
        chunks: list[Chunk] = []
        for section in _merge_neighbours(sections):
            title = self._title(section)
            for parent_text in self._cut(section, settings.chunk_size, settings.chunk_overlap):
                if settings.smaller_chunk_size > 0:
                    parent_position = parent_positions.get(section.source, 0)
                    parent_positions[section.source] = parent_position + 1
                    parent_id = _chunk_id(section.source, parent_position, f"parent\x1f{parent_text}")
                    pieces = self._cut(dataclasses.replace(section, text=parent_text),
                                       settings.smaller_chunk_size, 0)
                else:
                    parent_id, pieces = "", [parent_text]
                for piece in pieces:
                    position = next_position.get(section.source, 0)
                    next_position[section.source] = position + 1
                    # What is embedded and BM25-indexed is normalised like the question will be;
                    # `text` stays as written, for citations.
                    index_text = normalize_text(f"{title}\n{piece}" if title else piece)
                    chunks.append(Chunk(
                        id=_chunk_id(section.source, position, index_text),
                        file=section.source, text=parent_text, index_text=index_text, position=position,
                        page=section.page, heading_path=section.heading_path,
                        parent_id=parent_id, piece=piece,
                    ))
        return chunks

    def _title(self, section: Section) -> str:
        if not self._settings.zh_title_enhance:
            return ""
        # The document's name leads: "部署指南 > 环境要求" alone does not say which product it deploys, and
        # many documents share headings ("支持的操作系统" in every example's README).
        return " > ".join((document_name(section.source), *section.heading_path))

    @staticmethod
    def _cut(section: Section, size: int, overlap: int) -> list[str]:
        if section.kind == "table":
            return _table_chunks(section.text, size)
        return _text_chunks(section.text, size, overlap)
