"""RAG: the one object the CLI, the server and the evaluators use. Built once from Settings; holds no global state.

    ingest:  documents -> Ingestor (loader -> splitter -> embedder -> Milvus + catalog)
    ask:     question -> HybridRetriever -> Generator -> Answer with citations
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import LimitsSettings, Settings, TextSplitterSettings
from .embed import build_embedder
from .embed.base import Embedder
from .embed.cache import CachedEmbedder
from .errors import (FileNotInKnowledgeBase, InputError, InvalidName, KnowledgeBaseExists, KnowledgeBaseNotFound,
                     QuestionTooLong, StoreError)
from .generate.base import Generator
from .generate.extractive import ExtractiveAnswerer
from .generate.factory import build_generator, build_llm_client
from .generate.llm import LLMClient
from .ingest.loaders import DocumentLoader
from .ingest.pipeline import IngestProgress, IngestReport, Ingestor, SourceDocument, documents_from_paths
from .retrieve.hybrid import HybridRetriever
from .retrieve.rerank import Reranker, build_reranker
from .retrieve.transform import plan_queries
from .store.catalog import Catalog, Feedback, FileRecord, Job, KnowledgeBase
from .store.milvus import MilvusStore
from .types import Answer, Chunk, Citation, Hit, Message

log = logging.getLogger("tecorag")

MAX_NAME_LENGTH = 255


def validate_name(name: str, what: str = "knowledge base name") -> str:
    """Check a name as a name, not by substring: no path separators, no control or unpaired-surrogate
    characters, not `.` or `..` nor hidden (leading `.`); `v1..2.txt` is fine."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(f"{what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if "/" in name or "\\" in name:
        raise InvalidName(f"{what} must not contain '/' or '\\': {name!r}")
    if name.startswith("."):
        raise InvalidName(f"{what} must not be '.', '..' or start with '.': {name!r}")
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise InvalidName(f"{what} must not contain control characters: {name!r}")
    return name


def normalize_kb_name(name: str) -> str:
    """The form a knowledge-base name is stored in: NFKC (full-width letters become ASCII) and trimmed."""
    if not isinstance(name, str):
        raise InvalidName("knowledge base name is empty")
    return unicodedata.normalize("NFKC", name).strip()


def kb_name_key(name: str) -> str:
    """What decides whether two knowledge-base names are the same: normalised and case-folded."""
    return normalize_kb_name(name).casefold()


def check_question(question: str, history: Sequence[Message], limits: LimitsSettings) -> None:
    """A question (and its history) within `limits.*` and valid Unicode, before any work is done on it."""
    if len(question) > limits.max_question_chars:
        raise QuestionTooLong(f"question of {len(question)} characters, more than limits.max_question_chars "
                              f"({limits.max_question_chars})")
    if len(history) > limits.max_history_messages:
        raise QuestionTooLong(f"history of {len(history)} messages, more than limits.max_history_messages "
                              f"({limits.max_history_messages})")
    history_chars = sum(len(message.content) for message in history)
    if history_chars > limits.max_history_chars:
        raise QuestionTooLong(f"history of {history_chars} characters, more than limits.max_history_chars "
                              f"({limits.max_history_chars})")
    for what, text in [("question", question), *(("history", message.content) for message in history)]:
        if not is_valid_unicode(text):
            raise InputError(f"the {what} is not valid Unicode (an unpaired surrogate such as \\ud800)")


def is_valid_unicode(text: str) -> bool:
    """False for strings holding unpaired surrogates (JSON allows "\\ud800"; UTF-8 cannot encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class StreamEvent:
    """What `RAG.stream` yields: first the hits, then answer text pieces, then the finished Answer."""

    kind: str                          # "hits" | "delta" | "done"
    text: str = ""
    hits: list[Hit] = field(default_factory=list)
    answer: Answer | None = None


class RAG:
    """The composition root. Parts passed in are used as they are; missing ones are built from `settings` by
    each stage's factory, lazily: `tecorag kb list` opens the catalog only, never the embedding model or Milvus.

        RAG(settings)                                           # everything from settings
        RAG(settings, embedder=HashEmbedder(), generator=g)     # tests: a stand-in embedder, a custom generator

    An embedder passed in is wrapped in the persistent content-hash cache unless it is a `CachedEmbedder` already.
    """

    def __init__(self, settings: Settings, *, catalog: Catalog | None = None, embedder: Embedder | None = None,
                 store: MilvusStore | None = None, reranker: Reranker | None = None,
                 generator: Generator | None = None, llm_client: LLMClient | None = None,
                 loader: DocumentLoader | None = None):
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.catalog = catalog if catalog is not None else Catalog(settings.catalog_url)
        if embedder is not None and not isinstance(embedder, CachedEmbedder):
            embedder = self._cached(embedder)
        given = {"embedder": embedder, "store": store, "reranker": reranker, "generator": generator,
                 "llm_client": llm_client, "loader": loader}
        self._parts: dict[str, Any] = {name: part for name, part in given.items() if part is not None}
        self._build_lock = threading.RLock()
        self._kb_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._create_guard = threading.Lock()

    # -- parts, built on first use ----------------------------------------------------------------------

    def _part(self, name: str, build: Callable[[], Any]) -> Any:
        """The part called `name`: the one given to the constructor, else built now, once (a build may return
        None, e.g. no reranker, and that is kept too)."""
        with self._build_lock:
            if name not in self._parts:
                self._parts[name] = build()
            return self._parts[name]

    @property
    def embedder(self) -> CachedEmbedder:
        return self._part("embedder", lambda: self._cached(build_embedder(self.settings.embeddings)))

    def _cached(self, embedder: Embedder) -> CachedEmbedder:
        return CachedEmbedder(embedder, self.settings.home / "embeddings.sqlite")

    @property
    def store(self) -> MilvusStore:
        return self._part("store", lambda: MilvusStore.from_settings(self.settings, self.embedder.dimension))

    @property
    def loader(self) -> DocumentLoader:
        return self._part("loader", lambda: DocumentLoader(limits=self.settings.limits))

    @property
    def ingestor(self) -> Ingestor:
        return self._part("ingestor", lambda: Ingestor(self.loader, self.settings.text_splitter, self.embedder,
                                                       self.store, self.catalog))

    @property
    def reranker(self) -> Reranker | None:
        return self._part("reranker", lambda: build_reranker(self.settings.reranker))

    @property
    def retriever(self) -> HybridRetriever:
        return self._part("retriever", lambda: HybridRetriever(self.store, self.embedder, self.settings.retrieval,
                                                               self.reranker))

    @property
    def extractive(self) -> ExtractiveAnswerer:
        return self._part("extractive", lambda: ExtractiveAnswerer.from_settings(self.settings.extractive,
                                                                                 self.embedder))

    @property
    def llm_client(self) -> LLMClient | None:
        return self._part("llm_client", lambda: build_llm_client(self.settings))

    @property
    def generator(self) -> Generator:
        return self._part("generator", lambda: build_generator(self.settings, self.extractive,
                                                               client=self.llm_client))

    def close(self) -> None:
        """Close what was opened: a part never used was never built."""
        for name in ("store", "embedder"):
            part = self._parts.get(name)
            if part is not None:
                part.close()
        self.catalog.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- knowledge bases ---------------------------------------------------------------------------------

    def create_kb(self, name: str, description: str = "") -> KnowledgeBase:
        """Atomic: the catalog row reserves the name (unique for every replica), then the collection and its
        indexes are made; if they cannot be, the row is removed again and the store has dropped any half-made
        collection, so a failed create leaves nothing behind. On a Milvus without BM25 this warns once.
        Names are stored normalised (NFKC, trimmed); one that differs from an existing name only by case or
        width is the same name, so look-alikes cannot coexist."""
        name = validate_name(normalize_kb_name(name))
        store = self.store            # opened first: a store that cannot be opened is not a failed create
        with self._create_guard:
            taken = self._existing_kb_name(name)
            if taken is not None:
                raise KnowledgeBaseExists(f"knowledge base already exists: {taken}")
            kb = self.catalog.create_kb(name, self.settings.vector_store.name, description)
        try:
            store.ensure_collection(kb.collection)
        except Exception as exc:
            self.catalog.delete_kb(kb.name)
            if isinstance(exc, StoreError):
                raise StoreError(f"knowledge base {kb.name} not created: {exc}") from exc
            raise
        if warning := store.capabilities.warning:
            log.warning("knowledge base %s: %s", kb.name, warning)
        return kb

    def get_kb(self, name: str) -> KnowledgeBase:
        """The knowledge base of that name, compared as `kb_name_key` does (case and width do not matter)."""
        name = validate_name(normalize_kb_name(name))
        try:
            return self.catalog.get_kb(name)
        except KnowledgeBaseNotFound:
            stored = self._existing_kb_name(name)
            if stored is None:
                raise
            return self.catalog.get_kb(stored)

    def _existing_kb_name(self, name: str) -> str | None:
        """The stored name that means the same as `name`, if any (a scan: only on a miss or a create)."""
        key = kb_name_key(name)
        return next((stored for stored in self.catalog.kb_names() if kb_name_key(stored) == key), None)

    def list_kbs(self) -> list[KnowledgeBase]:
        return self.catalog.list_kbs()

    def delete_kb(self, name: str) -> None:
        kb = self.get_kb(name)
        with self._kb_lock(kb.name):
            self.store.drop_collection(kb.collection)
            self.catalog.delete_kb(kb.name)

    def clear_kb(self, name: str) -> None:
        """Remove every file and chunk, keep the knowledge base."""
        kb = self.get_kb(name)
        with self._kb_lock(kb.name):
            self.store.drop_collection(kb.collection)
            for record in self.catalog.list_files(kb.name):
                self.catalog.delete_file(kb.name, record.name)
            self.store.ensure_collection(kb.collection)

    # -- files -------------------------------------------------------------------------------------------

    def list_files(self, kb: str) -> list[FileRecord]:
        return self.catalog.list_files(self.get_kb(kb).name)

    def delete_file(self, kb: str, filename: str) -> None:
        if not is_valid_unicode(filename):
            raise FileNotInKnowledgeBase(f"file not in knowledge base {kb}: {filename!r}")
        knowledge_base = self.get_kb(kb)
        with self._kb_lock(knowledge_base.name):
            record = self.catalog.get_file(knowledge_base.name, filename)
            if record is None:
                raise FileNotInKnowledgeBase(f"file not in knowledge base {kb}: {filename}")
            self.store.delete_file(knowledge_base.collection, record.key)
            self.catalog.delete_file(knowledge_base.name, filename)
            self.store.compact(knowledge_base.collection)   # deleted text leaves the disk (where Milvus can)

    def file_chunks(self, kb: str, filename: str) -> list[Chunk]:
        knowledge_base = self.get_kb(kb)
        record = self.catalog.get_file(knowledge_base.name, filename)
        if record is None:
            raise FileNotInKnowledgeBase(f"file not in knowledge base {kb}: {filename}")
        return self.store.file_chunks(knowledge_base.collection, record.key)

    def ingest(self, kb: str, documents: Sequence[SourceDocument], *, sync: bool = False, force: bool = False,
               splitter: TextSplitterSettings | None = None,
               progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Index documents into a knowledge base; one bad file is reported in the result and skips nothing else.
        Ingestions into the same knowledge base are serialized; asks are never blocked by them."""
        knowledge_base = self.get_kb(kb)
        for document in documents:
            validate_name(document.name.replace("/", "_"), "file name")
        with self._kb_lock(knowledge_base.name):
            return self.ingestor.run(knowledge_base, list(documents), sync=sync, force=force,
                                     splitter_settings=splitter, progress=progress)

    def ingest_paths(self, kb: str, paths: Sequence[str | Path], **options) -> IngestReport:
        return self.ingest(kb, documents_from_paths(paths), **options)

    # -- jobs (background ingestion queued in the catalog: see server/ingest_jobs.py) ----------------------

    def get_job(self, job_id: str) -> Job | None:
        return self.catalog.get_job(job_id)

    # -- answer feedback -------------------------------------------------------------------------------

    def add_feedback(self, kb: str, question: str, answer: str, sources: list[dict], rating: int,
                     comment: str = "") -> Feedback:
        return self.catalog.add_feedback(self.get_kb(kb).name, question, answer, sources, rating, comment)

    def list_feedback(self, kb: str) -> list[Feedback]:
        return self.catalog.list_feedback(self.get_kb(kb).name)

    # -- questions ---------------------------------------------------------------------------------------

    def retrieve(self, kb: str, question: str, *, top_k: int | None = None, score_threshold: float | None = None,
                 mode: str | None = None) -> list[Hit]:
        check_question(question, (), self.settings.limits)
        knowledge_base = self.get_kb(kb)
        if knowledge_base.chunk_count == 0:
            return []   # nothing indexed: skip the store (Milvus Lite's BM25 errors on a never-filled collection)
        return self.retriever.retrieve(knowledge_base.collection, question, top_k=top_k, mode=mode,
                                       score_threshold=score_threshold)

    def ask(self, kb: str, question: str, *, history: Sequence[Message] = (), top_k: int | None = None,
            score_threshold: float | None = None) -> Answer:
        answer = None
        for event in self.stream(kb, question, history=history, top_k=top_k, score_threshold=score_threshold):
            if event.kind == "done":
                answer = event.answer
        assert answer is not None
        return answer

    def warm(self, kb: str) -> None:
        """Get ready to answer from `kb`: its collection starts loading in the vector store, in the background,
        while this thread loads the extractive answerer's tables (also the fallback of an LLM). A cold `tecorag
        ask` overlaps the two."""
        knowledge_base = self.get_kb(kb)
        if knowledge_base.chunk_count:
            self.store.warm(knowledge_base.collection)
        self.extractive.prepare()

    def stream(self, kb: str, question: str, *, history: Sequence[Message] = (), top_k: int | None = None,
               score_threshold: float | None = None) -> Iterator[StreamEvent]:
        check_question(question, history, self.settings.limits)
        knowledge_base = self.get_kb(kb)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        plan = plan_queries(self.llm_client, self.settings.llm, question, history)
        if self.llm_client is not None:
            timings["transform"] = (time.perf_counter() - started) * 1000
        retrieve_started = time.perf_counter()
        hits = [] if knowledge_base.chunk_count == 0 else self.retriever.retrieve(
            knowledge_base.collection, plan.standalone, top_k=top_k, score_threshold=score_threshold,
            rephrasings=plan.rephrasings, hyde_passage=plan.hyde_passage)
        timings["retrieve"] = (time.perf_counter() - retrieve_started) * 1000
        yield StreamEvent(kind="hits", hits=hits)
        generate_started = time.perf_counter()
        pieces: list[str] = []
        stream = self.generator.stream(question, hits, history)
        for piece in stream:
            pieces.append(piece)
            yield StreamEvent(kind="delta", text=piece)
        timings["generate"] = (time.perf_counter() - generate_started) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        text = "".join(pieces)
        answer = Answer(question=question, text=text, citations=cite(hits), hits=hits, timings_ms=timings,
                        engine=stream.engine, notice=stream.notice.message if stream.notice else None)
        yield StreamEvent(kind="done", answer=answer)

    def _kb_lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._kb_locks.setdefault(name, threading.Lock())


def cite(hits: Sequence[Hit]) -> list[Citation]:
    """Every retrieved passage is a source, in retrieval order, so an LLM's [n] marks point at citation n."""
    return [Citation(file=hit.chunk.file, page=hit.chunk.page, heading=hit.chunk.heading, text=hit.chunk.text,
                     score=hit.score) for hit in hits]
