"""The data that flows through the pipeline: Section -> Chunk -> Hit -> Answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FileStatus(StrEnum):
    """Where a file stands. The catalog keeps pending, indexing, indexed or failed; an ingestion run or job also
    reports a file as skipped (unchanged, nothing embedded) or removed (gone from the folder with --sync)."""

    PENDING = "pending"
    INDEXING = "indexing"
    INDEXED = "indexed"
    SKIPPED = "skipped"
    FAILED = "failed"
    REMOVED = "removed"


@dataclass(frozen=True)
class Section:
    """A piece of a loaded document with where it came from.

    `kind` is "text" or "table"; a table section's text is one row per line, header row first.
    """

    text: str
    source: str                      # file name as the user knows it
    page: int | None = None          # 1-based page (PDF) or slide (PPTX); None for flowing text
    heading_path: tuple[str, ...] = ()
    kind: str = "text"


@dataclass(frozen=True)
class Chunk:
    """A unit of retrieval. `text` is what the generator reads (the parent for small-to-big);
    `index_text` is what gets embedded and BM25-indexed (heading path + the small piece)."""

    id: str                          # stable: sha of (file, position, text)
    file: str
    text: str
    index_text: str
    position: int                    # order within the file
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    parent_id: str = ""              # small-to-big: the id shared by all pieces of one parent chunk
    piece: str = ""                  # the indexed piece without its title (small-to-big: the child)

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score (higher is better; meaning depends on the fusion)."""

    chunk: Chunk
    score: float


@dataclass(frozen=True)
class Citation:
    file: str
    page: int | None
    heading: str
    text: str                        # the passage the answer was drawn from
    score: float


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    engine: str = "extractive"
    notice: str | None = None        # e.g. "LLM unreachable; extractive answer shown"


NO_ANSWER = "根据已知信息无法回答该问题"


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: role is "system", "user" or "assistant"."""

    role: str
    content: str
