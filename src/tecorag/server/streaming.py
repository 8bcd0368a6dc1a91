"""Server-Sent Events from the blocking pipeline: each step of the iterator runs in a worker thread, so a slow
LLM never holds the event loop, and the iterator is closed when the client goes away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool

from ..rag import StreamEvent
from ..types import Answer

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"

_END = object()


def sse_data(payload: Any) -> bytes:
    """One event. JSON keeps newlines escaped, so the event is always a single `data:` line."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n".encode("utf-8")


async def first_item(iterator: Iterator[T]) -> T:
    """The first item, pulled in a worker thread, so errors before the stream starts become HTTP statuses."""
    item = await run_in_threadpool(next, iterator, _END)
    if item is _END:
        raise RuntimeError("the pipeline stream ended before its first event")
    return item  # type: ignore[return-value]


async def rest_in_thread(iterator: Iterator[T]) -> AsyncIterator[T]:
    """The remaining items, each pulled in a worker thread; the iterator is closed however this ends."""
    try:
        while (item := await run_in_threadpool(next, iterator, _END)) is not _END:
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # Shielded: when the client went away this task is cancelled, and the LLM stream must still be closed.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(close)


def finished_answer(events: Iterator[StreamEvent]) -> Answer:
    """Drain a `RAG.stream` (blocking) and return its Answer."""
    for event in events:
        if event.kind == "done" and event.answer is not None:
            return event.answer
    raise RuntimeError("the pipeline stream ended without an answer")
