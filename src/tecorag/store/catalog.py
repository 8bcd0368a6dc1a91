"""The catalog: knowledge bases, their files, background jobs and the web UI's records (answer feedback, the
uploaded originals of files), in SQL through SQLAlchemy
(SQLite in the data directory by default; any SQLAlchemy URL, e.g. PostgreSQL, when deployed).

The schema carries a version (table `tecorag_schema`); opening a catalog made by an older tecorag runs the
migrations it lacks, in order, in one transaction that holds a lock (an advisory lock on PostgreSQL, the write
lock on SQLite), so replicas that start together migrate once. A catalog from a newer tecorag is refused.

Jobs are the only work queue the replicas share: a job's files (their bytes too) are rows in `job_files`,
and a replica runs a job only under a lease it renews (`claim_job`, `renew_job_lease`). When a replica dies
its lease runs out and any replica resumes the job's unfinished files.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, Column, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint,
                        and_, create_engine, delete, event, func, inspect, or_, select, text, update)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ..errors import ConfigError, KnowledgeBaseExists, KnowledgeBaseNotFound, StoreError
from ..types import FileStatus

SCHEMA_VERSION = 4
FINAL_FILE_STATUSES = (FileStatus.INDEXED, FileStatus.SKIPPED, FileStatus.FAILED)
POSTGRES_INSTALL_HINT = "pip install 'tecorag[postgres]'"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Base(DeclarativeBase):
    pass


class SchemaVersionRow(_Base):
    __tablename__ = "tecorag_schema"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class KBRow(_Base):
    __tablename__ = "knowledge_bases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    collection: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class FileRow(_Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("kb_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    key: Mapped[str] = mapped_column(String(64))             # the file's id in the vector store
    sha256: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=FileStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class JobRow(_Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kb_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")    # queued|running|done|failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)      # jobs without job_files rows (schema 1) only
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)
    # schema 2: the lease of the replica running the job, and what the job was asked to do
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[Any] = mapped_column(JSON, nullable=True)


class JobFileRow(_Base):
    """One file of a job. `data` holds the uploaded bytes until the file has a final status: the catalog is the
    one store every replica shares, so whichever replica resumes the job can read them."""

    __tablename__ = "job_files"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default="queued")    # queued|indexing|indexed|skipped|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


# -- schema 3: what the web UI keeps (answer feedback, the uploaded originals of files) -------------------------


class FeedbackRow(_Base):
    """👍/👎 on an answer, with what was asked and shown; keyed by KB name like jobs."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kb_name: Mapped[str] = mapped_column(String(255), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    sources: Mapped[Any] = mapped_column(JSON)              # the cited passages shown with the answer
    rating: Mapped[int] = mapped_column(Integer)            # 1 helpful, -1 not helpful
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class FileOriginalRow(_Base):
    """The bytes of a file uploaded through the API, for retrying it and showing its PDF pages from any replica."""

    __tablename__ = "file_originals"
    kb_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class Feedback:
    id: int
    kb: str
    question: str
    answer: str
    sources: list[dict[str, Any]]
    rating: int
    comment: str
    created_at: datetime


def _feedback(row: FeedbackRow) -> Feedback:
    return Feedback(id=row.id, kb=row.kb_name, question=row.question, answer=row.answer, sources=row.sources or [],
                    rating=row.rating, comment=row.comment, created_at=row.created_at)


