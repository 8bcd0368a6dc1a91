"""LLM-backed generation: the LLMClient protocol every engine implements, the RAG generator on top of it,
and the wrapper that falls back to the extractive answer when the LLM fails.

Every generator's `stream()` returns a `GenerationStream` (generate/base.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config import LLMSettings
from ..errors import LLMError
from ..types import Hit, Message
from .base import FallbackNotice, GenerationStream, Generator
from .prompts import RagPrompt


class LLMUnavailable(LLMError):
    """The engine could not be reached (connection refused, DNS, server not ready)."""


class LLMTimeout(LLMError):
    """No first token, or no complete answer, within the configured time."""


class LLMStreamBroken(LLMError):
    """The engine failed after it had started answering."""


class LLMRequestRejected(LLMError):
    """The engine answered the request with an error (unknown model, bad tensor, bad parameter)."""


def llm_error(kind: type[LLMError], engine: str, address: str, detail: str) -> LLMError:
    """Every LLM error message names the engine and its address."""
    return kind(f"LLM engine '{engine}' at {address}: {detail}")


_DEFAULTS = LLMSettings()   # sampling defaults live in the settings, once


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = _DEFAULTS.max_new_tokens
    top_k: int = _DEFAULTS.top_k
    top_p: float = _DEFAULTS.top_p
    temperature: float = _DEFAULTS.temperature
    repetition_penalty: float = _DEFAULTS.repetition_penalty
    len_penalty: float = _DEFAULTS.len_penalty
    start_id: int = _DEFAULTS.start_id
    end_id: int = _DEFAULTS.end_id
    stop_words: tuple[str, ...] = tuple(_DEFAULTS.stop_words)

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> SamplingParams:
        return cls(
            max_new_tokens=llm.max_new_tokens, top_k=llm.top_k, top_p=llm.top_p, temperature=llm.temperature,
            repetition_penalty=llm.repetition_penalty, len_penalty=llm.len_penalty,
            start_id=llm.start_id, end_id=llm.end_id, stop_words=tuple(llm.stop_words),
        )


class LLMClient(Protocol):
    """A chat LLM endpoint. Implementations are safe to share between threads."""

    engine: str        # "teco", "nvidia" or "openai"
    address: str       # where it is, for error messages: host:port or base URL

    def stream_chat(self, messages: Sequence[Message], max_new_tokens: int | None = None) -> Iterator[str]:
        """Yield text pieces of the assistant's reply; stop words never appear. Raises LLMError."""
        ...

    def complete(self, messages: Sequence[Message], max_new_tokens: int | None = None) -> str:
        """The whole reply (built on the stream)."""
        ...

    def check(self) -> None:
        """Raise LLMError unless the server is reachable and the model is ready."""
        ...


def retry_before_first_piece(open_stream: Callable[[], Iterator[str]], retries: int) -> Iterator[str]:
    """Stream from `open_stream()`, opening it again after an unreachable or timed-out attempt, but only while
    nothing has reached the caller: a retry after that would repeat text."""
    for attempt in range(retries + 1):
        yielded = False
        try:
            for piece in open_stream():
                yielded = True
                yield piece
            return
        except (LLMUnavailable, LLMTimeout):
            if yielded or attempt == retries:
                raise
            time.sleep(min(0.25 * (attempt + 1), 2.0))


class StopTextFilter:
    """Cuts a text stream at the first stop word, holding back any tail that could be the start of one,
    so a stop word (or part of it) never reaches the user."""

    def __init__(self, stop_words: Sequence[str]):
        self._stop_words = tuple(word for word in stop_words if word)
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if self.stopped:
            return ""
        self._pending += text
        cut = min((i for i in (self._pending.find(w) for w in self._stop_words) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            safe, self._pending = self._pending[:cut], ""
            return safe
        hold = max((k for w in self._stop_words for k in range(1, len(w)) if self._pending.endswith(w[:k])),
                   default=0)
        safe = self._pending[:len(self._pending) - hold]
        self._pending = self._pending[len(safe):]
        return safe

    def finish(self) -> str:
        """End of stream without a stop word: the held-back tail was ordinary text after all."""
        rest, self._pending = ("" if self.stopped else self._pending), ""
        return rest


_REASONS: dict[type[LLMError], str] = {
    LLMUnavailable: "unavailable", LLMTimeout: "timeout", LLMStreamBroken: "broken", LLMRequestRejected: "rejected",
}


def failure_reason(error: LLMError) -> str:
    return next((reason for kind, reason in _REASONS.items() if isinstance(error, kind)), "failed")


class LLMGenerator:
    """Generator on an LLM: numbered sources + history + question -> chat messages -> streamed reply."""

    def __init__(self, client: LLMClient, prompt: RagPrompt):
        self.client = client
        self.prompt = prompt
        self.engine = client.engine

    def build_messages(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> list[Message]:
        return self.prompt.messages(question, hits, history)

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> GenerationStream:
        messages, context = self.prompt.render(question, hits, history)
        return GenerationStream(pieces=self.client.stream_chat(messages), engine=self.engine,
                                context_hits=list(context.hits))


class FallbackGenerator:
    """An LLM generator that answers extractively when the LLM fails, with a notice saying so.

    Before anything was streamed, the extractive answer replaces the LLM's; after a mid-answer failure the
    partial LLM text has already reached the user, so the extractive answer follows it after a blank line.
    """

    def __init__(self, primary: LLMGenerator, fallback: Generator):
        self.primary = primary
        self.fallback = fallback
        self.engine = primary.engine

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> GenerationStream:
        primary_stream = self.primary.stream(question, hits, history)
        result = GenerationStream(pieces=iter(()), engine=self.engine, context_hits=primary_stream.context_hits)
        result.pieces = self._pieces(primary_stream, result, question, hits, history)
        return result

    def _pieces(self, primary_stream: GenerationStream, result: GenerationStream, question: str,
                hits: Sequence[Hit], history: Sequence[Message]) -> Iterator[str]:
        streamed_chars = 0
        try:
            for piece in primary_stream:
                streamed_chars += len(piece)
                yield piece
            return
        except LLMError as error:
            client = self.primary.client
            result.notice = FallbackNotice(reason=failure_reason(error), engine=client.engine,
                                           address=client.address, error=str(error), partial_chars=streamed_chars)
        finally:
            primary_stream.close()
        result.engine = self.fallback.engine
        if streamed_chars:
            yield "\n\n"
        yield from self.fallback.stream(question, hits, history)
