"""The one place where errors become HTTP replies.

Teco-RAG routes answer `{"code", "msg", "data"}` with the HTTP status equal to `code`; the OpenAI-compatible
routes (`/v1/...`) answer OpenAI's `{"error": {"message", "type", "code"}}` so OpenAI clients show the message.
Teco-RAG errors also carry `error_code`, a stable word (`kb_not_found`, `api_key_required`...) that clients map to
text in their user's language; `msg` stays English for logs and scripts. (`code` is Teco-RAG's HTTP status.)
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (DeadlineExceeded, FileNotInKnowledgeBase, Forbidden, InputError, InvalidName,
                      KnowledgeBaseExists, KnowledgeBaseNotFound, LLMError, LoaderError, TecoragError, TooLarge,
                      Unauthorized)
from ..generate.llm import LLMTimeout
from .streaming import ClientDisconnected

log = logging.getLogger("tecorag.server")

OPENAI_PREFIX = "/v1/"


class JobNotFound(TecoragError):
    """No background job has that id."""


class OriginalNotKept(TecoragError):
    """The server has no copy of the file's bytes (it was not uploaded through the API)."""


# Most specific first: the first class the error is an instance of decides the status and the error code.
STATUS_BY_ERROR: tuple[tuple[type[TecoragError], int, str], ...] = (
    (InvalidName, 403, "invalid_name"),
    (Forbidden, 403, "read_only_key"),
    (KnowledgeBaseNotFound, 404, "kb_not_found"),
    (KnowledgeBaseExists, 404, "kb_exists"),        # Teco-RAG answers 404 for "a knowledge base of that name exists"
    (FileNotInKnowledgeBase, 404, "file_not_found"),
    (JobNotFound, 404, "job_not_found"),
    (OriginalNotKept, 409, "original_not_kept"),
    (TooLarge, 413, "too_large"),
    (Unauthorized, 401, "api_key_required"),
    (InputError, 422, "invalid_input"),
    (LoaderError, 422, "unreadable_file"),
    (LLMTimeout, 504, "llm_timeout"),
    (DeadlineExceeded, 504, "deadline_exceeded"),
    (LLMError, 502, "llm_failed"),
    (ClientDisconnected, 499, "client_disconnected"),   # nginx's "client closed request": only the log reads it
)

# Codes of replies that do not come from a TecoragError (framework errors), by HTTP status.
CODE_BY_STATUS = {401: "api_key_required", 404: "not_found", 405: "not_found", 413: "too_large",
                  422: "invalid_input", 500: "internal"}

# Why a file failed to index, as a stable code: the loaders' reasons (see ingest/loaders.py), first match wins.
FILE_ERROR_CODES: tuple[tuple[str, str], ...] = (
    ("unsupported file type", "unsupported_type"),
    ("encrypted", "encrypted"),
    ("empty file", "empty_file"),
    ("no text found", "no_text"),
    ("text encoding", "unknown_encoding"),
    ("antiword", "missing_tool"),
    ("OCR engine", "missing_tool"),
    ("corrupt", "corrupt"),
)

OPENAI_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
                      413: "invalid_request_error", 422: "invalid_request_error"}


INTERNAL_ERROR_MESSAGE = "internal error: the server log has the details"


def status_for(error: Exception) -> int:
    return _status_and_code(error)[0]


def error_code_for(error: Exception) -> str:
    return _status_and_code(error)[1]


def _status_and_code(error: Exception) -> tuple[int, str]:
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status, code
    return 500, "internal"


def file_error_code(message: str) -> str:
    """The stable code of a file's indexing error (its message is the loader's English reason)."""
    lowered = message.lower()
    return next((code for marker, code in FILE_ERROR_CODES if marker.lower() in lowered), "unreadable")


def envelope(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def error_response(path: str, status: int, message: str, data: Any = None,
                   headers: dict[str, str] | None = None, error_code: str | None = None) -> JSONResponse:
    message = valid_unicode(message)
    if path.startswith(OPENAI_PREFIX):
        body: dict[str, Any] = {"error": {"message": message, "type": OPENAI_ERROR_TYPES.get(status, "server_error"),
                                          "code": _openai_code(status), "param": None}}
    else:
        body = {**envelope(status, message, plain_json(data)),
                "error_code": error_code or CODE_BY_STATUS.get(status, "internal")}
    return JSONResponse(body, status_code=status, headers=headers)


# Echoed input in an error reply is cut to this: a 1 MB field that failed validation is not sent back.
ECHO_MAX_CHARS = 200
ECHO_MAX_DEPTH = 8
ECHO_MAX_ITEMS = 20


def valid_unicode(text: str) -> str:
    """`text` with unpaired surrogates (which JSON allows and UTF-8 cannot encode) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def plain_json(value: Any, depth: int = 0) -> Any:
    """`value` made safe to serialise, whatever a client sent: non-finite numbers become strings, strings with
    unpaired surrogates are repaired, deep or long structures and long strings are cut."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = valid_unicode(value)
        return text if len(text) <= ECHO_MAX_CHARS else text[:ECHO_MAX_CHARS] + "…"
    if depth >= ECHO_MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:ECHO_MAX_ITEMS]
        return {str(plain_json(key, depth + 1)): plain_json(item, depth + 1) for key, item in items}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_json(item, depth + 1) for item in list(value)[:ECHO_MAX_ITEMS]]
    return plain_json(str(value), depth)


def _openai_code(status: int) -> str | None:
    return {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large"}.get(status)


def error_message(error: Exception) -> str:
    return str(error) or type(error).__name__


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TecoragError)
    async def tecorag_error(request: Request, error: TecoragError) -> JSONResponse:
        status = status_for(error)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, error, exc_info=error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return error_response(request.url.path, status, error_message(error), headers=headers,
                              error_code=error_code_for(error))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [{key: problem.get(key) for key in ("type", "loc", "msg", "input")}
                    for problem in error.errors()[:ECHO_MAX_ITEMS]]
        summary = "; ".join(f"{'.'.join(str(p) for p in problem.get('loc') or ())}: {problem.get('msg', '')}"
                            for problem in problems)
        return error_response(request.url.path, 422, f"invalid request: {summary}", data=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(request.url.path, error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # The reply names no exception class and no path: the log has the traceback.
        log.exception("%s %s crashed", request.method, request.url.path)
        return error_response(request.url.path, 500, INTERNAL_ERROR_MESSAGE)
