"""Chunks in Milvus: one collection per knowledge base with text (jieba analyzer), a dense vector and a BM25
sparse vector produced by Milvus's own BM25 function. Embedded Milvus Lite by default, a server by URI.

What the server can do is asked, not assumed: Milvus Lite (embedded or its gRPC server) and Milvus 2.5+ get hybrid
collections; an older server (2.3, 2.4: no BM25 function) gets dense-only collections and one warning. The dense
index defaults to AUTOINDEX, which every deployment accepts (Lite's "local mode" refuses HNSW)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import quiet
from ..errors import StoreError
from ..types import Chunk, Hit

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("tecorag.store")

TEXT_MAX = 65535
_USER_GLOG_DIR = os.environ.get("GLOG_log_dir")
OUTPUT_FIELDS = ["id", "file", "text", "index_text", "position", "page", "heading", "parent_id"]
HYBRID_MIN_VERSION = (2, 5)        # the BM25 function and its sparse output field arrived in Milvus 2.5
HNSW_BUILD_PARAMS = {"M": 16, "efConstruction": 200}


@dataclass(frozen=True)
class ServerCapabilities:
    """What the Milvus behind a URI is and can do."""

    version: str                   # e.g. "Milvus Lite 2.5.1 (embedded)", "Milvus v2.3.5-lite"
    hybrid: bool                   # BM25 function + sparse vectors: hybrid and BM25 retrieval

    @property
    def warning(self) -> str | None:
        if self.hybrid:
            return None
        return (f"{self.version} has no BM25 function: knowledge bases get dense-only retrieval (no keyword "
                f"search, no hybrid fusion); Milvus 2.5 or newer gives hybrid retrieval")


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a Milvus version string such as 'v2.3.5-lite' or '2.5.4'; None if unrecognised."""
    match = re.match(r"v?(\d+)\.(\d+)", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


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
                 consistency_level: str = "Strong", index_type: str = "AUTOINDEX", *, background: bool = False):
        """background: return at once and connect in a thread; the first call that needs Milvus waits for it
        (and raises its error). A cold `tecorag ask` spends ~1 s here (pymilvus's imports, then a fixed 0.5 s
        wait in milvus_lite's server start) that can overlap the rest of its start-up."""
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
        self.index_type = index_type.upper()
        self._create_lock = threading.Lock()
        self._capabilities: ServerCapabilities | None = None
        self._hybrid_collections: dict[str, bool] = {}
        self._opened: Future = Future()
        self._warming: list[threading.Thread] = []
        token = f"{user}:{password}" if user and password else ""
        if background:
            threading.Thread(target=self._open, args=(token,), name="milvus-open", daemon=True).start()
            # pymilvus's 0.4 s of imports run here, in the caller's thread, while the opening thread waits for
            # Milvus Lite's start: done in that thread after the wait, they were the longest step of a cold ask.
            import pymilvus  # noqa: F401
        else:
            self._open(token)
            self._opened.result()           # raise here, not at first use

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int, *, background: bool = False) -> MilvusStore:
        vs = settings.vector_store
        return cls(settings.milvus_uri, dimension, user=vs.user, password=vs.password,
                   consistency_level=vs.consistency_level, index_type=vs.index_type, background=background)

    def _open(self, token: str) -> None:
        try:
            if self.embedded:
                refuse_if_lite_file_held(self.uri)
                # Start Milvus Lite's server first (a fixed 0.5 s wait in milvus_lite; a background open spends it
                # importing pymilvus in the caller's thread). The client below finds the server running (or, if
                # this start failed, its own start says why).
                _start_lite_server(self.uri)
            from pymilvus import MilvusClient

            quiet.pymilvus_logs()
            try:
                self._opened.set_result(MilvusClient(uri=self.uri, token=token))
            except Exception as exc:  # pymilvus raises a variety of types
                if self.embedded:
                    refuse_if_lite_file_held(self.uri)   # lost a race with another process: say who holds it
                raise StoreError(f"cannot open Milvus at {self.uri}: {exc}") from exc
        except BaseException as exc:
            self._opened.set_exception(exc)

    def warm(self, collection: str) -> None:
        """Load `collection` and Milvus's text analyzer in the background, so that the first search need not wait
        for them (in Milvus Lite the first BM25 search spends 0.3 s loading jieba's dictionary, once per server
        process). Best effort: a failure here is left for that search to report."""
        def load() -> None:
            try:
                self._client.load_collection(collection)
                # (an empty collection is left alone: BM25 over no documents makes Milvus assert on stdout)
                if self.is_hybrid(collection) and self.count(collection):
                    self._client.search(collection, ["预热"], anns_field="sparse", limit=1,
                                        search_params={"metric_type": "BM25"})
            except Exception as exc:  # noqa: BLE001 - the real search reports it
                log.debug("warming %s failed: %s", collection, exc)

        thread = threading.Thread(target=load, name="milvus-warm", daemon=True)
        self._warming.append(thread)
        thread.start()

    @property
    def _client(self):
        """The pymilvus client, once open (waits for a background open)."""
        return self._opened.result()

    # -- capabilities ------------------------------------------------------------------------------------

    @property
    def capabilities(self) -> ServerCapabilities:
        """Asked once per process. Milvus Lite does not implement GetVersion; it runs the 2.5 engine."""
        if self._capabilities is None:
            self._capabilities = self._detect_capabilities()
        return self._capabilities

    def _detect_capabilities(self) -> ServerCapabilities:
        if self.embedded:
            return ServerCapabilities(version=f"Milvus Lite {_lite_version()} (embedded)", hybrid=True)
        _quiet_version_probe()
        try:
            version = self._client.get_server_version()
        except Exception as exc:
            if not _is_unimplemented(exc):
                raise StoreError(f"cannot reach Milvus at {self.uri}: {_engine_message(exc)}") from exc
            return ServerCapabilities(version=f"Milvus Lite server at {self.uri}", hybrid=True)
        parsed = parse_version(version)
        # An unrecognised version string (a managed service, a fork) is taken as current Milvus.
        return ServerCapabilities(version=f"Milvus {version} at {self.uri}",
                                  hybrid=parsed is None or parsed >= HYBRID_MIN_VERSION)

    def is_hybrid(self, collection: str) -> bool:
        """Whether this collection has the BM25 sparse field: asked once per collection, since a collection made
        by an older server stays dense-only after the server is upgraded."""
        hybrid = self._hybrid_collections.get(collection)
        if hybrid is None:
            try:
                fields = self._client.describe_collection(collection)["fields"]
            except Exception as exc:
                raise StoreError(f"cannot describe collection {collection} on {self.capabilities.version}: "
                                 f"{_engine_message(exc)}") from exc
            hybrid = any(field["name"] == "sparse" for field in fields)
            self._hybrid_collections[collection] = hybrid
        return hybrid

    # -- collections -------------------------------------------------------------------------------------

    def ensure_collection(self, name: str) -> None:
        """Create the collection with its indexes if it does not exist. On failure nothing is left behind: a
        collection whose index could not be built would take rows that no search can find."""
        with self._create_lock:
            if self._client.has_collection(name):
                return
            hybrid = self.capabilities.hybrid
            try:
                self._client.create_collection(name, schema=self._schema(hybrid),
                                               index_params=self._index_params(hybrid),
                                               consistency_level=self.consistency_level)
            except Exception as exc:
                self._drop_quietly(name)
                hint = ("" if self.index_type == "AUTOINDEX" else
                        "; vector_store.index_type AUTOINDEX (APP_VECTOR_STORE_INDEX_TYPE) works on every Milvus")
                raise StoreError(f"cannot create collection {name} on {self.capabilities.version} "
                                 f"(dense index {self.index_type}): {_engine_message(exc)}{hint}") from exc
            self._hybrid_collections[name] = hybrid

    def _schema(self, hybrid: bool):
        from pymilvus import DataType, Function, FunctionType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("file_key", DataType.VARCHAR, max_length=64)
        schema.add_field("file", DataType.VARCHAR, max_length=1024)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
        analyzer = {"enable_analyzer": True, "analyzer_params": {"tokenizer": "jieba"}} if hybrid else {}
        schema.add_field("index_text", DataType.VARCHAR, max_length=TEXT_MAX, **analyzer)
        schema.add_field("position", DataType.INT64)
        schema.add_field("page", DataType.INT64)
        schema.add_field("heading", DataType.VARCHAR, max_length=4096)
        schema.add_field("parent_id", DataType.VARCHAR, max_length=64)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dimension)
        if hybrid:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                         input_field_names=["index_text"], output_field_names=["sparse"]))
        return schema

    def _index_params(self, hybrid: bool):
        index_params = self._client.prepare_index_params()
        build_params = HNSW_BUILD_PARAMS if self.index_type == "HNSW" else {}
        index_params.add_index("dense", metric_type="IP", index_type=self.index_type, params=build_params)
        if hybrid:
            index_params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        return index_params

    def _drop_quietly(self, name: str) -> None:
        """Best-effort cleanup after a failed create; the original error is the one worth reporting."""
        try:
            if self._client.has_collection(name):
                self._client.drop_collection(name)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            log.warning("could not drop half-created collection %s: %s", name, exc)

    def drop_collection(self, name: str) -> None:
        self._hybrid_collections.pop(name, None)
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

    def compact(self, collection: str) -> bool:
        """Ask Milvus to rewrite the collection's segments without deleted rows, so deleted text leaves the disk
        (in the background). False where the engine has no compaction: Milvus Lite does not implement it."""
        if self.embedded:
            return False
        try:
            self._client.compact(collection)
        except Exception as error:   # pymilvus raises many types; an unsupported call must not fail a deletion
            log.warning("Milvus compaction of %s not started: %s", collection, error)
            return False
        return True

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

    def file_chunks(self, collection: str, file_key: str, limit: int = 2000) -> list[Chunk]:
        """A file's chunks in document order (for showing how a file was split)."""
        rows = self._client.query(collection, filter=f'file_key == "{file_key}"', output_fields=OUTPUT_FIELDS,
                                  limit=limit)
        return sorted((_chunk_from_entity(row) for row in rows), key=lambda chunk: chunk.position)

    def chunks_at(self, collection: str, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Chunk]:
        """The chunks at these (file, position) places, in one query; places with no chunk are left out."""
        if not places:
            return {}
        unique = dict.fromkeys(places)
        condition = " or ".join(f"(file == {_string_literal(file)} and position == {int(position)})"
                                for file, position in unique)
        rows = self._client.query(collection, filter=condition, output_fields=OUTPUT_FIELDS, limit=len(unique))
        chunks = (_chunk_from_entity(row) for row in rows)
        return {(chunk.file, chunk.position): chunk for chunk in chunks}

    # -- search ------------------------------------------------------------------------------------------

    def search(self, collection: str, request: StoreQuery) -> list[Hit]:
        from pymilvus import AnnSearchRequest

        if request.mode != "dense" and not self.is_hybrid(collection):
            if request.mode == "bm25":
                raise StoreError(f"BM25 retrieval needs Milvus 2.5 or newer: collection {collection} was made "
                                 f"without BM25 ({self.capabilities.version}); use retrieval mode dense or hybrid")
            request = replace(request, mode="dense")   # hybrid degrades to its dense route, warned at creation
        dense_param: dict = {"metric_type": "IP"}
        if self.index_type == "HNSW":
            dense_param["params"] = {"ef": max(64, request.limit)}   # HNSW needs ef >= the hits asked for
        dense = AnnSearchRequest(data=[request.vector.tolist()], anns_field="dense",
                                 param=dense_param, limit=request.limit)
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
        if self._opened.exception() is not None:
            return                          # never opened: its error was raised where the store was used
        for thread in self._warming:
            thread.join()
        self._client.close()
        if self.embedded:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)


