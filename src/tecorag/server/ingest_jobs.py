"""Indexing uploaded files, either in the request (Teco-RAG's upload_docs) or as a background job.

A background job lives in the catalog, uploaded bytes included, so it survives the process that accepted it:
every replica runs a `JobRunner` that claims queued jobs (and jobs whose replica died: their lease ran out),
renews the lease of the jobs it runs, and records each file's status as it ends. A job resumed elsewhere indexes
only the files that have no final status yet. `GET /jobs/{id}` answers from any replica."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial

from ..config import JobSettings, TextSplitterSettings
from ..errors import TecoragError
from ..ingest.pipeline import IngestProgress, IngestStage, SourceDocument
from ..rag import RAG
from ..store.catalog import FINAL_FILE_STATUSES, Job
from ..types import FileStatus
from .errors import INTERNAL_ERROR_MESSAGE
from .schemas import UploadResult

log = logging.getLogger("tecorag.server")

UPLOAD_JOB = "upload"


def already_indexed(rag: RAG, kb: str, documents: Sequence[SourceDocument]) -> list[str]:
    """Names of the documents that the KB already holds as indexed files."""
    indexed = {record.name for record in rag.list_files(kb) if record.status == FileStatus.INDEXED}
    return [document.name for document in documents if document.name in indexed]


def keep_originals(rag: RAG, kb: str, documents: Sequence[SourceDocument], *, override: bool = True) -> None:
    """Keep the uploaded bytes in the catalog (for retrying a file and showing its PDF pages, from any replica);
    with `override` false, a file already indexed keeps the original it was indexed from."""
    kept = set(already_indexed(rag, kb, documents)) if not override else set()
    for document in documents:
        if document.name not in kept:
            rag.catalog.put_original(kb, document.name, document.read())


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


class LeaseLost(Exception):
    """This replica no longer runs the job: its lease was taken over, or the job (or its KB) was deleted."""


class Stopping(Exception):
    """This replica is shutting down; the job goes back to the queue."""


def replica_id() -> str:
    """Who holds a lease: readable by an operator (host and process), unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class IngestJobRunner:
    """Claims upload jobs from the catalog and runs up to `settings.workers` of them in threads.

    One supervisor thread wakes every poll_s (at once when this replica accepts an upload) to renew the leases
    of the jobs running here, fail jobs abandoned too often, and claim new ones. Ingestion into one KB is
    serialized within a replica by the RAG itself."""

    def __init__(self, rag: RAG, settings: JobSettings | None = None, owner: str | None = None):
        self.rag = rag
        self.catalog = rag.catalog
        self.settings = settings or rag.settings.jobs
        self.owner = owner or replica_id()
        self._running: dict[str, threading.Event] = {}       # job id -> its stop request
        self._threads: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="tecorag-jobs", daemon=True)

    def start(self) -> None:
        self._supervisor.start()

    def submit(self, kb: str, documents: Sequence[SourceDocument], *, override: bool = True,
               splitter: TextSplitterSettings | None = None, rejected: dict[str, str] | None = None) -> Job:
        """Queue the upload (bytes into the catalog) and wake this replica's supervisor; any replica may run it.
        `rejected`: files refused before the job (bad names), listed in it as failed with the reason."""
        self.rag.get_kb(kb)  # unknown KB: 404 now, not a failed job later
        params = {"override": override, "splitter": splitter.model_dump() if splitter else None}
        job = self.catalog.create_job(kb, UPLOAD_JOB, [(document.name, document.read()) for document in documents],
                                      params=params, failed=rejected)
        self._wake.set()
        return job

    # -- the supervisor ------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        interval = min(self.settings.poll_s, self.settings.lease_s / 3)
        while not self._stopping.is_set():
            try:
                self._renew_leases()
                for job_id in self.catalog.fail_abandoned_jobs(self.settings.max_attempts):
                    log.warning("job %s failed: abandoned after %d attempts", job_id, self.settings.max_attempts)
                self._claim_jobs()
            except Exception:  # the catalog may be briefly unreachable; the next round tries again
                log.exception("job supervisor: catalog error; retrying in %.0fs", interval)
            self._wake.wait(interval)
            self._wake.clear()

    def _renew_leases(self) -> None:
        with self._guard:
            running = dict(self._running)
        for job_id, stop in running.items():
            if not self.catalog.renew_job_lease(job_id, self.owner, self.settings.lease_s):
                log.warning("job %s: lease lost (taken over or deleted); stopping it here", job_id)
                stop.set()

    def _claim_jobs(self) -> None:
        while not self._stopping.is_set():
            with self._guard:
                if len(self._running) >= self.settings.workers:
                    return
            job = self.catalog.claim_job(self.owner, self.settings.lease_s, self.settings.max_attempts)
            if job is None:
                return
            if job.attempts > 1:
                log.warning("job %s: resuming (attempt %d) with %d of %d files left", job.id, job.attempts,
                            job.total - job.done, job.total)
            stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(job, stop), name=f"tecorag-job-{job.id[:8]}",
                                      daemon=True)   # a stopping server does not wait for a long file
            with self._guard:
                self._running[job.id] = stop
                self._threads[job.id] = thread
            thread.start()

    # -- one job -------------------------------------------------------------------------------------------

    def _run(self, job: Job, stop: threading.Event) -> None:
        try:
            self._run_upload(job, stop)
        except LeaseLost:
            log.warning("job %s: stopped here, another replica owns it now (or it was deleted)", job.id)
        except Stopping:
            self.catalog.release_job(job.id, self.owner)
        except Exception as exc:  # the job records it; nothing else would see an exception in this thread
            if self._stopping.is_set():        # e.g. the store closed under it at shutdown: resumable, not failed
                self.catalog.release_job(job.id, self.owner)
            else:
                log.exception("upload job %s into %s failed", job.id, job.kb)
                reason = str(exc) if isinstance(exc, TecoragError) else INTERNAL_ERROR_MESSAGE  # no class names
                self.catalog.finish_job(job.id, self.owner, "failed", "failed", error=reason)
        finally:
            with self._guard:
                self._running.pop(job.id, None)
                self._threads.pop(job.id, None)
            self._wake.set()

    def _run_upload(self, job: Job, stop: threading.Event) -> None:
        kb = job.kb
        override = job.params.get("override", True)
        splitter = (TextSplitterSettings.model_validate(job.params["splitter"]) if job.params.get("splitter")
                    else None)
        left = [name for name, entry in job.files.items() if entry["status"] not in FINAL_FILE_STATUSES]

        def record(name: str, status: str, error: str | None = None, message: str | None = None) -> None:
            if not self.catalog.set_job_file(job.id, self.owner, name, status, error, message=message):
                raise LeaseLost()
            if stop.is_set():
                raise Stopping() if self._stopping.is_set() else LeaseLost()

        documents = [SourceDocument(name, partial(self._file_bytes, job.id, name)) for name in left]
        if not override:
            kept = set(already_indexed(self.rag, kb, documents))
            for name in kept:
                record(name, FileStatus.SKIPPED)
            documents = [document for document in documents if document.name not in kept]
        stages: dict[str, IngestStage] = {}          # the last stage recorded per file

        def on_progress(event: IngestProgress) -> None:
            """Each file's stage (parsing, embedding, storing) and outcome as the ingestor reports them; while
            embedding, how many of its chunks are done."""
            if isinstance(event.status, IngestStage):
                if stages.get(event.file) != event.status:
                    stages[event.file] = event.status
                    record(event.file, event.status, message=event.file)
                if event.status == IngestStage.EMBEDDING and not self.catalog.set_job_progress(
                        job.id, self.owner, event.file, event.chunks_done, event.chunks_total):
                    raise LeaseLost()
                return
            error = None
            if event.status == FileStatus.FAILED:
                error = next((r.error for r in self.rag.list_files(kb) if r.name == event.file), None)
            record(event.file, event.status, error, message=event.file)

        if documents:
            ingest_uploads(self.rag, kb, documents, override=True, splitter=splitter, progress=on_progress)
        files = self.catalog.get_job(job.id).files
        by_status = {status: [name for name, entry in files.items() if entry["status"] == status]
                     for status in FINAL_FILE_STATUSES}
        indexed = set(by_status[FileStatus.INDEXED])
        chunks = sum(entry.chunk_count for entry in self.rag.list_files(kb) if entry.name in indexed)
        summary = {"indexed_files": by_status[FileStatus.INDEXED], "skipped_files": by_status[FileStatus.SKIPPED],
                   "failed_files": {name: files[name]["error"] for name in by_status[FileStatus.FAILED]},
                   "chunks": chunks}
        message = (f"indexed {len(by_status[FileStatus.INDEXED])}, skipped {len(by_status[FileStatus.SKIPPED])}, "
                   f"failed {len(by_status[FileStatus.FAILED])}")
        if not self.catalog.finish_job(job.id, self.owner, "done", message, result=summary):
            raise LeaseLost()

    def _file_bytes(self, job_id: str, name: str) -> bytes:
        data = self.catalog.job_file_data(job_id, name)
        if data is None:
            raise LeaseLost()       # the job was deleted (with its KB) or finished elsewhere
        return data

    def shutdown(self, wait_s: float = 5.0) -> None:
        """Stop claiming; running jobs stop at their next file boundary and go back to the queue. A job still
        inside a long file after `wait_s` keeps its lease until it runs out, then another replica resumes it."""
        self._stopping.set()
        self._wake.set()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout=wait_s)
        with self._guard:
            stops = list(self._running.values())
            threads = list(self._threads.values())
        for stop in stops:
            stop.set()
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
