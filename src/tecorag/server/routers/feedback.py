"""Answer feedback (👍/👎 in the web UI): stored in the catalog with the question, answer and sources, listed,
and exported as a gold QA file for `tecorag eval` (the helpful answers become reference answers)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...store.catalog import Feedback
from ..auth import Caller
from ..deps import Rag
from ..schemas import Envelope, FeedbackInfo, FeedbackRequest, utc

router = APIRouter(prefix="/knowledge_bases/{kb}/feedback", tags=["反馈"])


def feedback_info(item: Feedback) -> FeedbackInfo:
    return FeedbackInfo(id=item.id, kb=item.kb, question=item.question, answer=item.answer, rating=item.rating,
                        sources=item.sources, comment=item.comment, created_at=utc(item.created_at))


@router.post("", response_model=Envelope[FeedbackInfo], summary="对一个答案的反馈（👍 1 / 👎 -1）")
def add_feedback(kb: str, body: FeedbackRequest, rag: Rag, caller: Caller) -> Envelope[FeedbackInfo]:
    caller.check_read(kb)      # rating answers is what readers do: a read-only key may
    item = rag.add_feedback(kb, body.question, body.answer, body.sources, body.rating, body.comment)
    return Envelope(data=feedback_info(item))


@router.get("", response_model=Envelope[list[FeedbackInfo]], summary="知识库收到的全部反馈")
def list_feedback(kb: str, rag: Rag, caller: Caller) -> Envelope[list[FeedbackInfo]]:
    caller.check_read(kb)
    return Envelope(data=[feedback_info(item) for item in rag.list_feedback(kb)])


@router.get("/qa", summary="把 👍 的答案导出为 `tecorag eval` 的 gold 文件（JSON 列表）")
def export_qa(kb: str, rag: Rag, caller: Caller) -> JSONResponse:
    """`[{"id", "question", "answer", "sources"}]`: the latest helpful answer of each question, the files of its
    sources as gold sources. A question whose latest feedback is 👎 is left out."""
    caller.check_read(kb)
    latest: dict[str, Feedback] = {}
    for item in rag.list_feedback(kb):
        latest[item.question] = item
    gold: list[dict[str, Any]] = []
    for item in latest.values():
        if item.rating > 0:
            files = list(dict.fromkeys(str(source.get("filename") or source.get("file") or "")
                                       for source in item.sources))
            gold.append({"id": f"feedback-{item.id}", "question": item.question, "answer": item.answer,
                         "sources": [name for name in files if name]})
    disposition = f"attachment; filename*=UTF-8''{quote(kb, safe='')}-qa.json"
    return JSONResponse(gold, headers={"Content-Disposition": disposition})
