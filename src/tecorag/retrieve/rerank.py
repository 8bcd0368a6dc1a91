"""Optional cross-encoder reranker from a local model path (sentence-transformers `CrossEncoder`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ..config import RerankerSettings
from ..errors import ConfigError
from ..types import Hit


class Reranker(Protocol):
    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        ...


class CrossEncoderReranker:
    """Rescores the first `top_n` hits with a cross-encoder; the rest keep their order after them."""

    def __init__(self, model_path: str, top_n: int = 20):
        if not Path(model_path).is_dir():
            raise ConfigError(f"reranker model directory not found: {model_path} (models are local paths)")
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise ConfigError("the cross-encoder reranker needs `pip install tecorag[rerank]`") from exc
        self._model = CrossEncoder(model_path, local_files_only=True)
        self.top_n = top_n

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        head, tail = list(hits[:self.top_n]), list(hits[self.top_n:])
        if not head:
            return []
        scores = self._model.predict([(question, hit.chunk.text) for hit in head])
        rescored = sorted((Hit(chunk=hit.chunk, score=float(score)) for hit, score in zip(head, scores)),
                          key=lambda hit: hit.score, reverse=True)
        return rescored + tail


def build_reranker(settings: RerankerSettings) -> Reranker | None:
    if settings.type == "none" or not settings.model_name_or_path:
        return None
    return CrossEncoderReranker(settings.model_name_or_path, top_n=settings.top_n)
