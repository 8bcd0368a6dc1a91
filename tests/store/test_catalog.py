"""The catalog against both databases it supports: SQLite (embedded) and a real PostgreSQL (deployed), the same
tests parametrized by `catalog_url` (conftest.py). Knowledge bases, files, aggregates, jobs with leases (claimed by
exactly one replica, resumed after a crash, failed after too many), concurrency, and schema migrations."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tecorag.errors import ConfigError, KnowledgeBaseExists, KnowledgeBaseNotFound, StoreError
from tecorag.store.catalog import SCHEMA_VERSION, Catalog

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def catalog(catalog_url):
    instance = Catalog(catalog_url)
    yield instance
    instance.close()


# -- knowledge bases and files ---------------------------------------------------------------------------------


def test_knowledge_bases(catalog):
    created = catalog.create_kb("员工手册", "rag", "policies")
    assert created.name == "员工手册" and created.collection.startswith("rag_") and created.description == "policies"
    catalog.create_kb("a-kb", "rag")
    with pytest.raises(KnowledgeBaseExists, match="员工手册"):
        catalog.create_kb("员工手册", "rag")
    assert [kb.name for kb in catalog.list_kbs()] == ["a-kb", "员工手册"]
    assert catalog.get_kb("员工手册").collection == created.collection
    catalog.delete_kb("a-kb")
    with pytest.raises(KnowledgeBaseNotFound, match="a-kb"):
        catalog.get_kb("a-kb")
    with pytest.raises(KnowledgeBaseNotFound):
        catalog.delete_kb("a-kb")
    assert [kb.name for kb in catalog.list_kbs()] == ["员工手册"]


def test_files_and_aggregates(catalog):
    catalog.create_kb("kb1", "rag")
    catalog.create_kb("kb2", "rag")
    catalog.upsert_file("kb1", "a.md", "key-a", sha256="1" * 64, size=10, status="indexing")
    catalog.upsert_file("kb1", "a.md", "key-a", status="indexed", chunk_count=3)
    catalog.upsert_file("kb1", "目录/b.pdf", "key-b", status="indexed", chunk_count=4)
    catalog.upsert_file("kb1", "c.docx", "key-c", status="failed", error="c.docx: encrypted")
    catalog.upsert_file("kb2", "a.md", "key-a2", status="indexed", chunk_count=7)   # same name, other KB

    a = catalog.get_file("kb1", "a.md")
    assert (a.status, a.chunk_count, a.sha256, a.size, a.key) == ("indexed", 3, "1" * 64, 10, "key-a")
    assert [f.name for f in catalog.list_files("kb1")] == ["a.md", "c.docx", "目录/b.pdf"]
    assert catalog.get_file("kb1", "c.docx").error == "c.docx: encrypted"
    assert catalog.get_file("kb1", "missing.md") is None
    kb1 = catalog.get_kb("kb1")
    assert (kb1.file_count, kb1.chunk_count) == (3, 7)
    assert {kb.name: (kb.file_count, kb.chunk_count) for kb in catalog.list_kbs()} == {"kb1": (3, 7), "kb2": (1, 7)}

    catalog.delete_file("kb1", "a.md")
    catalog.delete_file("kb1", "a.md")            # deleting twice is harmless
    assert (catalog.get_kb("kb1").file_count, catalog.get_kb("kb1").chunk_count) == (2, 4)
    catalog.delete_kb("kb1")
    catalog.create_kb("kb1", "rag")
    assert catalog.list_files("kb1") == [] and catalog.get_file("kb2", "a.md").chunk_count == 7
    with pytest.raises(KnowledgeBaseNotFound):
        catalog.upsert_file("nowhere", "x.md", "k")


def test_concurrent_writers_keep_counts_exact(catalog_url):
    """Four processes' worth of catalogs (separate engines) writing files into one KB at the same time."""
    catalogs = [Catalog(catalog_url) for _ in range(4)]
    try:
        catalogs[0].create_kb("busy", "rag")

        def write(number: int) -> None:
            for index in range(15):
                catalogs[number].upsert_file("busy", f"w{number}-{index}.txt", f"k{number}-{index}",
                                             status="indexed", chunk_count=2)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(write, range(4)))
        kb = catalogs[1].get_kb("busy")
        assert (kb.file_count, kb.chunk_count) == (60, 120)
    finally:
        for instance in catalogs:
            instance.close()


