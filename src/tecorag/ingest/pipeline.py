"""Ingestion: file bytes -> loader -> sections -> splitter -> chunks -> embedder -> Milvus, with a catalog row per file.

Consistency rules (a crash or Ctrl-C anywhere leaves a state the next run repairs):
- a file is marked `indexing` with its new hash before its chunks are touched, and `indexed` only after they are in;
- the store replaces a file's chunks by deleting everything under the file's key first, so re-runs never duplicate;
- a file whose fingerprint is unchanged and whose status is `indexed` is skipped (nothing is embedded again); the
  fingerprint covers the bytes and the split settings, so a new chunk_size re-indexes an unchanged file.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from ..config import TextSplitterSettings
from ..embed.cache import CachedEmbedder
from ..errors import LoaderError, TecoragError
from ..store.catalog import Catalog, KnowledgeBase
from ..store.milvus import MilvusStore
from ..types import Chunk, FileStatus
from .loaders import DocumentLoader
from .splitter import ChineseTextSplitter

log = logging.getLogger("tecorag.ingest")


@dataclass(frozen=True)
class SourceDocument:
    """A document to ingest: the name users see and a way to read its bytes (read lazily, one file at a time)."""

    name: str
    read: Callable[[], bytes]

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> SourceDocument:
        return cls(name=name, read=lambda: data)


class IngestStage(StrEnum):
    """What is being done to a file right now (reported between its start and its FileStatus outcome)."""

    PARSING = "parsing"
    EMBEDDING = "embedding"
    STORING = "storing"


@dataclass(frozen=True)
class IngestProgress:
    """A file entered a stage (parsing, embedding, storing) or finished (indexed, skipped, failed, removed).
    While embedding, `chunks_done` of the file's `chunks_total` chunks have their vectors."""

    file: str
    files_done: int
    files_total: int
    status: FileStatus | IngestStage    # a stage it entered, or how it ended (indexed, skipped, failed, removed)
    chunks_done: int = 0
    chunks_total: int = 0


@dataclass
class IngestReport:
    indexed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0            # texts that went to the embedding model (cache misses)
    seconds: float = 0.0


def file_key(kb: str, name: str) -> str:
    return hashlib.sha1(f"{kb}\x00{name}".encode("utf-8")).hexdigest()


def content_fingerprint(data: bytes, splitter_settings: TextSplitterSettings) -> str:
    """What decides "unchanged" (stored in the catalog's `sha256` column): the file's bytes and how it is split."""
    digest = hashlib.sha256(data)
    digest.update(b"\x00split:" + splitter_settings.model_dump_json().encode("utf-8"))
    return digest.hexdigest()


def documents_from_paths(paths: Iterable[str | Path]) -> list[SourceDocument]:
    """Files given directly keep their base name; files found in a folder are named by their path inside it."""
    documents: list[SourceDocument] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                documents.append(SourceDocument(child.relative_to(path).as_posix(), child.read_bytes))
        else:
            documents.append(SourceDocument(path.name, path.read_bytes))
    return documents


@dataclass(frozen=True)
class _SplitFile:
    """A document read and split, waiting for its embeddings."""

    name: str
    key: str
    sha256: str
    size: int
    chunks: list[Chunk]


