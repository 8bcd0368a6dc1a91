"""Open-domain CMRC 2018 benchmark: every paragraph one document in one knowledge base, every question asked
against all of them. Reports retrieval (per route and the configured pipeline), answer containment, ingestion
throughput against the embedder alone, and query latency — as one JSON-ready dict."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from ..config import Settings
from ..ingest.pipeline import SourceDocument
from .metrics import contains_answer
from .predict import cmrc_document_name


@dataclass(frozen=True)
class CmrcQuestion:
    question: str
    document: str                  # the name of the document holding the question's own paragraph
    answers: tuple[str, ...]


def load_cmrc(path: Path, paragraphs: int | None = None) -> tuple[list[SourceDocument], list[CmrcQuestion]]:
    """Each paragraph becomes a Markdown document titled with its article's title."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    documents: list[SourceDocument] = []
    questions: list[CmrcQuestion] = []
    for article in data:
        for index, paragraph in enumerate(article["paragraphs"]):
            if paragraphs is not None and len(documents) >= paragraphs:
                return documents, questions
            name = cmrc_document_name(article, index)
            body = f"# {article['title']}\n\n{paragraph['context']}\n"
            documents.append(SourceDocument.from_bytes(name, body.encode("utf-8")))
            for qa in paragraph["qas"]:
                questions.append(CmrcQuestion(qa["question"], name, tuple(a["text"] for a in qa["answers"])))
    return documents, questions


def _rank_scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "r1": round(sum(1 for r in ranks if r is not None and r < 1) / n, 4),
        "r5": round(sum(1 for r in ranks if r is not None and r < 5) / n, 4),
        "mrr": round(sum(1.0 / (r + 1) for r in ranks if r is not None and r < 20) / n, 4),
    }


def _rank_of(document: str, files: list[str]) -> int | None:
    seen: list[str] = []
    for name in files:
        if name not in seen:
            seen.append(name)
        if name == document:
            return len(seen) - 1
    return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def run_cmrc_benchmark(settings: Settings, path: Path, paragraphs: int | None = None,
                       show_progress: bool = True) -> dict:
    from ..embed import build_embedder
    from ..ingest.loaders import DocumentLoader
    from ..ingest.splitter import ChineseTextSplitter
    from ..rag import RAG

    documents, questions = load_cmrc(path, paragraphs)
    with tempfile.TemporaryDirectory(prefix="tecorag-cmrc-") as home:
        # A fresh data directory: nothing cached, so ingestion pays for every embedding.
        run_settings = settings.model_copy(update={"home": Path(home)}, deep=True)
        if run_settings.milvus_is_embedded:
            run_settings.vector_store.uri = None
        with RAG(run_settings) as rag, Progress(disable=not show_progress, transient=True) as progress:
            kb = rag.create_kb("cmrc2018")
            task = progress.add_task("ingest", total=len(documents))
            report = rag.ingest(kb.name, documents, progress=lambda e: progress.update(task, completed=e.files_done))
            progress.remove_task(task)

            splitter = ChineseTextSplitter(run_settings.text_splitter)
            loader = DocumentLoader()
            index_texts = [chunk.index_text for document in documents
                           for chunk in splitter.split(loader.load(document.name, document.read()))]
            raw_embedder = build_embedder(run_settings.embeddings)
            task = progress.add_task("embed only", total=len(index_texts))
            embed_started = time.perf_counter()
            for start in range(0, len(index_texts), 64):
                raw_embedder.embed_documents(index_texts[start:start + 64])
                progress.update(task, completed=min(start + 64, len(index_texts)))
            embed_seconds = time.perf_counter() - embed_started
            progress.remove_task(task)

            routes = {"bm25": [], "dense": [], "hybrid": [], "final": []}
            contained: list[bool] = []
            lengths: list[int] = []
            latencies: list[float] = []
            task = progress.add_task("questions", total=len(questions))
            for question in questions:
                # A model of its own, outside the RAG's cache and recent-question memo: the ask below pays for
                # its own question vector, as a user's would.
                vector = raw_embedder.embed_query(question.question)
                for mode in ("bm25", "dense", "hybrid"):
                    hits = rag.retriever.search(kb.collection, question.question, vector, mode)
                    routes[mode].append(_rank_of(question.document, [hit.chunk.file for hit in hits]))
                started = time.perf_counter()
                answer = rag.ask(kb.name, question.question)
                latencies.append((time.perf_counter() - started) * 1000)
                routes["final"].append(_rank_of(question.document, [hit.chunk.file for hit in answer.hits]))
                contained.append(contains_answer(answer.text, question.answers) == 1.0)
                lengths.append(len(answer.text))
                progress.advance(task)
    chunks = len(index_texts)
    half = len(contained) // 2
    return {
        "paragraphs": len(documents),
        "questions": len(questions),
        "retrieval": {route: _rank_scores(ranks) for route, ranks in routes.items()},
        "answer": {
            "containment": round(sum(contained) / max(1, len(contained)), 4),
            # The answerer's weights were fitted on the first half of the questions: the second is held out.
            "containment_first_half": round(sum(contained[:half]) / max(1, half), 4),
            "containment_second_half": round(sum(contained[half:]) / max(1, len(contained) - half), 4),
            "median_len_second_half": statistics.median(lengths[half:]) if lengths[half:] else 0,
            "median_len": statistics.median(lengths) if lengths else 0,
            "mean_len": round(statistics.fmean(lengths), 1) if lengths else 0,
        },
        "ingest": {
            "chunks": report.chunks,
            "seconds": round(report.seconds, 2),
            "chunks_per_s": round(report.chunks / report.seconds, 2) if report.seconds else 0.0,
            "embed_only_chunks_per_s": round(chunks / embed_seconds, 2) if embed_seconds else 0.0,
        },
        "query_ms": {"p50": round(_percentile(latencies, 0.50), 2), "p95": round(_percentile(latencies, 0.95), 2)},
    }