class ApiKeyRow(_Base):
    """An API key limited to named knowledge bases (see "API keys" below). Only the key's SHA-256 is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    label: Mapped[str] = mapped_column(String(255), default="")
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    knowledge_bases: Mapped[Any] = mapped_column(JSON)           # list of knowledge-base names
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    collection: str
    description: str
    created_at: datetime
    file_count: int = 0
    chunk_count: int = 0


@dataclass(frozen=True)
class FileRecord:
    kb: str
    name: str
    key: str
    sha256: str
    size: int
    status: str
    error: str | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Job:
    id: str
    kb: str
    kind: str
    status: str
    total: int
    done: int
    message: str
    result: Any                    # {"files": {name: {"status", "error"}}, ...the summary once finished}
    error: str | None
    created_at: datetime
    updated_at: datetime
    owner: str | None = None       # the replica holding the lease
    attempts: int = 0              # how many times a replica has taken the job
    params: dict = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)    # name -> {"status", "error"}, in upload order


@dataclass(frozen=True)
class ApiKey:
    id: str
    label: str
    knowledge_bases: tuple[str, ...]
    can_write: bool
    created_at: datetime
    revoked_at: datetime | None


def _file_record(kb: str, row: FileRow) -> FileRecord:
    return FileRecord(kb=kb, name=row.name, key=row.key, sha256=row.sha256, size=row.size, status=row.status,
                      error=row.error, chunk_count=row.chunk_count, created_at=row.created_at,
                      updated_at=row.updated_at)


def _job(row: JobRow, file_rows: Sequence) -> Job:
    summary = dict(row.result or {})
    progress = summary.pop("progress", None) or {}         # chunk counters while running (set_job_progress)
    files = {file_row.name: {"status": file_row.status, "error": file_row.error, **progress.get(file_row.name, {})}
             for file_row in file_rows}
    result = {"files": files, **summary} if files else row.result
    done = sum(entry["status"] in FINAL_FILE_STATUSES for entry in files.values()) if files else row.done
    return Job(id=row.id, kb=row.kb_name, kind=row.kind, status=row.status, total=row.total, done=done,
               message=row.message, result=result, error=row.error, created_at=row.created_at,
               updated_at=row.updated_at, owner=row.owner, attempts=row.attempts, params=row.params or {},
               files=files)


def _claimable(now: datetime, max_attempts: int):
    """Queued jobs, and running jobs whose replica stopped renewing the lease (while attempts are left)."""
    return or_(JobRow.status == "queued",
               and_(JobRow.status == "running", JobRow.lease_until < now, JobRow.attempts < max_attempts))


# How long a SQLite catalog waits for another connection's lock: the driver's busy timeout, and the switch to WAL
# mode, which SQLite does not wait for itself (_switch_to_wal).
SQLITE_BUSY_TIMEOUT_S = 30.0


class Catalog:
    def __init__(self, url: str):
        self.url = _with_driver(url)
        self.display_url = make_url(self.url).render_as_string(hide_password=True)
        self.is_sqlite = self.url.startswith("sqlite")
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False} if self.is_sqlite else {}
        try:
            self.engine = create_engine(self.url, connect_args=connect_args, pool_pre_ping=not self.is_sqlite)
        except (NoSuchModuleError, ImportError) as exc:
            hint = f" ({POSTGRES_INSTALL_HINT})" if self.url.startswith("postgresql") else ""
            raise ConfigError(f"catalog.url {self.display_url}: its database driver is not installed{hint}: "
                              f"{exc}") from exc
        except ArgumentError as exc:
            raise ConfigError(f"catalog.url is not a valid SQLAlchemy URL: {self.display_url}") from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open the catalog at {self.display_url}: {exc.orig or exc}") from exc
        except BaseException:
            self.engine.dispose()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:     # the database went away, or is locked past the timeout
            raise StoreError(f"the catalog at {self.display_url} failed: {exc.orig or exc}") from exc

    def _kb_row(self, session: Session, name: str) -> KBRow:
        row = session.scalar(select(KBRow).where(KBRow.name == name))
        if row is None:
            raise KnowledgeBaseNotFound(f"knowledge base not found: {name}")
        return row

    # -- knowledge bases ---------------------------------------------------------------------------------

    def create_kb(self, name: str, collection_prefix: str, description: str = "") -> KnowledgeBase:
        collection = f"{collection_prefix}_{uuid.uuid4().hex[:16]}"
        try:
            with self._session() as session:
                row = KBRow(name=name, collection=collection, description=description)
                session.add(row)
                session.flush()
                return KnowledgeBase(name=row.name, collection=row.collection, description=row.description,
                                     created_at=row.created_at)
        except IntegrityError as exc:
            raise KnowledgeBaseExists(f"knowledge base already exists: {name}") from exc

    def get_kb(self, name: str) -> KnowledgeBase:
        """One indexed lookup plus one aggregate: this runs on every question, so no file rows are loaded."""
        with self._session() as session:
            row = self._kb_row(session, name)
            file_count, chunk_count = session.execute(
                select(func.count(FileRow.id), func.coalesce(func.sum(FileRow.chunk_count), 0))
                .where(FileRow.kb_id == row.id)).one()
            return KnowledgeBase(name=row.name, collection=row.collection, description=row.description,
                                 created_at=row.created_at, file_count=int(file_count), chunk_count=int(chunk_count))

    def kb_names(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(KBRow.name).order_by(KBRow.name)).all())

    def list_kbs(self) -> list[KnowledgeBase]:
        return [self.get_kb(name) for name in self.kb_names()]

    def delete_kb(self, name: str) -> None:
        """The knowledge base, its files and its jobs (with any upload bytes they still hold), its feedback."""
        with self._session() as session:
            row = self._kb_row(session, name)
            job_ids = select(JobRow.id).where(JobRow.kb_name == name).scalar_subquery()
            session.execute(delete(JobFileRow).where(JobFileRow.job_id.in_(job_ids)))
            session.execute(delete(JobRow).where(JobRow.kb_name == name))
            session.execute(delete(FileRow).where(FileRow.kb_id == row.id))
            session.execute(delete(FeedbackRow).where(FeedbackRow.kb_name == name))
            session.execute(delete(FileOriginalRow).where(FileOriginalRow.kb_name == name))
            session.delete(row)

    # -- files ---------------------------------------------------------------------------------------------

    def list_files(self, kb: str) -> list[FileRecord]:
        with self._session() as session:
            kb_row = self._kb_row(session, kb)
            rows = session.scalars(select(FileRow).where(FileRow.kb_id == kb_row.id).order_by(FileRow.name))
            return [_file_record(kb, row) for row in rows]

    def get_file(self, kb: str, name: str) -> FileRecord | None:
        with self._session() as session:
            kb_row = self._kb_row(session, kb)
            row = session.scalar(select(FileRow).where(FileRow.kb_id == kb_row.id, FileRow.name == name))
            return None if row is None else _file_record(kb, row)

    def upsert_file(self, kb: str, name: str, key: str, **fields: Any) -> FileRecord:
        try:
            return self._upsert_file(kb, name, key, **fields)
        except IntegrityError:       # another process inserted the same file meanwhile: now it is an update
            return self._upsert_file(kb, name, key, **fields)

    def _upsert_file(self, kb: str, name: str, key: str, **fields: Any) -> FileRecord:
        with self._session() as session:
            kb_row = self._kb_row(session, kb)
            row = session.scalar(select(FileRow).where(FileRow.kb_id == kb_row.id, FileRow.name == name))
            if row is None:
                row = FileRow(kb_id=kb_row.id, name=name, key=key)
                session.add(row)
            for field_name, value in fields.items():
                setattr(row, field_name, value)
            session.flush()
            return _file_record(kb, row)

    def delete_file(self, kb: str, name: str) -> None:
        with self._session() as session:
            kb_row = self._kb_row(session, kb)
            row = session.scalar(select(FileRow).where(FileRow.kb_id == kb_row.id, FileRow.name == name))
            if row is not None:
                session.delete(row)
            session.execute(delete(FileOriginalRow).where(FileOriginalRow.kb_name == kb, FileOriginalRow.name == name))

    # -- jobs ----------------------------------------------------------------------------------------------

    def create_job(self, kb: str, kind: str, files: Sequence[tuple[str, bytes]] = (),
                   params: dict | None = None, failed: dict[str, str] | None = None) -> Job:
        """A queued job; each file's bytes are kept in the catalog until the file has a final status. `failed`:
        files refused before the job started (name -> why), listed in it with that final status."""
        failed = failed or {}
        with self._session() as session:
            row = JobRow(id=uuid.uuid4().hex, kb_name=kb, kind=kind, total=len(files) + len(failed),
                         message="queued", params=params, attempts=0)
            session.add(row)
            session.flush()          # the job row first: job_files refer to it
            file_rows = [JobFileRow(job_id=row.id, position=position, name=name, data=data)
                         for position, (name, data) in enumerate(files)]
            file_rows += [JobFileRow(job_id=row.id, position=len(files) + number, name=name,
                                     status=FileStatus.FAILED, error=reason)
                          for number, (name, reason) in enumerate(failed.items())]
            session.add_all(file_rows)
            session.flush()
            return _job(row, file_rows)

    def get_job(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = session.get(JobRow, job_id)
            return None if row is None else _job(row, self._job_files(session, job_id))

    @staticmethod
    def _job_files(session: Session, job_id: str) -> list:
        """The job's files without their bytes."""
        return list(session.execute(select(JobFileRow.name, JobFileRow.status, JobFileRow.error)
                                    .where(JobFileRow.job_id == job_id).order_by(JobFileRow.position)))

    def claim_job(self, owner: str, lease_s: float, max_attempts: int) -> Job | None:
        """Lease the oldest claimable job to `owner`, or None. Exactly one replica wins a job: PostgreSQL locks
        the row (FOR UPDATE SKIP LOCKED, so replicas never wait on each other's candidates) and, on SQLite, which
        has no row locks, the UPDATE only changes the row while it is still claimable."""
        now = _now()
        with self._session() as session:
            job_id = session.scalar(select(JobRow.id).where(_claimable(now, max_attempts)).order_by(JobRow.created_at)
                                    .limit(1).with_for_update(skip_locked=True))
            if job_id is None:
                return None
            taken = session.execute(
                update(JobRow).where(JobRow.id == job_id, _claimable(now, max_attempts))
                .values(owner=owner, lease_until=now + timedelta(seconds=lease_s), status="running",
                        attempts=JobRow.attempts + 1, updated_at=now))
            if taken.rowcount != 1:
                return None          # another replica took it between our SELECT and UPDATE (SQLite)
            return _job(session.get(JobRow, job_id), self._job_files(session, job_id))

    def renew_job_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Extend the lease; False when the job is no longer this owner's (taken over, deleted or finished)."""
        now = _now()
        with self._session() as session:
            renewed = session.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.owner == owner, JobRow.status == "running")
                .values(lease_until=now + timedelta(seconds=lease_s)))
            return renewed.rowcount == 1

    def job_file_data(self, job_id: str, name: str) -> bytes | None:
        with self._session() as session:
            return session.scalar(select(JobFileRow.data).where(JobFileRow.job_id == job_id,
                                                                JobFileRow.name == name))

    def set_job_file(self, job_id: str, owner: str, name: str, status: str, error: str | None = None,
                     message: str | None = None) -> bool:
        """Record a file's status (a final one also drops its bytes); False when `owner` lost the job."""
        with self._session() as session:
            values: dict[str, Any] = {"status": status, "error": error}
            if status in FINAL_FILE_STATUSES:
                values["data"] = None
            if not self._owns(session, job_id, owner, message):
                return False
            session.execute(update(JobFileRow).where(JobFileRow.job_id == job_id, JobFileRow.name == name)
                            .values(**values))
            return True

    @staticmethod
    def _owns(session: Session, job_id: str, owner: str, message: str | None = None) -> bool:
        """Touch the job row if `owner` still runs it (this also takes its row lock for the transaction)."""
        values: dict[str, Any] = {"updated_at": _now()}
        if message is not None:
            values["message"] = message
        touched = session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.owner == owner,
                                                       JobRow.status == "running").values(**values))
        return touched.rowcount == 1

    def finish_job(self, job_id: str, owner: str, status: str, message: str, *, result: Any = None,
                   error: str | None = None) -> bool:
        """End the job (done or failed) if `owner` still runs it: files without a final status fail with the job's
        error, every file's bytes are dropped, the lease is cleared."""
        with self._session() as session:
            return self._finish(session, [JobRow.owner == owner, JobRow.status == "running"], job_id, status,
                                message, result, error)

    @staticmethod
    def _finish(session: Session, condition: list, job_id: str, status: str, message: str, result: Any,
                error: str | None) -> bool:
        ended = session.execute(update(JobRow).where(JobRow.id == job_id, *condition).values(
            status=status, message=message, result=json.loads(json.dumps(result, default=str)), error=error,
            lease_until=None, updated_at=_now()))
        if ended.rowcount != 1:
            return False
        session.execute(update(JobFileRow)
                        .where(JobFileRow.job_id == job_id, JobFileRow.status.not_in(FINAL_FILE_STATUSES))
                        .values(status=FileStatus.FAILED, error=error or "the job ended before this file was indexed"))
        session.execute(update(JobFileRow).where(JobFileRow.job_id == job_id).values(data=None))
        return True

    def release_job(self, job_id: str, owner: str) -> bool:
        """Give a job back to the queue (this replica is stopping): the attempt does not count against it."""
        with self._session() as session:
            released = session.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.owner == owner, JobRow.status == "running")
                .values(status="queued", owner=None, lease_until=None, attempts=JobRow.attempts - 1,
                        message="queued again: the server running it stopped", updated_at=_now()))
            return released.rowcount == 1

    def fail_abandoned_jobs(self, max_attempts: int) -> list[str]:
        """Jobs whose lease ran out after `max_attempts` takes (e.g. a file that crashes every replica that
        reads it) fail with the reason instead of being taken again; returns their ids."""
        now = _now()
        abandoned = [JobRow.status == "running", JobRow.lease_until < now, JobRow.attempts >= max_attempts]
        with self._session() as session:
            rows = session.execute(select(JobRow.id, JobRow.owner, JobRow.attempts).where(*abandoned)
                                   .with_for_update(skip_locked=True)).all()
            failed = []
            for job_id, owner, attempts in rows:
                reason = (f"abandoned: the server running this job stopped {attempts} times before finishing it "
                          f"(last: {owner}); not retried again (jobs.max_attempts={max_attempts})")
                if self._finish(session, abandoned, job_id, "failed", reason, None, reason):
                    failed.append(job_id)
            return failed

    # -- schema 3: answer feedback, uploaded originals, embedding progress of a job's files --------------------

    def add_feedback(self, kb: str, question: str, answer: str, sources: list[dict[str, Any]], rating: int,
                     comment: str = "") -> Feedback:
        with self._session() as session:
            row = FeedbackRow(kb_name=kb, question=question, answer=answer,
                              sources=json.loads(json.dumps(sources, default=str)), rating=rating, comment=comment)
            session.add(row)
            session.flush()
            return _feedback(row)

    def list_feedback(self, kb: str) -> list[Feedback]:
        with self._session() as session:
            rows = session.scalars(select(FeedbackRow).where(FeedbackRow.kb_name == kb).order_by(FeedbackRow.id))
            return [_feedback(row) for row in rows]

    def put_original(self, kb: str, name: str, data: bytes) -> None:
        """Insert or replace. Two uploads of one name at once can both try to insert: the loser's second try
        finds the row and updates it (last upload wins, as in the index)."""
        for attempt in range(2):
            try:
                with self._session() as session:
                    session.merge(FileOriginalRow(kb_name=kb, name=name, data=data))
                return
            except IntegrityError:
                if attempt:
                    raise

    def get_original(self, kb: str, name: str) -> bytes | None:
        with self._session() as session:
            return session.scalar(select(FileOriginalRow.data).where(FileOriginalRow.kb_name == kb,
                                                                     FileOriginalRow.name == name))

    def set_job_progress(self, job_id: str, owner: str, name: str, chunks_done: int, chunks_total: int) -> bool:
        """How many of a file's chunks are embedded, kept in the job's result until the job finishes (`get_job`
        shows it in the file's entry); False when `owner` lost the job."""
        with self._session() as session:
            if not self._owns(session, job_id, owner):
                return False
            row = session.get(JobRow, job_id)
            result = dict(row.result or {})
            progress = dict(result.get("progress") or {})
            progress[name] = {"chunks_done": chunks_done, "chunks_total": chunks_total}
            row.result = {**result, "progress": progress}
            return True

    # -- API keys scoped to knowledge bases ------------------------------------------------------------------
    # A key is "tk_<id>_<secret>"; the catalog keeps its SHA-256 (the secret is 256 random bits, so a fast hash
    # is enough), so a copy of the catalog does not give anyone a working key.

    def create_api_key(self, knowledge_bases: list[str], can_write: bool, label: str = "") -> tuple[ApiKey, str]:
        """A new key and its one-time plain text (never stored, never shown again)."""
        key_id = secrets.token_hex(8)
        plain = f"tk_{key_id}_{secrets.token_urlsafe(32)}"
        with self._session() as session:
            row = ApiKeyRow(id=key_id, label=label, key_sha256=_key_sha256(plain),
                            knowledge_bases=list(knowledge_bases), can_write=can_write)
            session.add(row)
            session.flush()
            return _api_key(row), plain

    def find_api_key(self, plain: str) -> ApiKey | None:
        """The active (not revoked) key with this plain text."""
        with self._session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_sha256 == _key_sha256(plain),
                                                         ApiKeyRow.revoked_at.is_(None)))
            return None if row is None else _api_key(row)

    def has_active_api_keys(self) -> bool:
        with self._session() as session:
            return session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.revoked_at.is_(None)).limit(1)) is not None

    def list_api_keys(self) -> list[ApiKey]:
        with self._session() as session:
            return [_api_key(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def revoke_api_key(self, key_id: str) -> bool:
        """False when no active key has that id."""
        with self._session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = _now()
            return True

    def close(self) -> None:
        self.engine.dispose()


# -- schema versions ----------------------------------------------------------------------------------------


def _add_columns(connection: Connection, table: str, columns: Sequence[Column]) -> None:
    for column in columns:
        column_type = column.type.compile(dialect=connection.dialect)
        default = f" DEFAULT {column.server_default.arg}" if column.server_default is not None else ""
        not_null = "" if column.nullable else " NOT NULL"
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column.name} {column_type}{default}{not_null}"))


def _migrate_1_to_2(connection: Connection) -> None:
    """Jobs survive crashes: a lease, their parameters, and their files (with the uploaded bytes) in job_files.
    Jobs left queued or running by schema 1 never will finish (their bytes were in a dead process's memory)."""
    _add_columns(connection, "jobs", [Column("owner", String(128), nullable=True),
                                      Column("lease_until", DateTime(timezone=True), nullable=True),
                                      Column("attempts", Integer, nullable=False, server_default=text("0")),
                                      Column("params", JSON, nullable=True)])
    JobFileRow.__table__.create(connection)
    connection.execute(
        update(JobRow.__table__).where(JobRow.__table__.c.status.in_(("queued", "running")))
        .values(status="failed", error="the server stopped while this job ran (a tecorag version whose jobs did "
                                       "not survive a restart); upload the files again"))


def _migrate_2_to_3(connection: Connection) -> None:
    """The web UI's records: answer feedback and the uploaded originals of files (new tables only)."""
    FeedbackRow.__table__.create(connection)
    FileOriginalRow.__table__.create(connection)


# (version reached, migration): applied in order to catalogs older than the version
def _migrate_3_to_4(connection: Connection) -> None:
    """API keys scoped to knowledge bases (a new table only)."""
    ApiKeyRow.__table__.create(connection, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(2, _migrate_1_to_2), (3, _migrate_2_to_3),
                                                              (4, _migrate_3_to_4)]
assert MIGRATIONS[-1][0] == SCHEMA_VERSION


def _read_version(connection: Connection) -> int | None:
    """The catalog's schema version; 1 for a catalog made before versions were recorded; None when empty."""
    tables = set(inspect(connection).get_table_names())
    if SchemaVersionRow.__tablename__ in tables:
        return connection.scalar(select(SchemaVersionRow.version).where(SchemaVersionRow.id == 1))
    return 1 if KBRow.__tablename__ in tables else None


def _lock_schema(connection: Connection) -> None:
    """Hold the catalog's schema lock until the transaction ends, so concurrent openers migrate one at a time."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7460425010)"))   # a fixed key: tecorag's schema
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")                          # the database's write lock


def migrate(engine) -> int:
    """Bring the catalog to SCHEMA_VERSION (create it when empty); returns the version it had."""
    with engine.connect() as connection:
        found = _read_version(connection)
    if found == SCHEMA_VERSION:
        return found
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(f"the catalog has schema version {found}, newer than this tecorag understands "
                         f"({SCHEMA_VERSION}): upgrade tecorag")
    with engine.begin() as connection:
        _lock_schema(connection)
        found = _read_version(connection)            # another process may have migrated meanwhile
        if found is None:
            _Base.metadata.create_all(connection)
        else:
            SchemaVersionRow.__table__.create(connection, checkfirst=True)
            for version, step in MIGRATIONS:
                if version > found:
                    step(connection)
        connection.execute(delete(SchemaVersionRow))
        connection.execute(SchemaVersionRow.__table__.insert().values(id=1, version=SCHEMA_VERSION))
    return found or 0


def _with_driver(url: str) -> str:
    """`postgresql://` means psycopg 3 here (SQLAlchemy's default would be psycopg2, which tecorag does not use)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _key_sha256(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "replace")).hexdigest()


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(id=row.id, label=row.label, knowledge_bases=tuple(row.knowledge_bases or ()),
                  can_write=bool(row.can_write), created_at=row.created_at, revoked_at=row.revoked_at)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor) -> None:
    """Put the database in WAL mode. Switching takes the database's exclusive lock, and SQLite answers "database is
    locked" at once, without its busy timeout, while another connection switches too: replicas opening a catalog
    together failed so (5 of 100 rounds of 8 openers). Retried while locked, up to the timeout. (A database that
    cannot be in WAL mode, in memory, keeps the mode SQLite gives it.)"""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)
