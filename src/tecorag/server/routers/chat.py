"""Teco-RAG's `/chat/knowledge_base_chat`: Server-Sent Events whose data is
`{"result": <the answer so far>, "docs": [{"filename", "context", "similarity_score"}, ...]}`.

The first event (`{"result": ""}`) is sent as soon as the passages are retrieved; each piece of the answer
sends the whole answer so far; the last event carries the finished answer and, with `return_docs`, the
cited passages (the one the answer came from first); asked of a knowledge base with nothing indexed, it adds
`notice` and `notice_code: "kb_empty"`. With `stream: false` the last event is the only one,
so clients that strip the `data: ` prefix read the same JSON either way. A failure after the stream has
started cannot change the HTTP status any more: it arrives as a last event with `error` and `code`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...errors import TecoragError
from ...rag import StreamEvent
from ...types import Answer
from ..auth import Caller
from ..deps import State
from ..errors import INTERNAL_ERROR_MESSAGE, error_code_for, error_message, status_for
from ..schemas import KnowledgeBaseChatRequest, history_messages, teco_doc_of_citation
from ..streaming import (SSE_HEADERS, SSE_MEDIA_TYPE, Deadline, finished_answer, first_item, rest_in_thread,
                         sse_data)
from .knowledge_base import checked_name

log = logging.getLogger("tecorag.server")

router = APIRouter(tags=["对话"])


EMPTY_KB_NOTICE = "the knowledge base has no indexed documents yet: upload files first"


def final_payload(answer: Answer, return_docs: bool, kb_empty: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {"result": answer.text}
    if return_docs:
        payload["docs"] = [teco_doc_of_citation(c).model_dump() for c in answer.citations]
    if kb_empty:
        payload["notice"], payload["notice_code"] = EMPTY_KB_NOTICE, "kb_empty"
    elif answer.notice:
        payload["notice"] = answer.notice
    return payload


async def teco_events(events: Iterator[StreamEvent], return_docs: bool, kb_empty: bool,
                      deadline: Deadline) -> AsyncIterator[bytes]:
    text = ""
    yield sse_data({"result": text})
    try:
        async for event in rest_in_thread(events, deadline):
            if event.kind == "delta" and event.text:
                text += event.text
                yield sse_data({"result": text})
            elif event.kind == "done" and event.answer is not None:
                yield sse_data(final_payload(event.answer, return_docs, kb_empty))
    except TecoragError as error:
        log.warning("chat stream failed: %s", error)
        yield sse_data({"result": text, "error": error_message(error), "code": status_for(error),
                        "error_code": error_code_for(error)})
    except Exception:  # headers are gone: the client can only learn it from the stream
        log.exception("chat stream crashed")
        yield sse_data({"result": text, "error": INTERNAL_ERROR_MESSAGE, "code": 500, "error_code": "internal"})


@router.post("/chat/knowledge_base_chat", summary="与知识库对话（SSE）",
             responses={200: {"content": {"text/event-stream": {"example": 'data: {"result": "答案", "docs": []}'}}}})
async def knowledge_base_chat(body: KnowledgeBaseChatRequest, state: State, request: Request,
                              caller: Caller) -> Response:
    name = checked_name(body.knowledge_base_name)
    caller.check_read(name)
    kb_empty = (await run_in_threadpool(state.rag.get_kb, name)).chunk_count == 0
    history = history_messages(body.history)
    deadline = Deadline(state.settings.limits.request_timeout_s)
    events = state.rag.stream(name, body.query, history=history, top_k=body.resolved_top_k(),
                              score_threshold=body.score_threshold)
    await first_item(events, deadline)  # retrieval: an unknown KB is a 404 here, before any byte is sent
    if not body.stream:
        answer = await finished_answer(events, request, deadline)
        return Response(sse_data(final_payload(answer, body.return_docs, kb_empty)), media_type=SSE_MEDIA_TYPE,
                        headers=SSE_HEADERS)
    return StreamingResponse(teco_events(events, body.return_docs, kb_empty, deadline), media_type=SSE_MEDIA_TYPE,
                             headers=SSE_HEADERS)