class Ingestor:
    """Reads and splits files one by one, embeds their chunks in batches across files (the embedder is several
    times faster on a batch than on one or two texts), then stores and catalogs each file on its own."""

    def __init__(self, loader: DocumentLoader, splitter_settings: TextSplitterSettings, embedder: CachedEmbedder,
                 store: MilvusStore, catalog: Catalog, embed_batch: int = 64):
        self.loader = loader
        self.splitter_settings = splitter_settings
        self.embedder = embedder
        self.store = store
        self.catalog = catalog
        self.embed_batch = embed_batch

    def run(self, kb: KnowledgeBase, documents: list[SourceDocument], *, sync: bool = False, force: bool = False,
            splitter_settings: TextSplitterSettings | None = None,
            progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        started = time.perf_counter()
        misses_before = self.embedder.misses
        splitter = ChineseTextSplitter(splitter_settings or self.splitter_settings)
        self.store.ensure_collection(kb.collection)
        report = IngestReport()
        total = len(documents) + (1 if sync else 0)
        finished = 0

        def finish(name: str, status: FileStatus) -> None:
            nonlocal finished
            finished += 1
            if progress:
                progress(IngestProgress(name, finished, total, status))

        def stage(name: str, status: IngestStage, chunks_done: int = 0, chunks_total: int = 0) -> None:
            if progress:
                progress(IngestProgress(name, finished, total, status, chunks_done, chunks_total))

        waiting: list[_SplitFile] = []
        for document in documents:
            stage(document.name, IngestStage.PARSING)
            split = self._read_and_split(kb, document, splitter, force, report)
            if isinstance(split, FileStatus):
                finish(document.name, split)
                continue
            waiting.append(split)
            if sum(len(item.chunks) for item in waiting) >= self.embed_batch:
                self._index(kb, waiting, report, finish, stage)
                waiting = []
        self._index(kb, waiting, report, finish, stage)
        if sync:
            wanted = {document.name for document in documents}
            for record in self.catalog.list_files(kb.name):
                if record.name not in wanted:
                    self.store.delete_file(kb.collection, record.key)
                    self.catalog.delete_file(kb.name, record.name)
                    report.removed.append(record.name)
            finish("--sync", FileStatus.REMOVED)
        report.embedded = self.embedder.misses - misses_before
        report.seconds = time.perf_counter() - started
        return report

    def _read_and_split(self, kb: KnowledgeBase, document: SourceDocument, splitter: ChineseTextSplitter,
                        force: bool, report: IngestReport) -> _SplitFile | FileStatus:
        """The split file, or the status it ended with: "skipped" (unchanged) or "failed"."""
        key = file_key(kb.name, document.name)
        try:
            data = document.read()
        except OSError as exc:
            return self._fail(kb, document.name, key, b"", f"{document.name}: cannot read: {exc}", report)
        sha256 = content_fingerprint(data, splitter.settings)
        existing = self.catalog.get_file(kb.name, document.name)
        if not force and existing and existing.sha256 == sha256 and existing.status == FileStatus.INDEXED:
            report.skipped.append(document.name)
            return FileStatus.SKIPPED
        try:
            chunks = splitter.split(self.loader.load(document.name, data))
            if not chunks:
                raise LoaderError(document.name, "no text found")
        except TecoragError as exc:
            return self._fail(kb, document.name, key, data, str(exc), report)
        except Exception as exc:  # a parser bug on one odd file must not stop the others
            # The reason reaches API replies: the message, not the exception class (the log has the traceback)
            log.warning("reading %s failed", document.name, exc_info=exc)
            return self._fail(kb, document.name, key, data, f"{document.name}: cannot be read: {exc}", report)
        return _SplitFile(document.name, key, sha256, len(data), chunks)

    def _index(self, kb: KnowledgeBase, files: list[_SplitFile], report: IngestReport,
               finish: Callable[[str, FileStatus], None], stage: Callable[..., None]) -> None:
        if not files:
            return
        vectors = self._embed_reporting(files, stage)
        offset = 0
        for item in files:
            stage(item.name, IngestStage.STORING, len(item.chunks), len(item.chunks))
            self.catalog.upsert_file(kb.name, item.name, item.key, sha256=item.sha256, size=item.size,
                                     status=FileStatus.INDEXING, error=None, chunk_count=0)
            self.store.replace_file(kb.collection, item.key, item.chunks, vectors[offset:offset + len(item.chunks)])
            offset += len(item.chunks)
            self.catalog.upsert_file(kb.name, item.name, item.key, status=FileStatus.INDEXED, chunk_count=len(item.chunks))
            report.indexed.append(item.name)
            report.chunks += len(item.chunks)
            finish(item.name, FileStatus.INDEXED)

    def _embed_reporting(self, files: list[_SplitFile], stage: Callable[..., None]) -> np.ndarray:
        """The vectors of every chunk of `files`, embedded in batches; after each batch every file it touched
        reports how many of its chunks are embedded (a big file shows its progress, not a long silence)."""
        texts = [chunk.index_text for item in files for chunk in item.chunks]
        starts = list(itertools.accumulate((len(item.chunks) for item in files), initial=0))
        for item in files:
            stage(item.name, IngestStage.EMBEDDING, 0, len(item.chunks))
        batches = []
        for begin in range(0, len(texts), self.embed_batch):
            end = min(begin + self.embed_batch, len(texts))
            batches.append(self.embedder.embed_documents(texts[begin:end]))
            for item, first in zip(files, starts):
                if first < end and first + len(item.chunks) > begin:
                    stage(item.name, IngestStage.EMBEDDING, min(end - first, len(item.chunks)), len(item.chunks))
        return np.concatenate(batches) if batches else np.zeros((0, self.embedder.dimension), dtype=np.float32)

    def _fail(self, kb: KnowledgeBase, name: str, key: str, data: bytes, message: str, report: IngestReport) -> FileStatus:
        self.store.delete_file(kb.collection, key)
        self.catalog.upsert_file(kb.name, name, key, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                 status=FileStatus.FAILED, error=message, chunk_count=0)
        report.failed[name] = message
        return FileStatus.FAILED
