"""Optional cross-encoder reranker from a local model path (sentence-transformers `CrossEncoder`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError
from ..registry import Registry
from ..types import Hit

if TYPE_CHECKING:
    from ..config import RerankerSettings


class Reranker(Protocol):
    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        ...


class CrossEncoderReranker:
    """Rescores the first `top_n` hits with a cross-encoder; the rest keep their order after them."""

    def __init__(self, model_path: str, top_n: int = 20):
        if not Path(model_path).is_dir():
            raise ConfigError(f"reranker model directory not found: {model_path} (models are local paths)")
        from sentence_transformers import CrossEncoder  # heavy (torch): only when this reranker is built

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


def cross_encoder_from_settings(settings: RerankerSettings) -> CrossEncoderReranker:
    if not settings.model_name_or_path:
        raise ConfigError("reranker.model_name_or_path (APP_RERANKER_MODEL_NAME_OR_PATH) is required for the "
                          "cross-encoder reranker: a local model directory")
    return CrossEncoderReranker(settings.model_name_or_path, top_n=settings.top_n)


NO_RERANKER = "none"
RERANKERS = Registry("reranker", entry_point_group="tecorag.rerankers")
RERANKERS.register(NO_RERANKER, lambda settings: None)
RERANKERS.register("cross-encoder", f"{__name__}:cross_encoder_from_settings", extra="rerank")


def build_reranker(settings: RerankerSettings) -> Reranker | None:
    """The configured reranker, or None for `none`."""
    return RERANKERS.build(settings.type, settings)
