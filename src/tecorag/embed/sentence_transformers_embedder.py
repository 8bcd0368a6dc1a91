"""A sentence-transformers model loaded from a local directory (never downloaded)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sentence_transformers import SentenceTransformer  # the registry turns its absence into a pip hint

from ..errors import ConfigError
from .base import normalise

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings


class SentenceTransformersEmbedder:
    def __init__(self, model_path: str, batch_size: int = 16, query_prefix: str = "", passage_prefix: str = ""):
        if not Path(model_path).is_dir():
            raise ConfigError(f"embedding model directory not found: {model_path} (models are local paths)")
        self._model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
        self.name = f"sentence-transformers/{Path(model_path).resolve().name}"
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension())
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode([self.passage_prefix + text for text in texts], batch_size=self.batch_size,
                                     convert_to_numpy=True, show_progress_bar=False)
        return normalise(vectors.reshape(len(texts), self.dimension))

    def embed_query(self, text: str) -> np.ndarray:
        return normalise(self._model.encode([self.query_prefix + text], convert_to_numpy=True)[0])


def from_settings(settings: EmbeddingsSettings) -> SentenceTransformersEmbedder:
    return SentenceTransformersEmbedder(settings.model_name_or_path, batch_size=settings.batch_size,
                                        query_prefix=settings.query_prefix, passage_prefix=settings.passage_prefix)
