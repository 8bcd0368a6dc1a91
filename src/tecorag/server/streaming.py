"""Server-Sent Events and answers from the blocking pipeline, with the request's deadline and its client.

Each step of the pipeline's iterator runs in a worker thread, so a slow LLM never holds the event loop. Work
stops between steps when the client has gone (the iterator is closed, which closes the LLM stream) or when
the request's deadline (`limits.request_timeout_s`) has passed: the reply is then a 504. A step that runs past
the deadline is abandoned: its thread ends with that step, and nothing more is asked of the pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request

from ..errors import DeadlineExceeded, TecoragError
from ..rag import StreamEvent
from ..types import Answer

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"

_END = object()


class ClientDisconnected(TecoragError):
    """The client closed the connection before its answer was ready; the work was stopped."""


class Deadline:
    """The time by which a request's work must be done."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._at - time.monotonic())

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"the answer took longer than {self.seconds:g} s (limits.request_timeout_s); "
                                f"the work was stopped")


async def in_thread(deadline: Deadline, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker thread; DeadlineExceeded (and the thread abandoned) when it runs too long."""
    with anyio.move_on_after(deadline.remaining()):
        return await anyio.to_thread.run_sync(lambda: function(*args), abandon_on_cancel=True)
    raise deadline.exceeded()


def sse_data(payload: Any) -> bytes:
    """One event. JSON keeps newlines escaped, so the event is always a single `data:` line."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n".encode("utf-8")


async def first_item(iterator: Iterator[T], deadline: Deadline) -> T:
    """The first item, pulled in a worker thread, so errors before the stream starts become HTTP statuses."""
    item = await in_thread(deadline, next, iterator, _END)
    if item is _END:
        raise RuntimeError("the pipeline stream ended before its first event")
    return item  # type: ignore[return-value]


async def rest_in_thread(iterator: Iterator[T], deadline: Deadline) -> AsyncIterator[T]:
    """The remaining items, each pulled in a worker thread; the iterator is closed however this ends (the
    response is cancelled when the client disconnects, which ends this generator)."""
    try:
        while (item := await in_thread(deadline, next, iterator, _END)) is not _END:
            yield item  # type: ignore[misc]
    finally:
        # Shielded: when the client went away this task is cancelled, and the LLM stream must still be closed.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close_quietly, iterator)


def close_quietly(iterator: Iterator[Any]) -> None:
    """Close a generator; one still running in an abandoned thread is closed when that thread lets go of it."""
    close = getattr(iterator, "close", None)
    if close is None:
        return
    try:
        close()
    except ValueError:      # "generator already executing": garbage collection closes it after that step
        pass


async def finished_answer(events: Iterator[StreamEvent], request: Request, deadline: Deadline) -> Answer:
    """Drive a `RAG.stream` to its Answer, a step at a time, stopping when the client goes away."""
    try:
        while (event := await in_thread(deadline, next, events, _END)) is not _END:
            if event.kind == "done" and event.answer is not None:
                return event.answer
            if await request.is_disconnected():
                raise ClientDisconnected("the client closed the connection")
    finally:
        await anyio.to_thread.run_sync(close_quietly, events)
    raise RuntimeError("the pipeline stream ended without an answer")
