"""The Generator protocol every answer engine implements (extractive, Triton, OpenAI-compatible)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from ..types import Hit, Message


class Generator(Protocol):
    """Turns a question and its retrieved hits into answer text, streamed as pieces."""

    engine: str

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> Iterator[str]:
        """Yield pieces of the answer; their concatenation is the answer."""
        ...


def generate(generator: Generator, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> str:
    """The non-streaming call, built on the stream."""
    return "".join(generator.stream(question, hits, history))
