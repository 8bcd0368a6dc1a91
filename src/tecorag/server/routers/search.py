"""Retrieval only, no answer: Teco-RAG's `/rag/hit_test` and a plain search route."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from ..auth import Caller
from ..deps import State
from ..schemas import Envelope, HitTestRequest, SearchHit, SearchRequest, TecoDoc, search_hit, teco_doc_of_hit
from ..streaming import Deadline, in_thread

router = APIRouter(tags=["检索"])


@router.post("/rag/hit_test", response_model=Envelope[list[TecoDoc]], summary="召回测试（Teco-RAG）")
async def hit_test(body: HitTestRequest, state: State, caller: Caller) -> Envelope[list[TecoDoc]]:
    caller.check_read(body.knowledge_base_name)
    retrieve = partial(state.rag.retrieve, body.knowledge_base_name, body.query, top_k=body.resolved_top_k(),
                       score_threshold=body.score_threshold)
    hits = await in_thread(Deadline(state.settings.limits.request_timeout_s), retrieve)
    return Envelope(data=[teco_doc_of_hit(hit) for hit in hits])


@router.post("/knowledge_bases/{kb}/search", response_model=Envelope[list[SearchHit]], summary="检索相关段落")
async def search(kb: str, body: SearchRequest, state: State, caller: Caller) -> Envelope[list[SearchHit]]:
    caller.check_read(kb)
    retrieve = partial(state.rag.retrieve, kb, body.query, top_k=body.top_k, score_threshold=body.score_threshold,
                       mode=body.mode)
    hits = await in_thread(Deadline(state.settings.limits.request_timeout_s), retrieve)
    return Envelope(data=[search_hit(hit) for hit in hits])
