"""Several replicas: two real `tecorag serve` processes, each with its own data directory (its own embedding
cache, as on two machines), sharing one Milvus server (Milvus Lite's gRPC server on loopback) and one PostgreSQL
catalog. What one replica writes, the other answers from; a job is run by exactly one replica; when the replica
running a job is killed (SIGKILL), the other resumes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server_fixtures import (ServeProcess, ask_sources, clean_environment, lite_milvus_server, project_documents,
                             project_lead, upload_job, wait_for_job)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory) -> Iterator[str]:
    with lite_milvus_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


def replica(tmp_path: Path, name: str, milvus_uri: str, catalog_url: str) -> ServeProcess:
    home = tmp_path / name
    home.mkdir()
    environment = clean_environment(home, {"APP_VECTOR_STORE_URI": milvus_uri, "APP_CATALOG_URL": catalog_url,
                                           "APP_JOBS_LEASE_S": "3", "APP_JOBS_POLL_S": "0.5"})
    return ServeProcess(home, environment, name)


def test_two_replicas_share_milvus_and_postgres(tmp_path, milvus_server, postgres):
    catalog_url = postgres.create_database()
    replicas = {name: replica(tmp_path, name, milvus_server, catalog_url) for name in ("a", "b")}
    try:
        for server in replicas.values():
            server.start()
        a = httpx.Client(base_url=replicas["a"].url, timeout=180)
        b = httpx.Client(base_url=replicas["b"].url, timeout=180)

        assert a.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "kb"}).status_code == 200
        assert b.post("/knowledge_base/list_knowledge_bases").json()["data"] == ["kb"]

        # upload through A, ask through B
        first = project_documents(6)
        parts = [("files", (name, data, "text/markdown")) for name, data in first.items()]
        uploaded = a.post("/knowledge_base/upload_docs", data={"knowledge_base_name": "kb"}, files=parts)
        assert uploaded.status_code == 200 and not uploaded.json()["data"]["failed_files"], uploaded.text
        answer, sources = ask_sources(b, "kb", "项目 P003 的负责人是谁？")
        assert project_lead(3) in answer and sources[0] == "project-003.md"

        # delete through B: A no longer cites it
        assert b.delete("/knowledge_bases/kb/files/project-003.md").status_code == 200
        answer, sources = ask_sources(a, "kb", "项目 P003 的负责人是谁？")
        assert "project-003.md" not in sources and project_lead(3) not in answer

        # two jobs at once: each run by exactly one replica, once
        quick = [upload_job(a, "kb", {"x.md": project_documents(31)["project-030.md"]}),
                 upload_job(b, "kb", {"y.md": project_documents(32)["project-031.md"]})]
        for job_id in quick:
            job = wait_for_job(a, job_id)
            assert job["status"] == "done" and job["attempts"] == 1, job

        # kill -9 the replica running a job: the other resumes it
        batch = project_documents(20, paragraphs=6)
        batch = {name: data for name, data in batch.items() if name >= "project-006.md"}
        job_id = upload_job(a, "kb", batch)
        deadline = time.monotonic() + 60
        while not (job := a.get(f"/jobs/{job_id}").json()["data"])["owner"]:
            assert time.monotonic() < deadline, f"no replica took the job: {job}"
            time.sleep(0.05)
        owner_pid = int(job["owner"].split(":")[1])
        victim = next(name for name, server in replicas.items() if server.process.pid == owner_pid)
        survivor = "b" if victim == "a" else "a"
        replicas[victim].kill()
        assert job["status"] == "running" and job["done"] < job["total"], f"not killed mid-job: {job}"
        print(f"killed replica {victim} running the job at {job['done']}/{job['total']} files")

        client = b if survivor == "b" else a
        finished = wait_for_job(client, job_id, timeout_s=300)
        assert finished["status"] == "done" and finished["attempts"] == 2, finished
        assert int(finished["owner"].split(":")[1]) == replicas[survivor].process.pid
        assert all(entry["status"] == "indexed" for entry in finished["result"]["files"].values()), finished
        answer, sources = ask_sources(client, "kb", "项目 P012 的负责人是谁？")
        assert project_lead(12) in answer and sources[0] == "project-012.md"
        files = {f["name"]: f["status"] for f in client.get("/knowledge_bases/kb/files").json()["data"]}
        assert set(files) == (set(first) - {"project-003.md"}) | {"x.md", "y.md"} | set(batch)
        assert set(files.values()) == {"indexed"}
        a.close()
        b.close()
    finally:
        for server in replicas.values():
            server.kill()
