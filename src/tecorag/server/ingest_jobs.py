"""Indexing uploaded files, either in the request (Teco-RAG's upload_docs) or as a background job whose
progress lives in the catalog (`GET /jobs/{id}` answers from any server process)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ..config import TextSplitterSettings
from ..ingest.pipeline import IngestProgress, SourceDocument
from ..rag import RAG
from ..store.catalog import Job
from ..types import FileStatus
from .schemas import UploadResult

log = logging.getLogger("tecorag.server")

UPLOAD_JOB = "upload"


def already_indexed(rag: RAG, kb: str, documents: Sequence[SourceDocument]) -> list[str]:
    """Names of the documents that the KB already holds as indexed files."""
    indexed = {record.name for record in rag.list_files(kb) if record.status == FileStatus.INDEXED}
    return [document.name for document in documents if document.name in indexed]


def ingest_uploads(rag: RAG, kb: str, documents: Sequence[SourceDocument], *, override: bool = True,
                   splitter: TextSplitterSettings | None = None,
                   progress: Callable[[IngestProgress], None] | None = None) -> UploadResult:
    """Index the documents; with `override` false, files already indexed in the KB are left as they are.
    Unchanged files are skipped either way (same bytes, same chunks)."""
    kept = list(documents)
    not_overridden: list[str] = []
    if not override:
        not_overridden = already_indexed(rag, kb, documents)
        kept = [document for document in documents if document.name not in not_overridden]
    if not kept:
        rag.get_kb(kb)
        return UploadResult(skipped_files=not_overridden)
    report = rag.ingest(kb, kept, splitter=splitter, progress=progress)
    return UploadResult(failed_files=dict(report.failed), indexed_files=list(report.indexed),
                        skipped_files=not_overridden + list(report.skipped), chunks=report.chunks,
                        seconds=round(report.seconds, 3))


class IngestJobRunner:
    """A small pool of threads that index uploads. Ingestion into one KB is serialized by the RAG itself."""

    def __init__(self, rag: RAG, max_workers: int = 2):
        self.rag = rag
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tecorag-ingest")
        self._pending: dict[str, Future] = {}
        self._pending_guard = threading.Lock()

    def submit(self, kb: str, documents: Sequence[SourceDocument], *, override: bool = True,
               splitter: TextSplitterSettings | None = None) -> Job:
        self.rag.get_kb(kb)  # unknown KB: 404 now, not a failed job later
        job = self.rag.create_job(kb, UPLOAD_JOB, total=len(documents))
        files = {document.name: {"status": "queued", "error": None} for document in documents}
        self.rag.update_job(job.id, result={"files": files}, message="queued")
        future = self._executor.submit(self._run, job.id, kb, list(documents), override, splitter, files)
        with self._pending_guard:
            self._pending[job.id] = future
        future.add_done_callback(lambda _: self._forget(job.id))
        return self.rag.get_job(job.id) or job

    def _forget(self, job_id: str) -> None:
        with self._pending_guard:
            self._pending.pop(job_id, None)

    def _run(self, job_id: str, kb: str, documents: list[SourceDocument], override: bool,
             splitter: TextSplitterSettings | None, files: dict[str, dict]) -> None:
        finished = (FileStatus.INDEXED, FileStatus.SKIPPED, FileStatus.FAILED)

        def report_progress(message: str) -> None:
            waiting = [name for name, entry in files.items() if entry["status"] not in finished]
            if waiting and files[waiting[0]]["status"] == "queued":
                files[waiting[0]]["status"] = FileStatus.INDEXING     # the ingestor takes files in upload order
            self.rag.update_job(job_id, status="running", done=len(files) - len(waiting), message=message,
                                result={"files": files})

        def on_progress(event: IngestProgress) -> None:
            error = None
            if event.status == FileStatus.FAILED:
                error = next((r.error for r in self.rag.list_files(kb) if r.name == event.file), None)
            files[event.file] = {"status": event.status, "error": error}
            report_progress(event.file)

        try:
            if not override:
                for name in already_indexed(self.rag, kb, documents):
                    files[name] = {"status": FileStatus.SKIPPED, "error": None}
            report_progress("started")
            result = ingest_uploads(self.rag, kb, documents, override=override, splitter=splitter,
                                    progress=on_progress)
        except Exception as exc:  # the job records it; nothing else would see an exception in this thread
            log.exception("upload job %s into %s failed", job_id, kb)
            for entry in files.values():
                if entry["status"] not in finished:
                    entry.update(status=FileStatus.FAILED, error=str(exc))
            self.rag.update_job(job_id, status="failed", error=f"{type(exc).__name__}: {exc}",
                                result={"files": files})
            return
        for name in result.skipped_files:
            files[name] = {"status": FileStatus.SKIPPED, "error": None}
        for name, reason in result.failed_files.items():
            files[name] = {"status": FileStatus.FAILED, "error": reason}
        summary = (f"indexed {len(result.indexed_files)}, skipped {len(result.skipped_files)}, "
                   f"failed {len(result.failed_files)}")
        self.rag.update_job(job_id, status="done", done=len(files), message=summary,
                            result={"files": files, **result.model_dump()})

    def shutdown(self) -> None:
        """Queued jobs are marked failed; running ones finish (their files would otherwise stay half-indexed)."""
        with self._pending_guard:
            pending = dict(self._pending)
        for job_id, future in pending.items():
            if future.cancel():
                self.rag.update_job(job_id, status="failed", error="the server stopped before this job ran")
        self._executor.shutdown(wait=True, cancel_futures=True)