def _engine_message(exc: Exception) -> str:
    """The message of a pymilvus error without its class wrapper (`<MilvusException: (code=..., message=...)>`)."""
    return str(getattr(exc, "message", "") or exc).strip().rstrip(":").strip()


def _is_unimplemented(exc: Exception) -> bool:
    """A gRPC UNIMPLEMENTED status: the server lacks the RPC (Milvus Lite has no GetVersion)."""
    code = getattr(exc, "code", None)
    status = code() if callable(code) else code
    return "UNIMPLEMENTED" in f"{status} {exc!r}"


class _DropVersionProbeErrors(logging.Filter):
    """pymilvus logs every failed RPC at ERROR; the version probe's expected failure on Milvus Lite is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "[get_server_version]" not in record.getMessage()


_VERSION_PROBE_FILTER = _DropVersionProbeErrors()


def _quiet_version_probe() -> None:
    pymilvus_log = logging.getLogger("pymilvus.decorators")
    if _VERSION_PROBE_FILTER not in pymilvus_log.filters:
        pymilvus_log.addFilter(_VERSION_PROBE_FILTER)


def _lite_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("milvus-lite")
    except PackageNotFoundError:
        return "(unknown version)"


# -- one process per Milvus Lite file ---------------------------------------------------------------------


def lite_file_holders(db_file: str | Path) -> list[tuple[int, str]]:
    """Other processes that hold a Milvus Lite file open: (pid, command line) of the parent of each Milvus Lite
    engine process serving that file. Linux /proc; elsewhere nothing is found and Milvus Lite's own lock speaks.

    Milvus Lite starts one engine process per file (`milvus_lite/lib/milvus <db file> <socket> ...`) and takes an
    exclusive lock for it; a second process's attempt fails, and its cleanup deletes the lock file of the first
    (milvus-lite 2.5.1), so the engine process itself is the reliable sign."""
    target = str(Path(db_file).absolute().resolve())
    holders: list[tuple[int, str]] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return holders
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if len(argv) < 2 or not argv[0].endswith(b"milvus_lite/lib/milvus"):
                continue
            if os.fsdecode(argv[1]) != target:
                continue
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue   # the process ended while we looked
        if parent != os.getpid():
            holders.append((parent, _command_line(parent)))
    return holders


def _command_line(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "(exited)"
    return " ".join(os.fsdecode(part) for part in argv if part)[:300]


def _lock_is_free(db_file: str) -> bool | None:
    """Whether Milvus Lite's lock on the file is free (True), held (False), or unknown (None: no lock file).
    The owner holds a POSIX lock on `.NAME.lock` beside the file; it dies with its process, so an engine process
    left behind by a killed owner (it exits by itself shortly after) does not count as a holder."""
    path = Path(db_file).parent / f".{Path(db_file).name}.lock"
    try:
        descriptor = os.open(path, os.O_RDWR)       # never created here: its absence means "unknown"
    except OSError:
        return None
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.lockf(descriptor, fcntl.LOCK_UN)
        return True
    finally:
        os.close(descriptor)


def _start_lite_server(uri: str) -> None:
    from milvus_lite.server_manager import server_manager_instance

    try:
        server_manager_instance.start_and_get_uri(uri)
    except Exception as exc:  # noqa: BLE001 - the client's own start reports it
        log.debug("starting Milvus Lite for %s failed: %s", uri, exc)


def refuse_if_lite_file_held(db_file: str) -> None:
    if _lock_is_free(db_file):
        return
    holders = lite_file_holders(db_file)
    if not holders:
        return
    who = "; ".join(f"pid {pid} ({command})" for pid, command in holders)
    raise StoreError(
        f"the Milvus Lite file {db_file} is in use by another process: {who}. Only one process can open a Milvus "
        f"Lite file. If that is `tecorag serve`, upload through it (POST /knowledge_base/upload_docs or the web "
        f"UI), or stop it and run this again; for several processes, run a Milvus server and set "
        f"APP_VECTOR_STORE_URI.")


def _string_literal(text: str) -> str:
    """`text` as a string literal of a Milvus filter expression."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
