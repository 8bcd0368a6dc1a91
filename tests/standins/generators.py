"""A stand-in answer engine for tests of the LLM wiring: its answer is the best hit's text, so a test can tell
whether the fallback answered. Not an extractive answerer (tecorag.generate.extractive is the real one)."""

from __future__ import annotations

from collections.abc import Sequence

from tecorag.generate.base import GenerationStream
from tecorag.types import NO_ANSWER, Hit, Message


class QuoteTopHit:
    engine = "extractive"

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> GenerationStream:
        return GenerationStream(pieces=iter([hits[0].chunk.text if hits else NO_ANSWER]), engine=self.engine)
