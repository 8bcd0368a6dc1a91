"""Background upload jobs survive the server: they live in the catalog (files' bytes included) under a lease, and
a server resumes a job whose lease ran out — at start-up and while running — so no job stays `running` forever.

The fast tests use an in-process server (uvicorn in a thread); the slow one kills a real `tecorag serve`
subprocess with SIGKILL in the middle of a job and starts another over the same data directory."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import make_settings
from server_fixtures import (ServeProcess, ask_sources, clean_environment, project_documents, project_lead,
                             running_server, upload_job, wait_for_job)
from tecorag.rag import RAG
from tecorag.server.app import create_app

TRAVEL = "# 差旅管理办法\n\n员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。\n".encode()
LEAVE = "年假规定：员工工作满一年后每年享有五天带薪年假。".encode()
BROKEN_PDF = b"%PDF-1.7 this is not really a pdf"
FAST_JOBS = {"lease_s": 2.0, "poll_s": 0.3}


def test_a_job_left_running_by_a_dead_server_is_resumed_at_start_up(tmp_path):
    settings = make_settings(tmp_path / "home", jobs=FAST_JOBS)
    with RAG(settings) as rag:                  # what a server killed mid-job leaves in the catalog
        rag.create_kb("kb")
        job = rag.catalog.create_job("kb", "upload", [("travel.md", TRAVEL), ("broken.pdf", BROKEN_PDF),
                                                      ("leave.txt", LEAVE)], params={"override": True})
        rag.catalog.claim_job("dead-server", lease_s=0.1, max_attempts=3)
        assert rag.catalog.set_job_file(job.id, "dead-server", "travel.md", "indexing")
    time.sleep(0.2)

    app = create_app(settings)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        finished = wait_for_job(client, job.id, timeout_s=120)
        assert finished["status"] == "done" and finished["attempts"] == 2 and finished["owner"] != "dead-server"
        files = finished["result"]["files"]
        assert files["travel.md"]["status"] == "indexed" and files["leave.txt"]["status"] == "indexed"
        assert files["broken.pdf"]["status"] == "failed" and "broken.pdf" in files["broken.pdf"]["error"]
        assert finished["done"] == finished["total"] == 3
        answer, sources = ask_sources(client, "kb", "出差住宿标准是多少？")
        assert "五百元" in answer and "travel.md" in sources

        # deleting the KB deletes its jobs
        assert client.post("/knowledge_base/delete_knowledge_base", json="kb").status_code == 200
        assert client.get(f"/jobs/{job.id}").status_code == 404


def test_a_job_abandoned_too_often_ends_failed_with_the_reason(tmp_path):
    settings = make_settings(tmp_path / "home", jobs={**FAST_JOBS, "max_attempts": 1})
    with RAG(settings) as rag:
        rag.create_kb("kb")
        job = rag.catalog.create_job("kb", "upload", [("travel.md", TRAVEL)], params={"override": True})
        rag.catalog.claim_job("crashing-server", lease_s=0.1, max_attempts=1)
    time.sleep(0.2)
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        failed = wait_for_job(client, job.id, timeout_s=30)
    assert failed["status"] == "failed" and "crashing-server" in failed["error"]
    assert failed["result"]["files"]["travel.md"]["status"] == "failed"
    assert "max_attempts=1" in failed["result"]["files"]["travel.md"]["error"]


def test_a_stopping_server_puts_its_running_job_back_in_the_queue(tmp_path):
    settings = make_settings(tmp_path / "home", jobs=FAST_JOBS)
    documents = {"broken.pdf": BROKEN_PDF, **project_documents(8, paragraphs=6)}
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/knowledge_base/create_knowledge_base",
                           json={"knowledge_base_name": "kb"}).status_code == 200
        job_id = upload_job(client, "kb", documents)
        deadline = time.monotonic() + 60
        while client.get(f"/jobs/{job_id}").json()["data"]["done"] < 1:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
    # the server stopped gracefully in the middle of the job
    with RAG(settings) as rag:
        stopped = rag.get_job(job_id)
    assert (stopped.status, stopped.owner, stopped.attempts) == ("queued", None, 0), stopped
    assert stopped.files["broken.pdf"]["status"] == "failed" and stopped.done < stopped.total

    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        finished = wait_for_job(client, job_id, timeout_s=120)
    assert finished["status"] == "done" and finished["attempts"] == 1
    assert finished["result"]["failed_files"].keys() == {"broken.pdf"}
    assert len(finished["result"]["indexed_files"]) + len(finished["result"]["skipped_files"]) == 8


@pytest.mark.slow
def test_kill_9_during_a_job_then_another_server_finishes_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    environment = clean_environment(home, {"APP_JOBS_LEASE_S": "3", "APP_JOBS_POLL_S": "0.5"})
    documents = {"broken.pdf": BROKEN_PDF, **project_documents(10, paragraphs=6)}   # broken.pdf ends first
    first = ServeProcess(home, environment, "first")
    try:
        with httpx.Client(base_url=first.start(), timeout=120) as client:
            assert client.post("/knowledge_base/create_knowledge_base",
                               json={"knowledge_base_name": "kb"}).status_code == 200
            job_id = upload_job(client, "kb", documents)
            deadline = time.monotonic() + 60
            while (job := client.get(f"/jobs/{job_id}").json()["data"])["done"] < 1:
                assert time.monotonic() < deadline, f"the job never started: {job}"
                time.sleep(0.05)
        first.kill()
        assert job["status"] == "running" and job["done"] < job["total"], f"not killed mid-job: {job}"
        print(f"killed the server running the job at {job['done']}/{job['total']} files")

        with ServeProcess(home, environment, "second") as second, \
                httpx.Client(base_url=second.url, timeout=120) as client:
            finished = wait_for_job(client, job_id, timeout_s=240)
            assert finished["status"] == "done", finished
            assert finished["attempts"] == 2 and finished["owner"] != job["owner"]
            outcome = finished["result"]["files"]
            assert outcome.pop("broken.pdf")["status"] == "failed"      # its verdict from before the kill stays
            assert all(entry["status"] in ("indexed", "skipped") for entry in outcome.values()), outcome
            files = {f["name"]: f["status"] for f in client.get("/knowledge_bases/kb/files").json()["data"]}
            assert files == {name: "failed" if name == "broken.pdf" else "indexed" for name in documents}
            answer, sources = ask_sources(client, "kb", "项目 P007 的负责人是谁？")
            assert project_lead(7) in answer and "project-007.md" in sources
    finally:
        first.kill()
