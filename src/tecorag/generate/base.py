"""The contract every answer engine implements (extractive, Triton, OpenAI-compatible): `stream()` returns one
typed `GenerationStream` — the text pieces, then (once iterated) which engine produced them and why a fallback
happened. Each call gets its own stream object, so concurrent users never share that state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..types import Hit, Message


@dataclass(frozen=True)
class FallbackNotice:
    """Why the answer came from the extractive generator instead of the LLM."""

    reason: str            # "unavailable", "timeout", "broken" or "rejected"
    engine: str
    address: str
    error: str
    partial_chars: int     # LLM text already streamed before the failure (0: nothing was shown)

    @property
    def message(self) -> str:
        if self.partial_chars:
            return (f"LLM ({self.engine} at {self.address}) failed mid-answer ({self.reason}); "
                    f"the extractive answer follows the partial text")
        return f"LLM ({self.engine} at {self.address}) {self.reason}; extractive answer shown"


@dataclass
class GenerationStream:
    """Iterator of answer pieces. After iteration, `engine` is the engine that produced the (final part
    of the) text and `notice` is set when the extractive fallback was used."""

    pieces: Iterator[str]
    engine: str
    notice: FallbackNotice | None = None
    context_hits: list[Hit] = field(default_factory=list)   # hits given to the LLM as [1], [2], ...

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        return next(self.pieces)

    def close(self) -> None:
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()


class Generator(Protocol):
    """Turns a question and its retrieved hits into answer text, streamed as pieces."""

    engine: str

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> GenerationStream:
        """The answer as a stream of pieces; their concatenation is the answer."""
        ...


def generate(generator: Generator, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> str:
    """The non-streaming call, built on the stream."""
    return "".join(generator.stream(question, hits, history))