# -- jobs --------------------------------------------------------------------------------------------------------


def test_job_lifecycle(catalog):
    catalog.create_kb("kb", "rag")
    job = catalog.create_job("kb", "upload", [("a.md", b"# A"), ("b.txt", "乙".encode())], params={"override": True})
    assert (job.status, job.total, job.done, job.attempts, job.owner) == ("queued", 2, 0, 0, None)
    assert job.files == {"a.md": {"status": "queued", "error": None}, "b.txt": {"status": "queued", "error": None}}
    assert catalog.job_file_data(job.id, "b.txt") == "乙".encode()

    claimed = catalog.claim_job("replica-1", lease_s=30, max_attempts=3)
    assert (claimed.id, claimed.status, claimed.owner, claimed.attempts) == (job.id, "running", "replica-1", 1)
    assert claimed.params == {"override": True}
    assert catalog.claim_job("replica-2", lease_s=30, max_attempts=3) is None      # leased: nobody else gets it
    assert catalog.renew_job_lease(job.id, "replica-1", 30)
    assert not catalog.renew_job_lease(job.id, "replica-2", 30)

    assert catalog.set_job_file(job.id, "replica-1", "a.md", "indexed", message="a.md")
    assert catalog.job_file_data(job.id, "a.md") is None            # a finished file's bytes are dropped
    assert not catalog.set_job_file(job.id, "replica-2", "b.txt", "indexed")     # not its job
    running = catalog.get_job(job.id)
    assert (running.done, running.message, running.files["b.txt"]["status"]) == (1, "a.md", "queued")

    assert catalog.finish_job(job.id, "replica-1", "done", "indexed 1", result={"indexed_files": ["a.md"]})
    done = catalog.get_job(job.id)
    assert (done.status, done.done, done.message) == ("done", 2, "indexed 1")
    assert done.files["b.txt"] == {"status": "failed", "error": "the job ended before this file was indexed"}
    assert done.result == {"files": done.files, "indexed_files": ["a.md"]}
    assert catalog.job_file_data(job.id, "b.txt") is None
    assert not catalog.finish_job(job.id, "replica-1", "failed", "again")           # finished once
    assert catalog.get_job("0" * 32) is None


def test_expired_lease_is_taken_over_and_the_old_owner_is_locked_out(catalog):
    catalog.create_kb("kb", "rag")
    job = catalog.create_job("kb", "upload", [("a.md", b"a"), ("b.md", b"b")])
    catalog.claim_job("dead-replica", lease_s=0.2, max_attempts=3)
    catalog.set_job_file(job.id, "dead-replica", "a.md", "indexed")
    time.sleep(0.4)                                   # the replica died: nobody renews the lease

    resumed = catalog.claim_job("replica-2", lease_s=30, max_attempts=3)
    assert (resumed.id, resumed.owner, resumed.attempts) == (job.id, "replica-2", 2)
    assert resumed.files["a.md"]["status"] == "indexed" and resumed.files["b.md"]["status"] == "queued"
    assert catalog.job_file_data(job.id, "b.md") == b"b"          # the unfinished file's bytes are still there
    assert not catalog.renew_job_lease(job.id, "dead-replica", 30)
    assert not catalog.set_job_file(job.id, "dead-replica", "b.md", "failed", "late")
    assert not catalog.finish_job(job.id, "dead-replica", "failed", "late")
    assert catalog.finish_job(job.id, "replica-2", "done", "ok")
    assert catalog.get_job(job.id).status == "done"


