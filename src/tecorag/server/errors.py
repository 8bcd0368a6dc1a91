"""The one place where errors become HTTP replies.

Teco-RAG routes answer `{"code", "msg", "data"}` with the HTTP status equal to `code`; the OpenAI-compatible
routes (`/v1/...`) answer OpenAI's `{"error": {"message", "type", "code"}}` so OpenAI clients show the message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (FileNotInKnowledgeBase, InputError, InvalidName, KnowledgeBaseExists, KnowledgeBaseNotFound,
                      LLMError, LoaderError, TecoragError, TooLarge, Unauthorized)
from ..generate.llm import LLMTimeout

log = logging.getLogger("tecorag.server")

OPENAI_PREFIX = "/v1/"


class JobNotFound(TecoragError):
    """No background job has that id."""


# Most specific first: the first class the error is an instance of decides the status.
STATUS_BY_ERROR: tuple[tuple[type[TecoragError], int], ...] = (
    (InvalidName, 403),
    (KnowledgeBaseNotFound, 404),
    (KnowledgeBaseExists, 404),        # Teco-RAG answers 404 for "a knowledge base of that name exists"
    (FileNotInKnowledgeBase, 404),
    (JobNotFound, 404),
    (TooLarge, 413),
    (Unauthorized, 401),
    (InputError, 422),
    (LoaderError, 422),
    (LLMTimeout, 504),
    (LLMError, 502),
)

OPENAI_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
                      413: "invalid_request_error", 422: "invalid_request_error"}


def status_for(error: Exception) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 500


def envelope(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def error_response(path: str, status: int, message: str, data: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    if path.startswith(OPENAI_PREFIX):
        body: dict[str, Any] = {"error": {"message": message, "type": OPENAI_ERROR_TYPES.get(status, "server_error"),
                                          "code": _openai_code(status), "param": None}}
    else:
        body = envelope(status, message, data)
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


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
        return error_response(request.url.path, status, error_message(error), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = jsonable_encoder(error.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        summary = "; ".join(f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg', '')}"
                            for problem in problems)
        return error_response(request.url.path, 422, f"invalid request: {summary}", data=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(request.url.path, error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s crashed", request.method, request.url.path)
        return error_response(request.url.path, 500, f"internal error: {type(error).__name__}: {error}")
