"""Uploaded files: size and count limits, names checked, bytes kept in memory (a name is never used as a path)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import UploadFile
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import ServerSettings, TextSplitterSettings
from ..errors import InputError, InvalidName, TooLarge
from ..ingest.pipeline import SourceDocument
from ..rag import validate_name
from .errors import error_response

MIB = 1024 * 1024
MULTIPART_SLACK = MIB        # form fields and part headers around the files themselves
READ_BLOCK = MIB
DRAIN_LIMIT = 16 * MIB       # how much of an over-limit body is read and dropped so its client sees the 413


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_files: int

    @classmethod
    def of(cls, settings: ServerSettings) -> UploadLimits:
        return cls(max_bytes=settings.max_upload_mb * MIB, max_files=settings.max_upload_files)

    @property
    def max_body_bytes(self) -> int:
        return self.max_bytes + MULTIPART_SLACK


@dataclass
class ReadUploads:
    """The uploaded files that can go in, and the ones refused by name (name -> why)."""

    documents: list[SourceDocument]
    rejected: dict[str, str]


async def read_uploads(files: list[UploadFile], limits: UploadLimits) -> ReadUploads:
    """The uploaded files as documents; TooLarge past the limits. A bad file name fails that file only; when
    every file has a bad name the request fails (InvalidName, 403 as in Teco-RAG)."""
    if not files:
        raise InputError("no files uploaded (multipart field 'files')")
    if len(files) > limits.max_files:
        raise TooLarge(f"too many files: {len(files)} > {limits.max_files} per upload (server.max_upload_files)")
    names = [upload.filename or "" for upload in files]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"the same file name twice in one upload: {', '.join(duplicates)}")
    rejected: dict[str, str] = {}
    documents: list[SourceDocument] = []
    total = 0
    for name, upload in zip(names, files):
        try:
            validate_name(name, "file name")
        except InvalidName as error:
            rejected[name] = str(error)
            continue
        parts: list[bytes] = []
        while block := await upload.read(READ_BLOCK):
            total += len(block)
            if total > limits.max_bytes:
                raise TooLarge(f"upload larger than {limits.max_bytes // MIB} MiB (server.max_upload_mb)")
            parts.append(block)
        documents.append(SourceDocument.from_bytes(name, b"".join(parts)))
    if not documents:
        raise InvalidName("; ".join(rejected.values()))
    return ReadUploads(documents, rejected)


def splitter_overrides(base: TextSplitterSettings, chunk_size: int | None, chunk_overlap: int | None,
                       zh_title_enhance: bool | None) -> TextSplitterSettings | None:
    """The KB's splitter settings with the request's values, validated as the settings file is (same ranges),
    or None when the request sets none."""
    update = {name: value for name, value in (("chunk_size", chunk_size), ("chunk_overlap", chunk_overlap),
                                              ("zh_title_enhance", zh_title_enhance)) if value is not None}
    if not update:
        return None
    try:
        return TextSplitterSettings.model_validate({**base.model_dump(), **update})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in problem['loc']) or 'chunk settings'}: "
                             f"{problem['msg'].removeprefix('Value error, ')}" for problem in error.errors())
        raise InputError(f"invalid split settings: {problems}") from None


class BodySizeLimit:
    """Refuses request bodies over the upload limit before they are spooled to disk: at once when
    Content-Length says so, or as soon as a chunked body passes the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message_413 = f"request body larger than {self.max_body_bytes // MIB} MiB (server.max_upload_mb)"
        received = 0
        over_limit = False
        body_finished = False

        async def counting_receive() -> Message:
            nonlocal received, over_limit, body_finished
            message = await receive()
            if message["type"] == "http.request":
                body_finished = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    over_limit = True
                    raise TooLarge(message_413)
            return message

        async def refuse() -> None:
            """Read (and drop) a bounded part of the rest of the body before the 413: a client still sending when
            the server closes gets a connection reset instead of the answer. Past DRAIN_LIMIT that is its problem."""
            nonlocal body_finished
            drained = 0
            while not body_finished and drained < DRAIN_LIMIT:
                message = await receive()
                if message["type"] != "http.request":
                    break
                drained += len(message.get("body", b""))
                body_finished = not message.get("more_body", False)
            response = error_response(scope["path"], 413, message_413, headers={"Connection": "close"})
            await response(scope, receive, send)

        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await refuse()
            return
        replaced = False

        async def reply_413_when_over(message: Message) -> None:
            """Whatever the app answers once the body went over the limit (the body parser reports the error
            it got from `receive` as a 400), the client gets the 413."""
            nonlocal replaced
            if message["type"] == "http.response.start" and over_limit:
                replaced = True
                await refuse()
                return
            if not replaced:
                await send(message)

        await self.app(scope, counting_receive, reply_413_when_over)
