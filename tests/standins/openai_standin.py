"""Stand-in for an OpenAI-compatible chat-completions server (vLLM, OpenAI): a real HTTP server (uvicorn +
starlette in a thread) on 127.0.0.1 (random port) emitting `chat.completion.chunk` server-sent events that
end with `data: [DONE]`, read by the official `openai` client.

It answers with a deterministic text derived from the last user message (`default_reply`), one small piece
per event, honouring `max_tokens` (in pieces) and `stop`. Faults: `refuse` is a closed port
(`closed_port()`); `stall_s` holds the first piece back (of the
first `stall_requests` requests, or all); `break_after` drops the connection after k pieces;
`token_delay_s` spaces pieces out without blocking other requests (the load benchmark uses it to show that
users are served concurrently).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from . import default_reply


def split_pieces(text: str, size: int = 2) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


class _DropConnection(Exception):
    """Raised inside the event stream to make the server drop the connection mid-answer."""


@dataclass
class OpenAIStandin:
    """Start with `with OpenAIStandin(...) as server:`; `server.base_url` ends in /v1."""

    model_name: str = "Qwen-7B-Chat"
    api_key: str | None = None                 # when set, requests must carry it
    reply: Callable[[str], str] = default_reply
    piece_chars: int = 2
    honour_stop: bool = True                   # False: a server that lets stop words through
    stall_s: float = 0.0
    stall_requests: int | None = None          # stall only the first N requests (None: all)
    break_after: int | None = None
    token_delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)
    max_active_streams: int = 0

    def __post_init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._active = 0
        self._lock = threading.Lock()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> OpenAIStandin:
        app = Starlette(routes=[
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="openai-standin")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("OpenAI stand-in did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- endpoints ---------------------------------------------------------------------------------------

    def _unauthorized(self, request: Request) -> JSONResponse | None:
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}}, status_code=401)
        return None

    async def _models(self, request: Request) -> JSONResponse:
        denied = self._unauthorized(request)
        if denied:
            return denied
        return JSONResponse({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "created": 0, "owned_by": "stand-in"}]})

    async def _chat(self, request: Request):
        denied = self._unauthorized(request)
        if denied:
            return denied
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            request_number = len(self.requests)
        stall_s = self.stall_s if self.stall_requests is None or request_number <= self.stall_requests else 0.0
        if body.get("model") != self.model_name:
            return JSONResponse({"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                           "type": "invalid_request_error", "code": "model_not_found"}},
                                status_code=404)
        user_turns = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
        text = self.reply(user_turns[-1] if user_turns else "")
        for stop in (body.get("stop") or []) if self.honour_stop else []:
            if stop in text:
                text = text[:text.index(stop)]
        pieces = split_pieces(text, self.piece_chars)[:body.get("max_tokens") or None]
        completion_id = f"chatcmpl-standin-{len(self.requests)}"
        if not body.get("stream"):
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                             "finish_reason": "stop"}],
            })
        return StreamingResponse(self._events(completion_id, pieces, stall_s), media_type="text/event-stream")

    def _chunk(self, completion_id: str, delta: dict, finish_reason: str | None = None) -> str:
        event = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": self.model_name,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"

    async def _events(self, completion_id: str, pieces: list[str], stall_s: float) -> AsyncIterator[str]:
        with self._lock:
            self._active += 1
            self.max_active_streams = max(self.max_active_streams, self._active)
        try:
            if stall_s:
                await asyncio.sleep(stall_s)
            yield self._chunk(completion_id, {"role": "assistant", "content": ""})
            for index, piece in enumerate(pieces):
                if self.break_after is not None and index >= self.break_after:
                    raise _DropConnection("stand-in: connection dropped mid-answer")
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                yield self._chunk(completion_id, {"content": piece})
            yield self._chunk(completion_id, {}, finish_reason="stop")
            yield "data: [DONE]\n\n"
        finally:
            with self._lock:
                self._active -= 1
