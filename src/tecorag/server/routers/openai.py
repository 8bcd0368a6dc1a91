"""OpenAI-compatible chat, so any OpenAI chat client can talk to a knowledge base: `model` is the KB name.

Sources travel two ways: appended to the answer text after a `参考来源：` line (what every chat client
shows), and as an extra `sources` field (on the completion, or on the last chunk when streaming). The
appended block is removed again from assistant turns that come back as history.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import InputError, TecoragError
from ...rag import StreamEvent
from ...types import Citation, Message
from ..auth import Caller
from ..deps import Rag, State
from ..errors import INTERNAL_ERROR_MESSAGE, OPENAI_ERROR_TYPES, error_message, status_for
from ..schemas import ChatCompletionRequest, ChatMessage, ModelCard, ModelList, sources_of
from ..streaming import (SSE_HEADERS, SSE_MEDIA_TYPE, Deadline, finished_answer, first_item, rest_in_thread,
                         sse_data)

log = logging.getLogger("tecorag.server")

router = APIRouter(prefix="/v1", tags=["OpenAI 兼容"])

SOURCES_HEADER = "\n\n---\n参考来源："


def sources_block(citations: list[Citation]) -> str:
    if not citations:
        return ""
    lines = []
    for number, citation in enumerate(citations, start=1):
        where = f" 第{citation.page}页" if citation.page else ""
        heading = f" · {citation.heading}" if citation.heading else ""
        lines.append(f"[{number}] {citation.file}{where}{heading}")
    return SOURCES_HEADER + "\n" + "\n".join(lines)


def without_sources(text: str) -> str:
    return text.split(SOURCES_HEADER, 1)[0]


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[Message]]:
    *earlier, last = messages
    if last.role != "user" or not last.text().strip():
        raise InputError("the last message must be a non-empty user message (the question)")
    history = [Message(role=m.role, content=without_sources(m.text()) if m.role == "assistant" else m.text())
               for m in earlier]
    return last.text(), history


@router.get("/models", response_model=ModelList, summary="知识库列表（每个知识库是一个模型）")
def list_models(rag: Rag, caller: Caller) -> ModelList:
    return ModelList(data=[ModelCard(id=kb.name, created=int(kb.created_at.timestamp()))
                           for kb in caller.visible(rag.list_kbs())])


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def chunk(chunk_id: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None = None,
          **extra: Any) -> dict[str, Any]:
    return {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra}


async def openai_chunks(events: Iterator[StreamEvent], model: str, deadline: Deadline) -> AsyncIterator[bytes]:
    chunk_id, created = completion_id(), int(time.time())
    yield sse_data(chunk(chunk_id, created, model, {"role": "assistant", "content": ""}))
    try:
        async for event in rest_in_thread(events, deadline):
            if event.kind == "delta" and event.text:
                yield sse_data(chunk(chunk_id, created, model, {"content": event.text}))
            elif event.kind == "done" and event.answer is not None:
                block = sources_block(event.answer.citations)
                if block:
                    yield sse_data(chunk(chunk_id, created, model, {"content": block}))
                sources = [source.model_dump() for source in sources_of(event.answer.citations)]
                yield sse_data(chunk(chunk_id, created, model, {}, "stop", sources=sources))
    except Exception as error:  # headers are sent; OpenAI streams report errors as an `error` event
        log.warning("chat completion stream failed: %s", error, exc_info=not isinstance(error, TecoragError))
        status = status_for(error) if isinstance(error, TecoragError) else 500
        message = error_message(error) if isinstance(error, TecoragError) else INTERNAL_ERROR_MESSAGE
        yield sse_data({"error": {"message": message,
                                  "type": OPENAI_ERROR_TYPES.get(status, "server_error"), "code": status}})
    yield sse_data("[DONE]")


@router.post("/chat/completions", summary="OpenAI 兼容的对话（model = 知识库名称）")
async def chat_completions(body: ChatCompletionRequest, state: State, request: Request, caller: Caller) -> Any:
    caller.check_read(body.model)
    question, history = question_and_history(body.messages)
    deadline = Deadline(state.settings.limits.request_timeout_s)
    events = state.rag.stream(body.model, question, history=history, top_k=body.top_k,
                              score_threshold=body.score_threshold)
    await first_item(events, deadline)  # an unknown model (KB) is a 404 here, before the stream starts
    if body.stream:
        return StreamingResponse(openai_chunks(events, body.model, deadline), media_type=SSE_MEDIA_TYPE,
                                 headers=SSE_HEADERS)
    answer = await finished_answer(events, request, deadline)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": answer.text + sources_block(answer.citations)}}],
        "sources": [source.model_dump() for source in sources_of(answer.citations)],
    }
