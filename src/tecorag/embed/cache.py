"""A persistent embedding cache keyed by content hash: identical text is never embedded twice."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import Embedder


class CachedEmbedder:
    """Wraps an Embedder; document vectors are stored in a SQLite file under the data directory.

    Query vectors are kept in memory for the last `recent_queries` questions only: within one ask the
    retriever and the answerer both need the question's vector, and it must be computed once.
    `misses` counts texts that actually went to the model, which tests and benchmarks read.
    """

    def __init__(self, inner: Embedder, path: Path, recent_queries: int = 64):
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.misses = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()
        self._recent_queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_limit = recent_queries

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{self.name}\x00{text}".encode("utf-8")).hexdigest()

    def lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors for those texts that have one, by key."""
        keys = list({self._key(text) for text in texts})
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        cached = self.lookup(texts)
        missing: dict[str, str] = {}
        for text in texts:
            key = self._key(text)
            if key not in cached:
                missing.setdefault(key, text)
        if missing:
            vectors = self.inner.embed_documents(list(missing.values()))
            self.misses += len(missing)
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                    [(key, vector.astype(np.float32).tobytes()) for key, vector in zip(missing, vectors)])
            cached.update(zip(missing, vectors))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = cached[self._key(text)]
        return out

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            if text in self._recent_queries:
                self._recent_queries.move_to_end(text)
                return self._recent_queries[text]
        vector = self.inner.embed_query(text)
        with self._lock:
            self._recent_queries[text] = vector
            if len(self._recent_queries) > self._recent_limit:
                self._recent_queries.popitem(last=False)
        return vector

    def close(self) -> None:
        self._db.close()
