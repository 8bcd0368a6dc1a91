"""The FastAPI application: the Teco-RAG compatible API, the extensions, the OpenAI-compatible chat and the web UI,
all in one process. `create_app(settings)` builds it; the RAG is created in the lifespan (one per app).

Every RAG call blocks (embedding, Milvus, the LLM), so routes run it in worker threads: a long upload or a slow
LLM never holds the event loop, and chats go on while a knowledge base is being indexed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..config import Settings
from ..errors import LLMError
from ..generate.llm import LLMClient
from ..rag import RAG
from .auth import ApiKeyGuard, load_api_keys
from .deps import ServerState
from .errors import install_error_handlers
from .ingest_jobs import IngestJobRunner
from .routers import chat, feedback, files, health, jobs, knowledge_base, openai, search
from .schemas import QUESTION_ERRORS, REQUEST_ERRORS, error_responses
from .uploads import BodySizeLimit, UploadLimits

log = logging.getLogger("tecorag.server")

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """知识库问答服务。

* **Teco-RAG 兼容接口**：`/knowledge_base/*`、`/chat/knowledge_base_chat`、`/rag/hit_test`，
  返回 `{"code", "msg", "data"}`，HTTP 状态码与 `code` 相同。
* **扩展接口**：文件列表与状态、异步上传任务（`/jobs/{id}`）、检索、`/health`、`/ready`。
* **OpenAI 兼容接口**：`/v1/chat/completions`（`model` 为知识库名称）、`/v1/models`。
* 配置了 API key 时，除健康检查与网页静态资源外，所有接口都需要 `Authorization: Bearer <key>` 或 `X-API-Key`。
"""


def create_app(settings: Settings, rag: RAG | None = None) -> FastAPI:
    """The app. Pass `rag` to share an existing pipeline (the caller then closes it); otherwise the app
    builds its own at startup and closes it at shutdown."""
    guard = ApiKeyGuard(load_api_keys(settings.server))
    limits = UploadLimits.of(settings.server)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pipeline = rag if rag is not None else await run_in_threadpool(RAG, settings)
        llm_client = pipeline.llm_client
        runner = IngestJobRunner(pipeline, settings.jobs)
        runner.start()        # also resumes jobs left by a replica that died
        app.state.tecorag = ServerState(settings=settings, rag=pipeline, jobs=runner, limits=limits,
                                        llm_client=llm_client, auth_required=bool(guard.keys))
        if llm_client is not None and settings.llm.warmup_concurrency > 0:
            await run_in_threadpool(warm_up, llm_client, settings.llm.warmup_concurrency)
        try:
            yield
        finally:
            await run_in_threadpool(runner.shutdown)
            if rag is None:
                await run_in_threadpool(pipeline.close)

    app = FastAPI(title="tecorag", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.api_key_guard = guard
    install_error_handlers(app)

    app.include_router(health.router)
    protected = [Depends(guard)]
    # Every status a route can answer is in the OpenAPI schema, with the body it really has (the fuzzing suite
    # holds the server to it).
    for router, statuses in ((knowledge_base.router, REQUEST_ERRORS), (files.router, REQUEST_ERRORS),
                             (jobs.router, REQUEST_ERRORS), (search.router, QUESTION_ERRORS),
                             (chat.router, QUESTION_ERRORS), (feedback.router, REQUEST_ERRORS)):
        app.include_router(router, dependencies=protected, responses=error_responses(statuses))
    app.include_router(openai.router, dependencies=protected, responses=error_responses(QUESTION_ERRORS, openai=True))

    mount_web_ui(app)

    if settings.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["Location"])
    app.add_middleware(BodySizeLimit, max_body_bytes=limits.max_body_bytes)
    return app


def mount_web_ui(app: FastAPI) -> None:
    """The page and its assets need no key: the page itself asks for one when the API wants it."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def warm_up(client: LLMClient, concurrency: int) -> None:
    """Continuous-batching engines need N concurrent requests before the first real one; a failure is logged,
    not fatal (the server still answers, extractively if the LLM stays down)."""
    from ..warmup import format_warmup_report, warmup

    try:
        results = warmup(client, concurrency)
    except LLMError as error:
        log.error("LLM warm-up failed: %s", error)
        return
    log.info("LLM warm-up:\n%s", format_warmup_report(results))
