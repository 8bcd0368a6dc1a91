"""Retrieval only, no answer: Teco-RAG's `/rag/hit_test` and a plain search route."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Rag
from ..schemas import Envelope, HitTestRequest, SearchHit, SearchRequest, TecoDoc, search_hit, teco_doc_of_hit

router = APIRouter(tags=["检索"])


@router.post("/rag/hit_test", response_model=Envelope[list[TecoDoc]], summary="召回测试（Teco-RAG）")
def hit_test(body: HitTestRequest, rag: Rag) -> Envelope[list[TecoDoc]]:
    hits = rag.retrieve(body.knowledge_base_name, body.query, top_k=body.resolved_top_k(),
                        score_threshold=body.score_threshold)
    return Envelope(data=[teco_doc_of_hit(hit) for hit in hits])


@router.post("/knowledge_bases/{kb}/search", response_model=Envelope[list[SearchHit]], summary="检索相关段落")
def search(kb: str, body: SearchRequest, rag: Rag) -> Envelope[list[SearchHit]]:
    hits = rag.retrieve(kb, body.query, top_k=body.top_k, score_threshold=body.score_threshold, mode=body.mode)
    return Envelope(data=[search_hit(hit) for hit in hits])