def test_released_job_is_queued_again_without_using_an_attempt(catalog):
    catalog.create_kb("kb", "rag")
    job = catalog.create_job("kb", "upload", [("a.md", b"a")])
    catalog.claim_job("stopping", lease_s=30, max_attempts=1)
    assert catalog.release_job(job.id, "stopping")
    queued = catalog.get_job(job.id)
    assert (queued.status, queued.owner, queued.attempts) == ("queued", None, 0)
    assert catalog.claim_job("other", lease_s=30, max_attempts=1).attempts == 1


def test_job_abandoned_too_often_fails_with_the_reason(catalog):
    catalog.create_kb("kb", "rag")
    job = catalog.create_job("kb", "upload", [("crash.pdf", b"%PDF"), ("ok.md", b"ok")])
    for attempt in range(1, 3):
        claimed = catalog.claim_job(f"replica-{attempt}", lease_s=0.1, max_attempts=2)
        assert claimed.attempts == attempt
        time.sleep(0.25)
    # no file finished: every replica died inside crash.pdf
    assert catalog.claim_job("replica-3", lease_s=30, max_attempts=2) is None     # no attempts left
    assert catalog.fail_abandoned_jobs(max_attempts=2) == [job.id]
    failed = catalog.get_job(job.id)
    assert failed.status == "failed" and "stopped 2 times" in failed.error and "replica-2" in failed.error
    assert all(entry["status"] == "failed" and "stopped 2 times" in entry["error"] for entry in failed.files.values())
    assert catalog.job_file_data(job.id, "crash.pdf") is None
    assert catalog.fail_abandoned_jobs(max_attempts=2) == []


def test_each_job_is_claimed_by_exactly_one_replica(catalog_url):
    """Four replicas (own engines) race for twelve jobs: every job is taken once, none twice."""
    replicas = [Catalog(catalog_url) for _ in range(4)]
    try:
        replicas[0].create_kb("kb", "rag")
        job_ids = {replicas[0].create_job("kb", "upload", [(f"{n}.md", b"x")]).id for n in range(12)}
        start = threading.Barrier(len(replicas))

        def claim_all(number: int) -> list[str]:
            start.wait()
            taken = []
            while (job := replicas[number].claim_job(f"replica-{number}", lease_s=60, max_attempts=3)) is not None:
                taken.append(job.id)
            return taken

        with ThreadPoolExecutor(max_workers=len(replicas)) as pool:
            claims = list(pool.map(claim_all, range(len(replicas))))
        everything = [job_id for taken in claims for job_id in taken]
        assert sorted(everything) == sorted(job_ids), "each job claimed exactly once"
        owners = {replicas[0].get_job(job_id).owner for job_id in job_ids}
        assert owners <= {f"replica-{n}" for n in range(4)}
    finally:
        for instance in replicas:
            instance.close()


def test_deleting_a_kb_deletes_its_jobs_and_their_bytes(catalog):
    catalog.create_kb("gone", "rag")
    catalog.create_kb("kept", "rag")
    gone = catalog.create_job("gone", "upload", [("a.md", b"secret")])
    kept = catalog.create_job("kept", "upload", [("a.md", b"mine")])
    catalog.delete_kb("gone")
    assert catalog.get_job(gone.id) is None and catalog.job_file_data(gone.id, "a.md") is None
    assert catalog.job_file_data(kept.id, "a.md") == b"mine"
    with catalog.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job_files")) == 1


# -- the web UI's records: feedback, uploaded originals, embedding progress --------------------------------------


