"""Chunks in Milvus: one collection per knowledge base with text (jieba analyzer), a dense vector and a BM25
sparse vector produced by Milvus's own BM25 function. Embedded Milvus Lite by default, a server by URI."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..types import Chunk, Hit

TEXT_MAX = 65535
_USER_GLOG_DIR = os.environ.get("GLOG_log_dir")
OUTPUT_FIELDS = ["id", "file", "text", "index_text", "position", "page", "heading", "parent_id"]


@dataclass(frozen=True)
class StoreQuery:
    question: str
    vector: np.ndarray
    mode: str = "hybrid"           # hybrid | dense | bm25
    fusion: str = "rrf"            # rrf | weighted
    rrf_k: int = 60
    dense_weight: float = 0.5
    limit: int = 40                # child hits to fetch per route and after fusion


class MilvusStore:
    """All vector-store access. Thread-safe: the pymilvus client is shared and Milvus Lite serializes internally."""

    def __init__(self, uri: str, dimension: int, user: str | None = None, password: str | None = None,
                 consistency_level: str = "Strong"):
        from pymilvus import MilvusClient

        self.embedded = not uri.startswith(("http://", "https://", "tcp://", "grpc://"))
        if self.embedded:
            # Milvus Lite's engine writes glog files, by default one per process into /tmp; keep them with the data.
            log_dir = Path(uri).parent / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            # The child inherits this process's environment: set it for each store (two data directories in one
            # process each keep their own logs), unless the user chose a log directory.
            os.environ["GLOG_log_dir"] = _USER_GLOG_DIR or str(log_dir)
        self.uri = uri
        self.dimension = dimension
        self.consistency_level = consistency_level
        token = f"{user}:{password}" if user and password else ""
        try:
            self._client = MilvusClient(uri=uri, token=token)
        except Exception as exc:  # pymilvus raises a variety of types
            raise StoreError(f"cannot open Milvus at {uri}: {exc}") from exc
        self._create_lock = threading.Lock()

    # -- collections -------------------------------------------------------------------------------------

    def ensure_collection(self, name: str) -> None:
        from pymilvus import DataType, Function, FunctionType

        with self._create_lock:
            if self._client.has_collection(name):
                return
            schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("file_key", DataType.VARCHAR, max_length=64)
            schema.add_field("file", DataType.VARCHAR, max_length=1024)
            schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
            schema.add_field("index_text", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True,
                             analyzer_params={"tokenizer": "jieba"})
            schema.add_field("position", DataType.INT64)
            schema.add_field("page", DataType.INT64)
            schema.add_field("heading", DataType.VARCHAR, max_length=4096)
            schema.add_field("parent_id", DataType.VARCHAR, max_length=64)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dimension)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                         input_field_names=["index_text"], output_field_names=["sparse"]))
            index_params = self._client.prepare_index_params()
            dense_index = {"index_type": "FLAT"} if self.embedded else {"index_type": "AUTOINDEX"}  # Lite server: no HNSW
            index_params.add_index("dense", metric_type="IP", **dense_index)
            index_params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            self._client.create_collection(name, schema=schema, index_params=index_params,
                                           consistency_level=self.consistency_level)

    def drop_collection(self, name: str) -> None:
        if self._client.has_collection(name):
            self._client.drop_collection(name)

    def has_collection(self, name: str) -> bool:
        return self._client.has_collection(name)

    # -- writes ------------------------------------------------------------------------------------------

    def replace_file(self, collection: str, file_key: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Delete every chunk of the file, then insert the new ones: re-running after a crash leaves no duplicates
        (Milvus does not enforce primary-key uniqueness on insert, so the delete must come first)."""
        self.delete_file(collection, file_key)
        rows = [{
            "id": chunk.id,
            "file_key": file_key,
            "file": chunk.file[:1024],
            "text": chunk.text[:TEXT_MAX // 3],   # VARCHAR limits are bytes; CJK is 3 bytes in UTF-8
            "index_text": chunk.index_text[:TEXT_MAX // 3],
            "position": chunk.position,
            "page": -1 if chunk.page is None else chunk.page,
            "heading": json.dumps(list(chunk.heading_path), ensure_ascii=False)[:1300],
            "parent_id": chunk.parent_id or chunk.id,
            "dense": vector.tolist(),
        } for chunk, vector in zip(chunks, vectors)]
        for start in range(0, len(rows), 500):
            self._client.insert(collection, rows[start:start + 500])

    def delete_file(self, collection: str, file_key: str) -> None:
        self._client.delete(collection, filter=f'file_key == "{file_key}"')

    def count(self, collection: str) -> int:
        rows = self._client.query(collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def file_keys(self, collection: str) -> set[str]:
        """Every file key present in the collection (used to find orphans)."""
        keys: set[str] = set()
        iterator = self._client.query_iterator(collection, filter="", output_fields=["file_key"], batch_size=1000)
        while batch := iterator.next():
            keys.update(row["file_key"] for row in batch)
        iterator.close()
        return keys

    # -- search ------------------------------------------------------------------------------------------

    def search(self, collection: str, request: StoreQuery) -> list[Hit]:
        from pymilvus import AnnSearchRequest

        dense = AnnSearchRequest(data=[request.vector.tolist()], anns_field="dense",
                                 param={"metric_type": "IP"}, limit=request.limit)
        bm25 = AnnSearchRequest(data=[request.question], anns_field="sparse",
                                param={"metric_type": "BM25"}, limit=request.limit)
        try:
            results = self._run_search(collection, request, dense, bm25)
        except Exception as exc:
            # Milvus Lite's BM25 over a collection that never held a row fails ("NaN or Inf"): nothing to find.
            if self.count(collection) == 0:
                return []
            raise StoreError(f"search in {collection} failed: {exc}") from exc
        return [Hit(chunk=_chunk_from_entity(item["entity"]), score=float(item["distance"])) for item in results[0]]

    def _run_search(self, collection: str, request: StoreQuery, dense, bm25) -> list:
        from pymilvus import RRFRanker, WeightedRanker

        if request.mode == "dense":
            return self._client.search(collection, data=dense.data, anns_field="dense",
                                       search_params=dense.param, limit=request.limit,
                                       output_fields=OUTPUT_FIELDS)
        if request.mode == "bm25":
            return self._client.search(collection, data=bm25.data, anns_field="sparse",
                                       search_params=bm25.param, limit=request.limit,
                                       output_fields=OUTPUT_FIELDS)
        ranker = (RRFRanker(request.rrf_k) if request.fusion == "rrf"
                  else WeightedRanker(request.dense_weight, 1.0 - request.dense_weight))
        return self._client.hybrid_search(collection, reqs=[dense, bm25], ranker=ranker, limit=request.limit,
                                          output_fields=OUTPUT_FIELDS)

    def close(self) -> None:
        """Close the client; for Milvus Lite also stop its server process, which holds the db file open
        (only one process may open a Milvus Lite file, so a CLI run must be able to follow a closed RAG)."""
        self._client.close()
        if self.embedded:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)


def _chunk_from_entity(entity: dict) -> Chunk:
    page = int(entity["page"])
    return Chunk(
        id=entity["id"],
        file=entity["file"],
        text=entity["text"],
        index_text=entity["index_text"],
        position=int(entity["position"]),
        page=None if page < 0 else page,
        heading_path=tuple(json.loads(entity["heading"] or "[]")),
        parent_id=entity["parent_id"],
    )
