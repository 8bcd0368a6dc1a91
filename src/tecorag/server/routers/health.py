"""Liveness and readiness. No API key needed: load balancers and orchestrators call these. Without a key that
may do everything they say only up/down and timings: no addresses, paths, counts or error texts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..deps import ServerState, State
from ..schemas import Envelope

router = APIRouter(tags=["健康检查"])

READY_PROBE_COLLECTION = "tecorag_ready_probe"


class Check(BaseModel):
    ok: bool
    ms: float
    detail: str = ""


class Readiness(BaseModel):
    ready: bool
    degraded: bool = False
    checks: dict[str, Check]
    warnings: list[str] = []           # ready, but an operator should know (e.g. Milvus < 2.5: dense-only retrieval)


def timed_check(probe: Callable[[], Any]) -> Check:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as error:  # a probe reports any failure; it never raises
        return Check(ok=False, ms=_ms_since(started), detail=str(error))
    return Check(ok=True, ms=_ms_since(started), detail=str(detail or ""))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def readiness(state: ServerState) -> Readiness:
    rag, settings = state.rag, state.settings

    def catalog() -> str:
        return f"{len(rag.list_kbs())} knowledge bases"

    def milvus() -> str:
        rag.store.has_collection(READY_PROBE_COLLECTION)  # a round trip to Milvus
        capabilities = rag.store.capabilities             # asked once per process
        retrieval = "hybrid (dense + BM25)" if capabilities.hybrid else "dense-only"
        return f"{capabilities.version}: {retrieval} retrieval"

    def llm() -> str:
        assert state.llm_client is not None
        state.llm_client.check()
        return f"{settings.llm.model_engine} {settings.llm.model_name}"

    checks = {"catalog": timed_check(catalog), "milvus": timed_check(milvus)}
    if state.llm_client is None:
        checks["llm"] = Check(ok=True, ms=0.0, detail="no LLM configured: extractive answers")
    else:
        checks["llm"] = timed_check(llm)
    core_ok = checks["catalog"].ok and checks["milvus"].ok
    llm_ok = checks["llm"].ok
    fallback = settings.llm.fallback_to_extractive
    warnings = [rag.store.capabilities.warning] if checks["milvus"].ok and rag.store.capabilities.warning else []
    # With the extractive fallback a dead LLM still leaves the service answering: ready, but degraded.
    return Readiness(ready=core_ok and (llm_ok or fallback), degraded=core_ok and not llm_ok and fallback,
                     checks=checks, warnings=warnings)


@router.get("/health", response_model=Envelope[dict], summary="存活检查")
def health(request: Request) -> Envelope[dict]:
    return Envelope(msg="ok", data={"status": "ok", "auth_required": request.app.state.api_key_guard.required(request)})


@router.get("/ready", response_model=Envelope[Readiness], summary="就绪检查：Milvus、目录数据库、LLM",
            responses={503: {"model": Envelope[Readiness]}})
async def ready(state: State, request: Request) -> JSONResponse:
    result = await run_in_threadpool(readiness, state)
    access = await run_in_threadpool(request.app.state.api_key_guard.access, request)
    if access is None or not access.is_full:
        for check in result.checks.values():
            check.detail = ""
    status = 200 if result.ready else 503
    body = Envelope(code=status, msg="ready" if result.ready else "not ready", data=result)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)