def test_feedback_originals_and_job_progress(catalog):
    catalog.create_kb("kb", "rag")
    catalog.create_kb("other", "rag")
    sources = [{"filename": "a.md", "context": "五百元", "page": None}]
    first = catalog.add_feedback("kb", "住宿标准？", "五百元[1]", sources, 1)
    catalog.add_feedback("kb", "报销？", "不知道", [], -1, comment="答非所问")
    catalog.add_feedback("other", "q", "a", [], 1)
    listed = catalog.list_feedback("kb")
    assert [(f.question, f.rating, f.comment) for f in listed] == [("住宿标准？", 1, ""), ("报销？", -1, "答非所问")]
    assert listed[0].id == first.id and listed[0].sources == sources

    catalog.upsert_file("kb", "a.md", "key-a", status="indexed")
    catalog.put_original("kb", "a.md", b"v1")
    catalog.put_original("kb", "a.md", b"v2")                   # a new upload replaces the kept original
    catalog.put_original("other", "a.md", b"theirs")
    with ThreadPoolExecutor(max_workers=4) as pool:          # concurrent uploads of one name: no conflict error
        list(pool.map(lambda i: catalog.put_original("kb", "race.md", b"%d" % i), range(8)))
    assert catalog.get_original("kb", "race.md") in {b"%d" % i for i in range(8)}
    assert catalog.get_original("kb", "a.md") == b"v2" and catalog.get_original("kb", "b.md") is None
    catalog.delete_file("kb", "a.md")
    assert catalog.get_original("kb", "a.md") is None and catalog.get_original("other", "a.md") == b"theirs"

    job = catalog.create_job("kb", "upload", [("a.md", b"x"), ("b.md", b"y")])
    catalog.claim_job("r1", lease_s=30, max_attempts=3)
    assert catalog.set_job_file(job.id, "r1", "a.md", "embedding")
    assert catalog.set_job_progress(job.id, "r1", "a.md", 64, 139)
    assert not catalog.set_job_progress(job.id, "someone-else", "a.md", 1, 2)
    files = catalog.get_job(job.id).result["files"]
    assert files["a.md"] == {"status": "embedding", "error": None, "chunks_done": 64, "chunks_total": 139}
    assert files["b.md"] == {"status": "queued", "error": None}
    assert "progress" not in catalog.get_job(job.id).result

    catalog.put_original("kb", "c.md", b"z")
    catalog.delete_kb("kb")
    assert catalog.list_feedback("other") and catalog.get_original("kb", "c.md") is None
    catalog.create_kb("kb", "rag")
    assert catalog.list_feedback("kb") == []


# -- schema versions ------------------------------------------------------------------------------------------------


def make_schema_1_catalog(url: str) -> None:
    """A catalog as tecorag made it before schema versions (the frozen DDL in tests/store/fixtures), with data."""
    engine = create_engine(url)
    ddl = (FIXTURES / f"catalog_schema_v1.{engine.dialect.name}.sql").read_text()
    statements = [part.strip() for part in ddl.split(";") if part.strip().replace("--", "").strip()]
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql("\n".join(line for line in statement.splitlines()
                                                 if not line.startswith("--")))
        connection.execute(text("INSERT INTO knowledge_bases (name, collection, description, created_at) "
                                "VALUES ('old-kb', 'rag_0123456789abcdef', 'from 0.1', '2026-11-30 10:00:00')"))
        connection.execute(text(
            "INSERT INTO files (kb_id, name, key, sha256, size, status, error, chunk_count, created_at, updated_at) "
            "SELECT id, 'manual.md', 'k1', 'aa', 12, 'indexed', NULL, 5, '2026-11-30 10:00:00', "
            "'2026-11-30 10:00:00' FROM knowledge_bases WHERE name = 'old-kb'"))
        for job_id, status in (("a" * 32, "running"), ("b" * 32, "done")):
            connection.execute(text(
                "INSERT INTO jobs (id, kb_name, kind, status, total, done, message, result, error, created_at, "
                "updated_at) VALUES (:id, 'old-kb', 'upload', :status, 2, 1, 'x', NULL, NULL, "
                "'2026-11-30 10:00:00', '2026-11-30 10:00:00')"), {"id": job_id, "status": status})
    engine.dispose()


