"""The catalog: knowledge bases, their files and background jobs, in SQL through SQLAlchemy
(SQLite in the data directory by default; any SQLAlchemy URL, e.g. PostgreSQL, when deployed)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event,
                        func, select)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ..errors import KnowledgeBaseExists, KnowledgeBaseNotFound
from ..types import FileStatus


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Base(DeclarativeBase):
    pass


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
    done: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


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
    result: Any
    error: str | None
    created_at: datetime
    updated_at: datetime


def _file_record(kb: str, row: FileRow) -> FileRecord:
    return FileRecord(kb=kb, name=row.name, key=row.key, sha256=row.sha256, size=row.size, status=row.status,
                      error=row.error, chunk_count=row.chunk_count, created_at=row.created_at,
                      updated_at=row.updated_at)


def _job(row: JobRow) -> Job:
    return Job(id=row.id, kb=row.kb_name, kind=row.kind, status=row.status, total=row.total, done=row.done,
               message=row.message, result=row.result, error=row.error, created_at=row.created_at,
               updated_at=row.updated_at)


class Catalog:
    def __init__(self, url: str):
        connect_args = {"timeout": 30, "check_same_thread": False} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, connect_args=connect_args)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

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

    def list_kbs(self) -> list[KnowledgeBase]:
        with self._session() as session:
            names = session.scalars(select(KBRow.name).order_by(KBRow.name)).all()
        return [self.get_kb(name) for name in names]

    def delete_kb(self, name: str) -> None:
        with self._session() as session:
            row = self._kb_row(session, name)
            for file_row in session.scalars(select(FileRow).where(FileRow.kb_id == row.id)):
                session.delete(file_row)
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
        with self._session() as session:
            kb_row = self._kb_row(session, kb)
            row = session.scalar(select(FileRow).where(FileRow.kb_id == kb_row.id, FileRow.name == name))
            if row is None:
                row = FileRow(kb_id=kb_row.id, name=name, key=key)
                session.add(row)
            for field, value in fields.items():
                setattr(row, field, value)
            session.flush()
            return _file_record(kb, row)

    def delete_file(self, kb: str, name: str) -> None:
        with self._session() as session:
            kb_row = self._kb_row(session, kb)
            row = session.scalar(select(FileRow).where(FileRow.kb_id == kb_row.id, FileRow.name == name))
            if row is not None:
                session.delete(row)

    # -- jobs ----------------------------------------------------------------------------------------------

    def create_job(self, kb: str, kind: str, total: int = 0) -> Job:
        with self._session() as session:
            row = JobRow(id=uuid.uuid4().hex, kb_name=kb, kind=kind, total=total)
            session.add(row)
            session.flush()
            return _job(row)

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self._session() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                return
            for field, value in fields.items():
                setattr(row, field, json.loads(json.dumps(value, default=str)) if field == "result" else value)

    def get_job(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = session.get(JobRow, job_id)
            return None if row is None else _job(row)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