def test_a_catalog_made_by_the_previous_schema_opens_and_is_migrated(catalog_url):
    make_schema_1_catalog(catalog_url)
    catalog = Catalog(catalog_url)
    try:
        kb = catalog.get_kb("old-kb")
        assert (kb.collection, kb.description, kb.file_count, kb.chunk_count) == ("rag_0123456789abcdef",
                                                                                 "from 0.1", 1, 5)
        assert catalog.get_file("old-kb", "manual.md").status == "indexed"
        interrupted = catalog.get_job("a" * 32)        # its bytes died with the old server: failed, with why
        assert interrupted.status == "failed" and "upload the files again" in interrupted.error
        assert catalog.get_job("b" * 32).status == "done"
        job = catalog.create_job("old-kb", "upload", [("new.md", b"new")])     # the new job machinery works
        assert catalog.claim_job("r", lease_s=30, max_attempts=3).id == job.id
        catalog.create_kb("new-kb", "rag")                                      # ids still generated
        catalog.add_feedback("old-kb", "q", "a", [], 1)                         # schema 3: the web UI's tables
        catalog.put_original("old-kb", "manual.md", b"bytes")
        assert catalog.get_original("old-kb", "manual.md") == b"bytes"
        with catalog.engine.connect() as connection:
            assert connection.scalar(text("SELECT version FROM tecorag_schema")) == SCHEMA_VERSION
    finally:
        catalog.close()
    Catalog(catalog_url).close()                   # opening a current catalog again changes nothing
    with create_engine(catalog_url).connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM tecorag_schema")) == 1


def test_replicas_opening_an_old_catalog_together_migrate_it_once(catalog_url, tmp_path):
    # SQLite: many rounds, each on a new file in rollback-journal mode, since switching it to WAL raced (about 1
    # round in 20 failed with "database is locked" before the switch was retried).
    rounds = 30 if catalog_url.startswith("sqlite") else 1
    for round_number in range(rounds):
        url = f"sqlite:///{tmp_path}/catalog-{round_number}.db" if round_number else catalog_url
        make_schema_1_catalog(url)
        start = threading.Barrier(8)

        def open_catalog(_: int) -> int:
            start.wait()
            catalog = Catalog(url)
            try:
                return catalog.get_kb("old-kb").file_count
            finally:
                catalog.close()

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(open_catalog, range(8))) == [1] * 8


def test_a_catalog_from_a_newer_tecorag_is_refused(catalog_url):
    Catalog(catalog_url).close()
    engine = create_engine(catalog_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE tecorag_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade tecorag"):
        Catalog(catalog_url)


# -- configuration errors ---------------------------------------------------------------------------------------


def test_missing_postgres_driver_is_a_config_error_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)          # as in an installation without the extra
    with pytest.raises(ConfigError, match=r"pip install 'tecorag\[postgres\]'"):
        Catalog("postgresql://tecorag:secret@127.0.0.1:5432/tecorag")


def test_unreachable_postgres_names_the_url_but_not_the_password():
    with pytest.raises(StoreError) as raised:
        Catalog(f"postgresql://tecorag:hunter2@127.0.0.1:{_closed_port()}/tecorag")
    assert "cannot open the catalog at postgresql+psycopg://tecorag:***@127.0.0.1" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_database_that_goes_away_is_a_store_error_naming_it():
    from postgres_fixtures import postgres_bin, postgres_cluster

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (no initdb)")
    with postgres_cluster(postgres_bin()) as cluster:
        catalog = Catalog(cluster.create_database())
        catalog.create_kb("kb", "rag")
        cluster.stop()
        with pytest.raises(StoreError) as raised:
            catalog.get_kb("kb")
        assert f"the catalog at postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/" in str(raised.value)
        catalog.close()


def _closed_port() -> int:
    from postgres_fixtures import free_port

    return free_port()
